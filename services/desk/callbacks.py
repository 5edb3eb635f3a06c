"""Which closed tickets get a call-back (R9.3, 004 §三.3): a deterministic sample of them by
ticket id, and every complaint without a case (a case raises its own when it closes)."""

import hashlib
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg


def sampled(ticket_id: UUID, rate: float) -> bool:
    """Whether the ticket falls in a `rate` sample (0 none, 1 all). By a hash of its id, not a
    random draw: a ticket reopened and closed again, or closed on another replica, gets the
    same answer, and the sample is spread evenly over teams and time."""
    draw = int.from_bytes(hashlib.sha256(ticket_id.bytes).digest()[:8]) / 2**64
    return draw < rate


async def raise_on_close(
    conn: asyncpg.Connection, ticket_ids: Sequence[UUID], closed_at: datetime, rate: float
) -> None:
    """Put the closing tickets' call-backs in the agents' list, once per ticket: one statement
    for a batch of auto-closed tickets."""
    sample = [t for t in ticket_ids if sampled(t, rate)]
    await conn.execute(
        """
        INSERT INTO ticket_callbacks (ticket_id, reason, due_at)
        SELECT t.ticket_id, CASE WHEN t.category = 'complaint' THEN 'complaint' ELSE 'sample' END,
               $3
        FROM tickets t
        WHERE t.ticket_id = ANY($1::uuid[])
          AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.ticket_id = t.ticket_id)
          AND (t.category = 'complaint' OR t.ticket_id = ANY($2::uuid[]))
        ON CONFLICT (ticket_id) DO NOTHING
        """,
        list(ticket_ids),
        sample,
        closed_at,
    )
