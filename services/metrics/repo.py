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
    rows: Sequence[tuple[UUID, str, str, str, str, datetime, datetime, str, datetime | None]],
) -> dict[UUID, asyncpg.Record]:
    """(ticket_id, channel, category, priority, team, first_response_due_at,
    resolution_due_at, status, status_at) of tickets triaged for the first time; returns those
    that were, with the first response already recorded for any whose reply came first
    (`first_response_seconds`, `first_responded_at`, `priority`, `first_response_due_at`).

    A ticket already triaged is left alone, so it is counted once however often its triage
    comes. A triage without a placement (`ticket.triaged`) passes no status_at: its status
    `new` then never wins over one already known.
    """
    found = await conn.fetch(
        """
        INSERT INTO tickets AS t (ticket_id, channel, category, priority, team,
                                  first_response_due_at, resolution_due_at, status, status_at)
        SELECT r.ticket_id, r.channel, r.category, r.priority, r.team, r.due, r.resolution_due,
               r.status, coalesce(r.status_at, '-infinity')
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::timestamptz[], $7::timestamptz[], $8::text[], $9::timestamptz[])
             AS r(ticket_id, channel, category, priority, team, due, resolution_due, status,
                  status_at)
        ON CONFLICT (ticket_id) DO UPDATE SET
            channel = coalesce(t.channel, excluded.channel),
            category = excluded.category,
            priority = excluded.priority,
            first_response_due_at = excluded.first_response_due_at,
            resolution_due_at = excluded.resolution_due_at,
            team = CASE WHEN t.status_at < excluded.status_at
                        THEN excluded.team ELSE coalesce(t.team, excluded.team) END,
            status = CASE WHEN t.status_at < excluded.status_at
                          THEN excluded.status ELSE t.status END,
            status_at = greatest(t.status_at, excluded.status_at)
        WHERE t.category IS NULL
        RETURNING ticket_id, priority, first_response_due_at, first_responded_at,
                  first_response_seconds
        """,
        *_columns(rows, 9),
    )
    return {r["ticket_id"]: r for r in found}


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
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, datetime, float]]
) -> list[asyncpg.Record]:
    """(ticket_id, replied_at, seconds since created) of first responses; returns, for those
    not recorded before, the ticket's priority (None while its triage has not arrived) and due
    time for the SLA."""
    return await conn.fetch(
        """
        INSERT INTO tickets AS t (ticket_id, first_responded_at, first_response_seconds)
        SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::float8[])
        ON CONFLICT (ticket_id) DO UPDATE SET
            first_responded_at = excluded.first_responded_at,
            first_response_seconds = excluded.first_response_seconds
        WHERE t.first_responded_at IS NULL
        RETURNING ticket_id, priority, first_response_due_at, first_responded_at,
                  first_response_seconds
        """,
        *_columns(rows, 3),
    )


async def record_resolutions(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str, datetime]]
) -> dict[UUID, asyncpg.Record]:
    """(ticket_id, agent_id, resolved_at): who resolved each ticket last and when; returns each
    ticket's category, priority and team ('unknown' where its triage has not arrived) and
    whether routing raised a resolution breach since the ticket was last opened."""
    found = await conn.fetch(
        """
        INSERT INTO tickets AS t (ticket_id, resolved_by, resolved_at)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[])
        ON CONFLICT (ticket_id) DO UPDATE SET
            resolved_by = excluded.resolved_by, resolved_at = excluded.resolved_at
        RETURNING ticket_id,
                  coalesce(category, 'unknown') AS category,
                  coalesce(priority, 'unknown') AS priority,
                  coalesce(team, 'unknown') AS team,
                  coalesce(resolution_breached_at > coalesce(reopened_at, '-infinity')
                           AND resolution_breached_at <= resolved_at, false) AS breached
        """,
        *_columns(rows, 3),
    )
    return {r["ticket_id"]: r for r in found}


async def record_reopens(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, int, datetime]]
) -> None:
    """(ticket_id, reopenings, last reopened_at), one row per ticket; each reopening is
    applied once (the inbox), so the count adds up."""
    await conn.execute(
        """
        INSERT INTO tickets AS t (ticket_id, reopens, reopened_at)
        SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[])
        ON CONFLICT (ticket_id) DO UPDATE SET
            reopens = t.reopens + excluded.reopens,
            reopened_at = greatest(t.reopened_at, excluded.reopened_at)
        """,
        *_columns(rows, 3),
    )


async def closures(
    conn: asyncpg.Connection, ticket_ids: Sequence[UUID]
) -> dict[UUID, asyncpg.Record]:
    """Each closed ticket's category ('unknown' before its triage arrives) and reopenings."""
    found = await conn.fetch(
        """
        SELECT ticket_id, coalesce(category, 'unknown') AS category, reopens FROM tickets
        WHERE ticket_id = ANY($1::uuid[])
        """,
        list(ticket_ids),
    )
    return {r["ticket_id"]: r for r in found}


async def record_resolution_breaches(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, datetime]]
) -> None:
    """(ticket_id, breached_at) of resolution breaches; the latest is kept, so a repeat or a
    stale copy changes nothing."""
    await conn.execute(
        """
        INSERT INTO tickets AS t (ticket_id, resolution_breached_at)
        SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
        ON CONFLICT (ticket_id) DO UPDATE SET resolution_breached_at = excluded.resolution_breached_at
        WHERE t.resolution_breached_at IS NULL
           OR t.resolution_breached_at < excluded.resolution_breached_at
        """,
        *_columns(rows, 2),
    )


async def resolvers(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> dict[UUID, str]:
    """Who last resolved each of the tickets, where known."""
    rows = await conn.fetch(
        "SELECT ticket_id, resolved_by FROM tickets "
        "WHERE ticket_id = ANY($1::uuid[]) AND resolved_by IS NOT NULL",
        list(ticket_ids),
    )
    return {r["ticket_id"]: r["resolved_by"] for r in rows}


async def open_backlog(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT status, coalesce(team, 'unrouted') AS team, count(*) AS n FROM tickets
        WHERE status <> 'closed' GROUP BY 1, 2
        """
    )


async def overdue(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Per priority, open tickets past their first-response due time with no reply yet, and
    past their resolution due time; every priority with an open ticket has a row."""
    return await conn.fetch(
        """
        SELECT coalesce(priority, 'unknown') AS priority,
               count(*) FILTER (WHERE first_responded_at IS NULL
                                AND first_response_due_at < now()) AS first_response,
               count(*) FILTER (WHERE resolution_due_at < now()) AS resolution
        FROM tickets WHERE status NOT IN ('closed', 'resolved')
        GROUP BY 1
        """
    )


async def oldest_open(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Per team, the age in seconds of the oldest ticket not resolved or closed."""
    return await conn.fetch(
        """
        SELECT coalesce(team, 'unrouted') AS team,
               extract(epoch FROM now() - min(created_at))::float8 AS seconds
        FROM tickets WHERE status NOT IN ('closed', 'resolved') AND created_at IS NOT NULL
        GROUP BY 1
        """
    )
