"""SQL for metrics' view. Nothing here commits: the caller owns the transaction.

Each function takes a batch's rows as typed columns (one `unnest` per statement, at most one
row per ticket) and writes a row only when the event adds something: a repeat of an event
already applied, or an older one arriving after a newer, changes nothing and writes nothing.
That is what makes the handlers idempotent by the ticket's own key, without an inbox row.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.inbox import last_per_key


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """`rows` (the last one per ticket, the first field) as `width` column lists."""
    once = last_per_key(rows, lambda r: r[0])
    return [list(c) for c in zip(*once, strict=True)] if once else [[] for _ in range(width)]


async def record_created(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str, datetime, datetime]]
) -> None:
    """(ticket_id, channel, created_at, status_at): a ticket's origin, and status `new` unless
    something newer already happened to it (its routing may arrive first: another topic)."""
    await conn.execute(
        """
        INSERT INTO tickets AS t (ticket_id, channel, created_at, status, status_at)
        SELECT r.ticket_id, r.channel, r.created_at, 'new', r.status_at
        FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[])
             AS r(ticket_id, channel, created_at, status_at)
        ON CONFLICT (ticket_id) DO UPDATE SET
            channel = coalesce(t.channel, excluded.channel),
            created_at = coalesce(t.created_at, excluded.created_at),
            status = CASE WHEN t.status_at < excluded.status_at THEN 'new' ELSE t.status END,
            status_at = greatest(t.status_at, excluded.status_at)
        WHERE t.created_at IS NULL OR t.status_at < excluded.status_at
        """,
        *_columns(rows, 4),
    )


async def record_triage(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[UUID, str, str, str, str, datetime, str, datetime | None]],
) -> set[UUID]:
    """(ticket_id, channel, category, priority, team, first_response_due_at, status,
    status_at) of tickets triaged for the first time; returns those that were.

    A ticket already triaged is left alone, so it is counted once however often its triage
    comes. A triage without a placement (`ticket.triaged`) passes no status_at: its status
    `new` then never wins over one already known.
    """
    found = await conn.fetch(
        """
        INSERT INTO tickets AS t (ticket_id, channel, category, priority, team,
                                  first_response_due_at, status, status_at)
        SELECT r.ticket_id, r.channel, r.category, r.priority, r.team, r.due, r.status,
               coalesce(r.status_at, '-infinity')
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::timestamptz[], $7::text[], $8::timestamptz[])
             AS r(ticket_id, channel, category, priority, team, due, status, status_at)
        ON CONFLICT (ticket_id) DO UPDATE SET
            channel = coalesce(t.channel, excluded.channel),
            category = excluded.category,
            priority = excluded.priority,
            first_response_due_at = excluded.first_response_due_at,
            team = CASE WHEN t.status_at < excluded.status_at
                        THEN excluded.team ELSE coalesce(t.team, excluded.team) END,
            status = CASE WHEN t.status_at < excluded.status_at
                          THEN excluded.status ELSE t.status END,
            status_at = greatest(t.status_at, excluded.status_at)
        WHERE t.category IS NULL
        RETURNING ticket_id
        """,
        *_columns(rows, 8),
    )
    return {r["ticket_id"] for r in found}


async def set_status(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str, str | None, datetime]]
) -> None:
    """(ticket_id, status, team or None, status_at): the newest status wins, whatever order
    the topics delivered it in; a placement also says which team holds the ticket now."""
    await conn.execute(
        """
        INSERT INTO tickets AS t (ticket_id, status, team, status_at)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
        ON CONFLICT (ticket_id) DO UPDATE SET
            status = excluded.status,
            team = coalesce(excluded.team, t.team),
            status_at = excluded.status_at
        WHERE t.status_at < excluded.status_at
        """,
        *_columns(rows, 4),
    )


async def record_first_responses(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, datetime]]
) -> list[asyncpg.Record]:
    """(ticket_id, replied_at) of first responses; returns, for those not recorded before,
    the ticket's priority and due time for the SLA."""
    return await conn.fetch(
        """
        INSERT INTO tickets AS t (ticket_id, first_responded_at)
        SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
        ON CONFLICT (ticket_id) DO UPDATE SET first_responded_at = excluded.first_responded_at
        WHERE t.first_responded_at IS NULL
        RETURNING ticket_id, priority, first_response_due_at
        """,
        *_columns(rows, 2),
    )


async def priorities(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> dict[UUID, str]:
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
