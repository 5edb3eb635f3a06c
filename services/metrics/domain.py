"""metrics' pure parts: which status an event means, whether a first response was late, and how
a ticket's reopenings label it."""

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from shared.events import (
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketQueued,
    TicketReopened,
    TicketResolved,
)

STATUS_OF: dict[str, str] = {
    TicketCreated.TYPE: "new",
    TicketQueued.TYPE: "queued",
    TicketAssigned.TYPE: "assigned",
    TicketResolved.TYPE: "resolved",
    TicketReopened.TYPE: "reopened",
    TicketClosed.TYPE: "closed",
}


def placed(agent_id: str | None) -> str:
    """The status a routed ticket starts in: with an agent, or queued for its team."""
    return STATUS_OF[TicketAssigned.TYPE] if agent_id is not None else STATUS_OF[TicketQueued.TYPE]


def breached(due: datetime | None, responded_at: datetime) -> bool:
    """A first response after its due time is a breach; unknown due times are not counted."""
    return due is not None and responded_at > due


SURVEY_DIMENSIONS = ("overall", "response_speed", "problem_solving", "attitude")


def first_contact(reopens: int) -> str:
    """The `first_contact` label of a closed ticket: "true" when it was never reopened."""
    return "true" if reopens == 0 else "false"


def reopenings(events: Iterable[tuple[UUID, datetime]]) -> list[tuple[UUID, int, datetime]]:
    """(ticket_id, reopened_at) of a batch's reopenings as one row per ticket: how many, and
    the last."""
    rows: dict[UUID, tuple[int, datetime]] = {}
    for ticket_id, at in events:
        n, last = rows.get(ticket_id, (0, at))
        rows[ticket_id] = (n + 1, max(last, at))
    return [(ticket_id, n, last) for ticket_id, (n, last) in rows.items()]
