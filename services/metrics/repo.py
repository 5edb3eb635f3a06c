"""SQL for metrics' view. Nothing here commits: the caller owns the transaction."""

from collections.abc import Sequence
from typing import Any

import asyncpg

from shared.inbox import last_per_key


def _once(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return last_per_key(rows, lambda r: r["ticket_id"])


async def upsert_facts(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Fill in what an event knows about a ticket; fields it does not know stay as they are."""
    await conn.execute(
        """
        INSERT INTO tickets (ticket_id, channel, category, priority, team, created_at,
                             first_response_due_at)
        SELECT r.ticket_id, r.channel, r.category, r.priority, r.team, r.created_at,
               r.first_response_due_at
        FROM jsonb_to_recordset($1::jsonb) AS r(ticket_id uuid, channel text, category text,
             priority text, team text, created_at timestamptz, first_response_due_at timestamptz)
        ON CONFLICT (ticket_id) DO UPDATE SET
            channel = coalesce(excluded.channel, tickets.channel),
            category = coalesce(excluded.category, tickets.category),
            priority = coalesce(excluded.priority, tickets.priority),
            team = coalesce(excluded.team, tickets.team),
            created_at = coalesce(excluded.created_at, tickets.created_at),
            first_response_due_at = coalesce(excluded.first_response_due_at,
                                             tickets.first_response_due_at)
        """,
        _once(rows),
    )


async def set_status(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """The newest status wins, whatever order the topics delivered it in."""
    await conn.execute(
        """
        INSERT INTO tickets (ticket_id, status, status_at)
        SELECT r.ticket_id, r.status, r.status_at
        FROM jsonb_to_recordset($1::jsonb) AS r(ticket_id uuid, status text, status_at timestamptz)
        ON CONFLICT (ticket_id) DO UPDATE SET status = excluded.status, status_at = excluded.status_at
        WHERE tickets.status_at <= excluded.status_at
        """,
        _once(rows),
    )


async def record_first_responses(
    conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]
) -> list[asyncpg.Record]:
    """Store first-response times; returns each ticket's priority and due time for the SLA."""
    return await conn.fetch(
        """
        INSERT INTO tickets (ticket_id, first_responded_at)
        SELECT r.ticket_id, r.replied_at
        FROM jsonb_to_recordset($1::jsonb) AS r(ticket_id uuid, replied_at timestamptz)
        ON CONFLICT (ticket_id) DO UPDATE SET first_responded_at = excluded.first_responded_at
        RETURNING ticket_id, priority, first_response_due_at
        """,
        _once(rows),
    )


async def priorities(conn: asyncpg.Connection, ticket_ids: Sequence[Any]) -> dict[Any, str]:
    rows = await conn.fetch(
        "SELECT ticket_id, priority FROM tickets WHERE ticket_id = ANY($1::uuid[])",
        list(ticket_ids),
    )
    return {r["ticket_id"]: r["priority"] for r in rows}


async def open_backlog(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT status, coalesce(team, 'unrouted') AS team, count(*) AS n FROM tickets
        WHERE status <> 'closed' GROUP BY 1, 2
        """
    )


async def overdue_first_responses(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT coalesce(priority, 'unknown') AS priority, count(*) AS n FROM tickets
        WHERE status NOT IN ('closed', 'resolved') AND first_responded_at IS NULL
          AND first_response_due_at < now()
        GROUP BY 1
        """
    )
