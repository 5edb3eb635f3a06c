"""notify's event handlers: ticket events become deliveries (`senders` works them off).

Every handler is idempotent by the event's own key (a contact and its confirmation per
ticket, the first triage per ticket, a delivery per delivery key), so none of these types
costs an inbox row: `IDEMPOTENT` lists them for the consumer.
"""

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
    TicketRouted,
    TicketTriaged,
)
from shared.inbox import Handler


async def on_created(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    contacts = []
    for e in events:
        t: TicketCreated = e.data
        contacts.append(
            repo.Contact(
                ticket_id=t.ticket_id,
                number=t.number,
                name=t.learner.name,
                email=t.learner.email,
                language=t.language,
                subject=t.subject,
                created_at=t.created_at,
            )
        )
    await repo.add_contacts_and_confirmations(conn, contacts)


async def on_triaged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """ticket.routed, or ticket.triaged of older records: what the confirmation promises."""
    await repo.add_triage(
        conn,
        [
            repo.Triage(
                ticket_id=e.data.ticket_id,
                priority=str(e.data.priority),
                first_response_due_at=e.data.first_response_due_at,
            )
            for e in events
        ],
    )


def _delivery(
    kind: NotificationKind, key: str, e: Envelope[Any], **payload: Any
) -> repo.NewDelivery:
    return repo.NewDelivery(
        delivery_key=f"{kind}:{key}",
        ticket_id=e.data.ticket_id,
        kind=kind,
        payload=payload,
    )


async def on_replied(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.add_deliveries(
        conn,
        [
            _delivery(NotificationKind.REPLY, str(e.data.reply_id), e, body=e.data.body)
            for e in events
        ],
    )


async def on_resolved(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    # Keyed by the event's id: a ticket resolved twice (after a reopening) asks twice.
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
    TicketRouted.TYPE: on_triaged,
    TicketTriaged.TYPE: on_triaged,
    TicketReplied.TYPE: on_replied,
    TicketResolved.TYPE: on_resolved,
    SurveyRequested.TYPE: on_survey,
}
IDEMPOTENT = frozenset(EVENT_HANDLERS)
