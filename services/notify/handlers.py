"""notify's event handlers: ticket events become deliveries (`senders` works them off)."""

from typing import Any

import asyncpg

from services.notify import repo
from shared.events import (
    Envelope,
    NotificationKind,
    SurveyRequested,
    TicketCreated,
    TicketReplied,
    TicketResolved,
    TicketTriaged,
)
from shared.inbox import Handler


async def on_created(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    rows = []
    for e in events:
        t: TicketCreated = e.data
        rows.append(
            {
                "ticket_id": str(t.ticket_id),
                "number": t.number,
                "name": t.learner.name,
                "email": t.learner.email,
                "language": t.language,
                "subject": t.subject,
                "created_at": t.created_at.isoformat(),
            }
        )
    await repo.upsert_contacts(conn, rows)
    await repo.queue_confirmations(conn, [e.data.ticket_id for e in events])


async def on_triaged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    rows = [
        {
            "ticket_id": str(e.data.ticket_id),
            "priority": e.data.priority,
            "first_response_due_at": e.data.first_response_due_at.isoformat(),
        }
        for e in events
    ]
    await repo.upsert_triage(conn, rows)


def _delivery(kind: NotificationKind, key: str, e: Envelope[Any], **payload: Any) -> dict[str, Any]:
    return {
        "delivery_key": f"{kind}:{key}",
        "ticket_id": str(e.data.ticket_id),
        "kind": kind,
        "payload": payload,
    }


async def on_replied(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.add_deliveries(
        conn,
        [
            _delivery(NotificationKind.REPLY, str(e.data.reply_id), e, body=e.data.body)
            for e in events
        ],
    )


async def on_resolved(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.add_deliveries(
        conn,
        [
            _delivery(
                NotificationKind.CONFIRM_REQUEST,
                str(e.event_id),
                e,
                resolution=e.data.resolution,
                confirm_url=e.data.confirm_url,
            )
            for e in events
        ],
    )


async def on_survey(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.add_deliveries(
        conn,
        [
            _delivery(
                NotificationKind.SURVEY, str(e.data.survey_id), e, survey_url=e.data.survey_url
            )
            for e in events
        ],
    )


EVENT_HANDLERS: dict[str, Handler] = {
    TicketCreated.TYPE: on_created,
    TicketTriaged.TYPE: on_triaged,
    TicketReplied.TYPE: on_replied,
    TicketResolved.TYPE: on_resolved,
    SurveyRequested.TYPE: on_survey,
}
