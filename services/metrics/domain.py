"""metrics' pure parts: which status an event means and whether a first response was late."""

from datetime import datetime

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
