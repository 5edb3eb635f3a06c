"""incident's use cases: the ticket events it follows (counting them for the baseline, linking
them to open incidents on arrival), and opening, updating, announcing and resolving incidents.
"""

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import jieba
import msgspec
import structlog
from uuid6 import uuid7

from services.incident import repo
from services.incident.domain import (
    AnnouncementIn,
    Audience,
    CompensationIn,
    Conflict,
    IncidentIn,
    NotFound,
    ResolveIn,
    UpdateIn,
    check_approver,
    check_open,
    criteria_from_alert,
    extension_course,
    learner_key,
    notice_channel,
    page_text,
)
from services.incident.repo.tickets import Milestone
from services.incident.settings import IncidentSettings
from shared import outbox
from shared.agents import Role
from shared.events import (
    Category,
    Channel,
    Envelope,
    EventData,
    IncidentCriteria,
    IncidentOpened,
    IncidentResolved,
    IncidentSeverity,
    IncidentStatus,
    IncidentTicketLinked,
    IncidentTicketResolved,
    IncidentTicketUnlinked,
    IncidentUpdated,
    NoticeKind,
    RemedyAcknowledged,
    RemedyRejected,
    SlaBreached,
    SlaTarget,
    TicketCreated,
    TicketReplied,
    TicketResolved,
    TicketRouted,
    new_event,
    now,
    to_builtins,
)
from shared.inbox import Handler
from shared.incidents import TicketFacts, first_match
from shared.service import Context

log = structlog.get_logger(__name__)
PRODUCER = "incident"
E = TypeVar("E", bound=EventData)


@dataclass(frozen=True)
class Caller:
    """Who is calling, by bearer token: agents read and link; supervisors and admins run
    incidents."""

    agent_id: str
    name: str
    role: Role

    @property
    def manager(self) -> bool:
        return self.role in (Role.SUPERVISOR, Role.ADMIN)


def keyed(data: E, key: UUID) -> Envelope[E]:
    """An incident event keyed by its incident (or alert): its events stay in order."""
    return msgspec.structs.replace(new_event(data, producer=PRODUCER), key=str(key))


def criteria_of(row: asyncpg.Record) -> IncidentCriteria:
    return msgspec.convert(row["criteria"], IncidentCriteria)


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


class Incidents:
    def __init__(self, ctx: Context[IncidentSettings]) -> None:
        self._ctx = ctx
        self._s = ctx.settings

    async def start(self, ctx: Context[IncidentSettings]) -> None:
        """jieba loads its dictionary before the first alert needs it, quietly."""
        jieba.setLogLevel(logging.WARNING)
        await asyncio.to_thread(jieba.initialize)

    # ---- the ticket events --------------------------------------------------------------------

    async def on_created(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """Record each new ticket once, count it into its channel's and course's hour, and
        link it when it matches an open incident (an answer to a course change neither)."""
        rows = []
        for e in events:
            t: TicketCreated = e.data
            learner = to_builtins(t.learner)
            rows.append(
                (
                    t.ticket_id,
                    t.number,
                    t.created_at,
                    t.channel.value,
                    t.course_id,
                    t.subject,
                    t.description,
                    learner,
                    learner_key(learner),
                    t.learner_context.locale if t.learner_context else t.language,
                )
            )
        rows = list({r[0]: r for r in rows}.values())
        new = await repo.tickets.record_created(conn, rows)
        new -= await repo.tickets.answers_to_changes(conn, list(new))
        counts: Counter[tuple[str, str, datetime]] = Counter()
        for ticket_id, _, created_at, channel, course_id, *_ in rows:
            if ticket_id in new:
                counts["channel", channel, hour_of(created_at)] += 1
                if course_id:
                    counts["course", course_id, hour_of(created_at)] += 1
        await repo.tickets.count_hourly(conn, counts)
        await self._link_arrivals(conn, sorted(new))

    async def on_routed(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """A new ticket's category: counted into its hour, and linking tried again (an
        incident about a category could not match before)."""
        routed: dict[UUID, TicketRouted] = {e.data.ticket_id: e.data for e in events}
        new = await repo.tickets.record_category(
            conn, [(t, r.category.value) for t, r in routed.items()]
        )
        new -= await repo.tickets.answers_to_changes(conn, list(new))
        await repo.tickets.count_hourly(
            conn,
            Counter(
                ("category", routed[t].category.value, hour_of(routed[t].routed_at)) for t in new
            ),
        )
        await repo.tickets.record_due(
            conn,
            [(t, r.first_response_due_at, r.resolution_due_at) for t, r in routed.items()],
        )
        await self._link_arrivals(conn, sorted(new))

    async def on_replied(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """A ticket's first answer, for the SLA impact of the incident that held it."""
        await repo.tickets.record_milestone(
            conn,
            "answered_at",
            [(e.data.ticket_id, e.data.replied_at) for e in events if e.data.first_response],
        )

    async def on_resolved(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        await repo.tickets.record_milestone(
            conn, "resolved_at", [(e.data.ticket_id, e.data.resolved_at) for e in events]
        )

    async def on_breached(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """routing's breaches: those of a linked ticket happened before its link or after its
        unlinking (a held ticket's clocks stand still)."""
        targets: tuple[tuple[SlaTarget, Milestone], ...] = (
            (SlaTarget.FIRST_RESPONSE, "first_response_breached_at"),
            (SlaTarget.RESOLUTION, "resolution_breached_at"),
        )
        for target, milestone in targets:
            await repo.tickets.record_milestone(
                conn,
                milestone,
                [(e.data.ticket_id, e.data.breached_at) for e in events if e.data.target == target],
            )

    def handlers(self) -> dict[str, Handler]:
        return {
            TicketCreated.TYPE: self.on_created,
            TicketRouted.TYPE: self.on_routed,
            TicketReplied.TYPE: self.on_replied,
            TicketResolved.TYPE: self.on_resolved,
            SlaBreached.TYPE: self.on_breached,
            RemedyAcknowledged.TYPE: self.on_remedy_answer,
            RemedyRejected.TYPE: self.on_remedy_answer,
        }

    async def _link_arrivals(self, conn: asyncpg.Connection, ticket_ids: list[UUID]) -> None:
        if not ticket_ids:
            return
        incidents = await repo.incidents.open_incidents(conn)
        if incidents:
            await self._link_matching(conn, incidents, await repo.tickets.facts(conn, ticket_ids))

    async def _link_matching(
        self,
        conn: asyncpg.Connection,
        incidents: list[asyncpg.Record],
        tickets: list[asyncpg.Record],
    ) -> int:
        """Link each ticket to the first open incident it matches; returns how many."""
        order = [(i, criteria_of(i)) for i in incidents]
        chosen: dict[UUID, list[UUID]] = {}
        for t in tickets:
            found = first_match(order, facts_of(t))
            if found is not None:
                chosen.setdefault(found["incident_id"], []).append(t["ticket_id"])
        by_id = {i["incident_id"]: i for i in incidents}
        events = []
        for incident_id, ids in chosen.items():
            for ticket_id in await repo.incidents.link(conn, incident_id, ids, by=None):
                events.append(self._linked(by_id[incident_id], ticket_id, by=None))
        await outbox.add(conn, events)
        return len(events)

    def _linked(
        self, incident: asyncpg.Record, ticket_id: UUID, *, by: str | None
    ) -> Envelope[IncidentTicketLinked]:
        return keyed(
            IncidentTicketLinked(
                ticket_id=ticket_id,
                incident_id=incident["incident_id"],
                number=incident["number"],
                title=incident["title"],
                status_url=self._s.status_url(incident["number"]),
                by=by,
                linked_at=now(),
            ),
            incident["incident_id"],
        )

    # ---- incidents ----------------------------------------------------------------------------

    async def open(self, given: IncidentIn, *, by: str) -> asyncpg.Record:
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            alert = None
            if given.alert_id is not None:
                alert = await repo.incidents.alert(conn, given.alert_id)
                if alert is None:
                    raise NotFound(f"no alert {given.alert_id}")
                if alert["incident_id"] is not None:
                    raise Conflict(f"alert {given.alert_id} already opened an incident")
            return await self.open_in(conn, given, alert=alert, by=by)

    async def open_in(
        self,
        conn: asyncpg.Connection,
        given: IncidentIn,
        *,
        alert: asyncpg.Record | None,
        by: str,
    ) -> asyncpg.Record:
        """Open the incident in the caller's transaction: its timeline's first entry, the
        response group's messages, and the matching tickets of the last hour linked."""
        if given.criteria is not None:
            criteria = given.criteria.as_event()
        else:
            assert alert is not None  # IncidentIn asks for criteria or an alert
            criteria = criteria_from_alert(alert["dimension"], alert["value"], alert["keywords"])
        title = given.title or (alert["title"] if alert else "")
        row = await repo.incidents.add_incident(
            conn,
            {
                "incident_id": uuid7(),
                "title": title,
                "title_en": given.title_en,
                "severity": given.severity.value,
                "criteria": to_builtins(criteria),
                "owner_id": given.owner_id,
                "alert_id": alert["alert_id"] if alert else None,
                "opened_by": by,
            },
        )
        await repo.incidents.add_entry(
            conn,
            incident_id=row["incident_id"],
            kind="opened",
            status=row["status"],
            message=title,
            message_en=given.title_en,
            by=by,
            public=True,
        )
        opened = IncidentOpened(
            incident_id=row["incident_id"],
            number=row["number"],
            title=title,
            severity=IncidentSeverity(row["severity"]),
            criteria=criteria,
            owner_id=row["owner_id"],
            alert_id=row["alert_id"],
            status_url=self._s.status_url(row["number"]),
            by=by,
            opened_at=row["opened_at"],
        )
        await outbox.add(conn, [keyed(opened, row["incident_id"])])
        await self._page(conn, row, what="已启动 opened", message=f"{title} (by {by})")
        since = now() - timedelta(minutes=self._s.link_lookback_minutes)
        await self._link_matching(conn, [row], await repo.tickets.recent_unheld(conn, since))
        return row

    async def update(self, incident_id: UUID, given: UpdateIn, *, by: str) -> asyncpg.Record:
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            current = await self._locked(conn, incident_id)
            check_open(current["status"])
            changes: dict[str, Any] = {}
            if given.status:
                changes["status"] = given.status
            if given.severity:
                changes["severity"] = given.severity.value
            if given.owner_id:
                changes["owner_id"] = given.owner_id
            if given.criteria:
                changes["criteria"] = to_builtins(given.criteria.as_event())
            row = (
                await repo.incidents.update_incident(conn, incident_id, changes)
                if changes
                else current
            )
            await repo.incidents.add_entry(
                conn,
                incident_id=incident_id,
                kind="update",
                status=row["status"],
                message=given.message,
                message_en=given.message_en,
                by=by,
                public=given.public and given.message is not None,
            )
            updated = IncidentUpdated(
                incident_id=incident_id,
                status=IncidentStatus(row["status"]),
                severity=IncidentSeverity(row["severity"]),
                criteria=criteria_of(row),
                owner_id=row["owner_id"],
                message=given.message,
                by=by,
                updated_at=now(),
            )
            await outbox.add(conn, [keyed(updated, incident_id)])
            words = given.message or ", ".join(f"{k}: {v}" for k, v in changes.items())
            await self._page(conn, row, what="进展 update", message=f"{words} (by {by})")
        return row

    async def link(self, incident_id: UUID, ticket_id: UUID, *, by: str) -> bool:
        """An agent links a ticket by hand; False when it was linked already."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            incident = await self._locked(conn, incident_id)
            check_open(incident["status"])
            if other := await repo.incidents.held_elsewhere(conn, incident_id, ticket_id):
                raise Conflict(f"ticket {ticket_id} is linked to {other}: unlink it there first")
            if not await repo.incidents.relink(conn, incident_id, ticket_id, by):
                return False
            await outbox.add(conn, [self._linked(incident, ticket_id, by=by)])
        return True

    async def unlink(self, incident_id: UUID, ticket_id: UUID, *, by: str) -> None:
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            incident = await self._locked(conn, incident_id)
            check_open(incident["status"])
            if not await repo.incidents.unlink(conn, incident_id, ticket_id, by):
                raise NotFound(f"ticket {ticket_id} is not linked to {incident['number']}")
            unlinked = IncidentTicketUnlinked(
                ticket_id=ticket_id, incident_id=incident_id, by=by, unlinked_at=now()
            )
            await outbox.add(conn, [keyed(unlinked, incident_id)])

    async def announce(
        self, incident_id: UUID, given: AnnouncementIn, *, by: str, key: str | None = None
    ) -> int:
        """A progress update on the status page and a notice to each affected learner, once
        each, released at the providers' pace; returns how many learners it will reach. An
        announcement made before under the same idempotency `key` is not made again: its count
        is returned."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            incident = await self._locked(conn, incident_id)
            if (
                key is not None
                and (made := await repo.outreach.announced(conn, incident_id, key)) is not None
            ):
                return made
            check_open(incident["status"])
            if given.audience == Audience.ENROLLED and not criteria_of(incident).courses:
                raise Conflict("the incident names no course: announce to the linked learners")
            await repo.incidents.add_entry(
                conn,
                incident_id=incident_id,
                kind="announcement",
                status=incident["status"],
                message=given.message,
                message_en=given.message_en,
                by=by,
                public=True,
            )
            return await self._notices(
                conn,
                incident,
                kind=NoticeKind.ANNOUNCEMENT,
                audience=given.audience,
                body=given.message,
                body_en=given.message_en,
                by=by,
                key=key,
            )

    async def resolve(self, incident_id: UUID, given: ResolveIn, *, by: str) -> asyncpg.Record:
        """One action: the incident resolved, each linked ticket resolved by desk, and each of
        their learners told once."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            current = await self._locked(conn, incident_id)
            check_open(current["status"])
            at = now()
            row = await repo.incidents.update_incident(
                conn,
                incident_id,
                {
                    "status": IncidentStatus.RESOLVED.value,
                    "resolution": given.resolution,
                    "resolved_by": by,
                    "resolved_at": at,
                },
            )
            await repo.incidents.add_entry(
                conn,
                incident_id=incident_id,
                kind="resolved",
                status=row["status"],
                message=given.resolution,
                message_en=given.resolution_en,
                by=by,
                public=True,
            )
            tickets = await repo.incidents.active_links(conn, incident_id)
            events: list[Envelope[Any]] = [
                keyed(
                    IncidentResolved(
                        incident_id=incident_id,
                        resolution=given.resolution,
                        linked_tickets=len(tickets),
                        by=by,
                        resolved_at=at,
                    ),
                    incident_id,
                )
            ]
            events += [
                keyed(
                    IncidentTicketResolved(
                        ticket_id=t,
                        incident_id=incident_id,
                        resolution=given.resolution,
                        by=by,
                        resolved_at=at,
                    ),
                    incident_id,
                )
                for t in tickets
            ]
            await outbox.add(conn, events)
            await self._notices(
                conn,
                row,
                kind=NoticeKind.RESOLUTION,
                audience=Audience.LINKED,
                body=given.resolution,
                body_en=given.resolution_en,
                by=by,
            )
            await self._page(conn, row, what="已解决 resolved", message=given.resolution)
        return row

    async def request_compensation(
        self, incident_id: UUID, given: CompensationIn, *, by: str
    ) -> asyncpg.Record:
        """A compensation batch, waiting for a second supervisor's approval."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            incident = await self._locked(conn, incident_id)
            course = (
                extension_course(given.course_id, criteria_of(incident).courses)
                if given.kind == "extension"
                else None
            )
            row = await repo.outreach.add_compensation(
                conn,
                {
                    "batch_id": uuid7(),
                    "incident_id": incident_id,
                    "kind": given.kind,
                    "amount": given.amount,
                    "currency": given.currency if given.kind == "coupon" else None,
                    "points": given.points,
                    "days": given.days,
                    "course_id": course,
                    "reason": given.reason,
                    "requested_by": by,
                },
            )
            await repo.incidents.add_entry(
                conn,
                incident_id=incident_id,
                kind="compensation_requested",
                message=f"{given.kind}: {given.reason}",
                by=by,
            )
        return row

    async def approve_compensation(self, batch_id: UUID, *, by: str) -> asyncpg.Record:
        """Approved by someone other than its requester: one remedy for each learner of the
        incident's linked tickets not compensated in kind already, issued on
        careloop.remedies.v1 by the releaser, each exactly once."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            batch = await repo.outreach.compensation(conn, batch_id, lock=True)
            if batch is None:
                raise NotFound(f"no compensation batch {batch_id}")
            check_approver(batch["requested_by"], by, batch["approved_by"])
            incident_id = batch["incident_id"]
            row = await repo.outreach.approve_compensation(conn, batch, by=by)
            await repo.incidents.add_entry(
                conn,
                incident_id=incident_id,
                kind="compensation_approved",
                message=f"{batch['kind']}: {row['learners']} learners",
                by=by,
            )
        return row

    async def on_remedy_answer(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """The acting systems' answers to this service's remedies."""
        answers = [
            (
                e.data.remedy_id,
                getattr(e.data, "reference", None),
                getattr(e.data, "reason", None),
            )
            for e in events
        ]
        await repo.outreach.remedy_answered(conn, answers)

    async def _notices(
        self,
        conn: asyncpg.Connection,
        incident: asyncpg.Record,
        *,
        kind: NoticeKind,
        audience: Audience,
        body: str,
        body_en: str | None,
        by: str,
        key: str | None = None,
    ) -> int:
        """The announcement (under the client's idempotency `key`, if any) and one pending
        notice per reachable learner of `audience`."""
        announcement_id = uuid7()
        rows = []
        if audience == Audience.LINKED:
            for r in await repo.outreach.linked_learners(conn, incident["incident_id"]):
                channel = notice_channel(r["learner"], r["preferred_channel"])
                if channel:
                    rows.append(
                        (r["learner_key"], r["learner"], r["ticket_id"], channel, r["locale"])
                    )
        else:
            courses = list(criteria_of(incident).courses)
            for r in await repo.outreach.enrolled_learners(conn, courses):
                learner = {
                    "name": r["name"] or r["learner_id"],
                    "learner_id": r["learner_id"],
                    "email": r["email"],
                    "phone": r["phone"],
                    "wechat_openid": r["wechat_openid"],
                }
                channel = notice_channel(learner, r["preferred_channel"])
                if channel:
                    rows.append((learner_key(learner), learner, None, channel, r["locale"]))
        await repo.outreach.add_announcement(
            conn,
            {
                "announcement_id": announcement_id,
                "incident_id": incident["incident_id"],
                "kind": kind.value,
                "audience": audience.value,
                "title": incident["title"],
                "body": body,
                "body_en": body_en,
                "learners": len(rows),
                "by": by,
                "idempotency_key": key,
            },
        )
        return await repo.outreach.add_notices(
            conn,
            [
                (
                    uuid7(),
                    incident["incident_id"],
                    announcement_id,
                    kind.value,
                    key,
                    learner,
                    ticket_id,
                    channel,
                    "en" if locale == "en" else "zh",
                )
                for key, learner, ticket_id, channel, locale in rows
            ],
        )

    async def _page(
        self, conn: asyncpg.Connection, incident: asyncpg.Record, *, what: str, message: str
    ) -> None:
        """The response group's messages: an e-mail to each member, one to the chat robot."""
        subject, body = page_text(
            what=what,
            number=incident["number"],
            title=incident["title"],
            severity=incident["severity"],
            status=incident["status"],
            message=message,
            url=self._s.status_url(incident["number"]),
        )
        urgent = incident["severity"] == IncidentSeverity.SEV1
        targets = [f"email:{m.email}" for m in self._s.response_group if m.email]
        if self._s.webhook_url is not None:
            targets.append("webhook")
        await repo.outreach.add_pages(
            conn, [(incident["incident_id"], t, subject, body, urgent) for t in targets]
        )

    async def _locked(self, conn: asyncpg.Connection, incident_id: UUID) -> asyncpg.Record:
        row = await repo.incidents.incident(conn, incident_id, lock=True)
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        return row


def facts_of(row: asyncpg.Record) -> TicketFacts:
    return TicketFacts(
        subject=row["subject"] or "",
        description=row["description"] or "",
        channel=Channel(row["channel"]) if row["channel"] else None,
        course_id=row["course_id"],
        category=Category(row["category"]) if row["category"] else None,
    )


# Keyed by the ticket: a ticket's facts are recorded once (repo.record_created and
# record_category count only what they recorded now), so a redelivery needs no inbox row; an
# answer to a remedy sets the same values again, and a ticket's milestones keep their first time.
IDEMPOTENT = frozenset(
    {
        TicketCreated.TYPE,
        TicketRouted.TYPE,
        TicketReplied.TYPE,
        TicketResolved.TYPE,
        SlaBreached.TYPE,
        RemedyAcknowledged.TYPE,
        RemedyRejected.TYPE,
    }
)
