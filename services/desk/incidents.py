"""What desk does with the incident service's events (careloop.incidents.v1): a linked or
unlinked ticket notes it in its history (the workspace shows the incident), and a resolved
incident resolves each of its linked tickets with its resolution, once. A learner's reply to a
course change, and course operations' decision on a learner's change request, are noted in
the ticket's history too.

The learner's one message about the resolution is the incident's notice, so the ticket's
`ticket.resolved` carries resolution_code "incident" (notify then asks no confirmation and
survey no survey); the ticket closes like any resolved one.
"""

from typing import Any

import asyncpg

from services.desk import repo
from services.desk.domain import ResolutionCode, Status
from services.desk.links import Links
from shared import outbox, tokens
from shared.events import (
    CourseChangeDecided,
    CourseChangeTicketLinked,
    Envelope,
    IncidentTicketLinked,
    IncidentTicketResolved,
    IncidentTicketUnlinked,
    TicketResolved,
    new_event,
)
from shared.inbox import Handler

PRODUCER = "desk"
RESOLVABLE = frozenset(
    {Status.NEW, Status.QUEUED, Status.ASSIGNED, Status.REOPENED, Status.PENDING_LEARNER}
)


async def on_linked(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    linked: list[IncidentTicketLinked] = [e.data for e in events]
    await repo.add_history(
        conn,
        [
            (
                i.ticket_id,
                "incident_linked",
                i.by or "incident",
                {
                    "incident_id": str(i.incident_id),
                    "number": i.number,
                    "title": i.title,
                    "status_url": i.status_url,
                },
            )
            for i in linked
        ],
    )


async def on_unlinked(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    unlinked: list[IncidentTicketUnlinked] = [e.data for e in events]
    await repo.add_history(
        conn,
        [
            (i.ticket_id, "incident_unlinked", i.by, {"incident_id": str(i.incident_id)})
            for i in unlinked
        ],
    )


async def on_course_change_linked(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """A learner's reply to a course change: the ticket's history names the change."""
    linked: list[CourseChangeTicketLinked] = [e.data for e in events]
    await repo.add_history(
        conn,
        [
            (
                c.ticket_id,
                "course_change_linked",
                "incident",
                {"change_id": str(c.change_id), "number": c.number, "kind": c.kind.value},
            )
            for c in linked
        ],
    )


async def on_course_change_decided(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """Course operations' decision on the learner's request, in the ticket's history."""
    decided: list[CourseChangeDecided] = [e.data for e in events]
    await repo.add_history(
        conn,
        [
            (
                d.ticket_id,
                f"course_change_{d.decision}",
                d.by,
                {"decision": d.decision, "note": d.note},
            )
            for d in decided
        ],
    )


def resolving(public_url: str, links: Links) -> Handler:
    async def on_resolved(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """Resolve each linked ticket still open; one already resolved or closed (by an agent,
        or by this same event delivered again) stays as it is."""
        for event in events:
            done: IncidentTicketResolved = event.data
            ticket = await repo.lock_ticket(conn, done.ticket_id)
            if ticket is None or Status(ticket["status"]) not in RESOLVABLE:
                continue
            token = tokens.new_token()
            await repo.set_status(
                conn,
                done.ticket_id,
                Status.RESOLVED,
                resolved_at=done.resolved_at,
                confirm_token_sha256=tokens.digest(token),
                needs_supervisor=False,
                resolution_code=ResolutionCode.INCIDENT.value,
            )
            await repo.add_history(
                conn,
                [
                    (
                        done.ticket_id,
                        "resolved",
                        done.by,
                        {
                            "resolution": done.resolution,
                            "resolution_code": ResolutionCode.INCIDENT,
                            "incident_id": str(done.incident_id),
                        },
                    )
                ],
            )
            await outbox.add(
                conn,
                [
                    new_event(
                        TicketResolved(
                            ticket_id=done.ticket_id,
                            number=ticket["number"],
                            agent_id=done.by,
                            resolution=done.resolution,
                            confirm_url=f"{public_url}/confirm/{token}",
                            created_at=ticket["created_at"],
                            resolved_at=done.resolved_at,
                            portal_url=links.portal_url(done.ticket_id),
                            resolution_code=ResolutionCode.INCIDENT.value,
                        ),
                        producer=PRODUCER,
                        cause=event,
                    )
                ],
            )

    return on_resolved


def event_handlers(public_url: str, links: Links) -> dict[str, Handler]:
    return {
        IncidentTicketLinked.TYPE: on_linked,
        IncidentTicketUnlinked.TYPE: on_unlinked,
        IncidentTicketResolved.TYPE: resolving(public_url, links),
        CourseChangeTicketLinked.TYPE: on_course_change_linked,
        CourseChangeDecided.TYPE: on_course_change_decided,
    }
