"""Course changes' use cases: announcing a change (API or careloop.course_changes.v1) with one
pending notice per enrolled learner, turning a learner's reply into a ticket linked to the
change, and course operations' decisions on learners' own change requests.

The notices are released by incident's notice releaser (services.incident.delivery), at the
same per-channel pace as incident notices and under the same lock: each learner hears of a
change once however often the service dies.
"""

import re
import secrets
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from uuid6 import uuid7

from services.incident import repo as incident_repo
from services.incident.changes import repo
from services.incident.changes.domain import (
    NUMBER_PATTERN,
    ChangeIn,
    ChangeWords,
    DecisionIn,
    change_notice,
    decision_notice,
)
from services.incident.domain import Conflict, NotFound, Wording, learner_key, notice_channel
from services.incident.handlers import keyed
from services.incident.settings import IncidentSettings
from shared import outbox
from shared.events import (
    Category,
    ChangeKind,
    Channel,
    CourseChangeDecided,
    CourseChangeNoticeRequested,
    CourseChangeSubmitted,
    CourseChangeTicketLinked,
    Envelope,
    Learner,
    TicketCreated,
    TicketSubmitted,
    now,
    to_builtins,
)
from shared.service import Context

NUMBER = re.compile(rf"\b({NUMBER_PATTERN})\b")
REPLY_SUBJECTS = {
    "zh": "回复课程变更 {number}：{course}",
    "en": "Reply to course change {number}: {course}",
}


REPLIES_PER_DAY = 5  # per reply link: a learner's answers, not a way to flood desk


class Unprocessable(ValueError):
    """The request is well-formed but not one this service can act on (422)."""


class TooMany(Exception):
    """The reply link was used REPLIES_PER_DAY times in the last day (429)."""


class Changes:
    def __init__(self, ctx: Context[IncidentSettings]) -> None:
        self._ctx = ctx
        self._s = ctx.settings

    # ---- announcing -------------------------------------------------------------------------

    async def announce(
        self, given: ChangeIn, *, by: str, ref: str | None = None
    ) -> asyncpg.Record | None:
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            return await self.announce_in(conn, given, by=by, ref=ref)

    async def announce_in(
        self, conn: asyncpg.Connection, given: ChangeIn, *, by: str, ref: str | None
    ) -> asyncpg.Record | None:
        """The change and one pending notice per reachable learner enrolled in its course;
        None when `ref` was announced already."""
        change_id = uuid7()
        rows = []
        for r in await incident_repo.outreach.enrolled_learners(conn, [given.course_id]):
            learner = {
                "name": r["name"] or r["learner_id"],
                "learner_id": r["learner_id"],
                "email": r["email"],
                "phone": r["phone"],
                "wechat_openid": r["wechat_openid"],
            }
            channel = notice_channel(learner, r["preferred_channel"])
            key = learner_key(learner)
            if channel and key:
                locale = "en" if r["locale"] == "en" else "zh"
                rows.append(
                    (
                        uuid7(),
                        change_id,
                        None,
                        "announcement",
                        key,
                        learner,
                        channel,
                        locale,
                        secrets.token_urlsafe(18),
                    )
                )
        row = await repo.add_change(
            conn,
            {
                **given.model_dump(),
                "kind": given.kind.value,
                "change_id": change_id,
                "change_ref": ref,
                "learners": len(rows),
                "by": by,
            },
        )
        if row is not None:
            await repo.add_notices(conn, rows)
        return row

    async def on_submitted(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """Course operations' system's changes, checked as the API checks them (a past
        schedule against when it was submitted); a refused one is dead-lettered with the
        reason. A `change_ref` seen before is the same change."""
        for e in events:
            s: CourseChangeSubmitted = e.data
            fields = {k: v for k, v in to_builtins(s).items() if k in ChangeIn.model_fields}
            given = ChangeIn.model_validate(fields).check_at(s.submitted_at)
            await self.announce_in(conn, given, by=s.by, ref=s.change_ref)

    # ---- replies ----------------------------------------------------------------------------

    async def reply(self, token: str, message: str) -> tuple[asyncpg.Record, UUID] | None:
        """A learner's answer on their reply page: a new web ticket (on careloop.intake.v1,
        like any submission), recorded as a reply to the change; None for an unknown link.
        The link's notice is locked, so that the day's count holds across concurrent posts."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            notice = await repo.notice_by_token(conn, token)
            if notice is None:
                return None
            if await repo.replies_today(conn, notice["notice_id"]) >= REPLIES_PER_DAY:
                raise TooMany(f"{REPLIES_PER_DAY} replies a day on one link")
            ticket_id = uuid7()
            course = notice["course_title"] or notice["course_id"]
            await repo.add_reply(
                conn,
                ticket_id=ticket_id,
                change_id=notice["change_id"],
                notice_id=notice["notice_id"],
            )
            submitted = TicketSubmitted(
                ticket_id=ticket_id,
                channel=Channel.WEB,
                source="course_change",
                learner=msgspec.convert(notice["learner"], Learner),
                subject=REPLY_SUBJECTS[notice["locale"]].format(
                    number=notice["number"], course=course
                )[:200],
                description=message,
                course_id=notice["course_id"],
                language=notice["locale"],
                submitted_at=now(),
            )
            await outbox.add(conn, [keyed(submitted, ticket_id)])
        return notice, ticket_id

    async def on_created(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """Replies become linked once desk created their ticket: those sent from a reply page,
        and those on a channel naming a change the learner was told of (an e-mail reply keeps
        the CC- number in its subject)."""
        named = []
        for e in events:
            t: TicketCreated = e.data
            found = NUMBER.search(t.subject)
            if found:
                who = t.learner
                learner_id = who.learner_id or (
                    t.learner_context.learner_id if t.learner_context else None
                )
                named.append(
                    (
                        t.ticket_id,
                        found.group(1),
                        *(v.lower() if v else None for v in (learner_id, who.email)),
                        who.wechat_openid.lower() if who.wechat_openid else None,
                        who.phone,
                    )
                )
        await repo.replies_by_number(conn, named)
        linked = await repo.link_replies(conn, [e.data.ticket_id for e in events])
        await outbox.add(
            conn,
            [
                keyed(
                    CourseChangeTicketLinked(
                        ticket_id=r["ticket_id"],
                        change_id=r["change_id"],
                        number=r["number"],
                        course_id=r["course_id"],
                        kind=ChangeKind(r["kind"]),
                        linked_at=r["linked_at"],
                    ),
                    r["ticket_id"],
                )
                for r in linked
            ],
        )

    # ---- learners' own requests -------------------------------------------------------------

    async def decide(self, ticket_id: UUID, given: DecisionIn, *, by: str) -> asyncpg.Record:
        """Course operations approve or decline the change a learner asked for: recorded once
        (who, when, what they said), noted on the ticket, and the learner told by a notice."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            ticket = await repo.ticket(conn, ticket_id)
            if ticket is None or ticket["created_at"] is None:
                raise NotFound(f"no ticket {ticket_id} (incident keeps the last 14 days')")
            if ticket["category"] != Category.COURSE_CHANGE or ticket["is_reply"]:
                raise Unprocessable(
                    f"ticket {ticket['number']} is not a learner's course change request "
                    f"(category {ticket['category'] or 'not triaged yet'})"
                )
            row = await repo.add_decision(conn, ticket_id, {**given.model_dump(), "by": by})
            if row is None:
                raise Conflict(f"ticket {ticket['number']}'s request was decided already")
            learner = ticket["learner"]
            channel = notice_channel(learner, ticket["preferred_channel"])
            key = learner_key(learner)
            if channel and key:
                await repo.add_notices(
                    conn,
                    [
                        (
                            uuid7(),
                            None,
                            ticket_id,
                            "decision",
                            key,
                            learner,
                            channel,
                            "en" if ticket["reader_locale"] == "en" else "zh",
                            None,
                        )
                    ],
                )
            decided = CourseChangeDecided(
                ticket_id=ticket_id,
                decision=given.decision,
                note=given.note,
                by=by,
                decided_at=row["at"],
            )
            await outbox.add(conn, [keyed(decided, ticket_id)])
        return row


def notice_event(settings: IncidentSettings, row: Any) -> Envelope[CourseChangeNoticeRequested]:
    """A released notice as the event notify sends; its id is the notice's."""
    locale = row["locale"]
    reply_url = None
    if row["kind"] == "announcement":
        reply_url = reply_link(settings, row["reply_token"], locale)
        title, body = change_notice(words(row, settings), locale=locale, reply_url=reply_url)
        key = row["change_id"]
    else:
        title, body = decision_notice(
            row["decision"],
            number=row["ticket_number"],
            note=Wording(row["note"], row["note_en"]),
            locale=locale,
        )
        key = row["decision_ticket_id"]
    event = keyed(
        CourseChangeNoticeRequested(
            ticket_id=row["decision_ticket_id"],
            notice_id=row["notice_id"],
            change_id=row["change_id"],
            kind=row["kind"],
            learner=msgspec.convert(row["learner"], Learner),
            channel=row["channel"],
            locale=locale,
            title=title,
            body=body,
            reply_url=reply_url,
            requested_at=now(),
        ),
        key,
    )
    return msgspec.structs.replace(event, event_id=row["notice_id"])


def reply_link(settings: IncidentSettings, token: str, locale: str) -> str:
    """The learner's own page for answering a change (the token is theirs alone)."""
    return f"{settings.public_url}/changes/reply/{token}?lang={locale}"


def words(row: Any, settings: IncidentSettings) -> ChangeWords:
    """A stored change's words, its time in the learners' time zone."""
    return ChangeWords(
        number=row["number"],
        course=row["course_title"] or row["course_id"],
        kind=row["change_kind"],
        old=row["old"],
        new=row["new"],
        effective_at=row["effective_at"].astimezone(settings.zone),
        reason=Wording(row["reason"], row["reason_en"]),
        impact=Wording(row["impact"], row["impact_en"]),
        remedy=Wording(row["remedy"], row["remedy_en"]),
    )
