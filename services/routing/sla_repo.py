"""SQL for routing's SLA clocks and timers. Nothing here commits: the caller owns the transaction."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

WAKE_CHANNEL = "routing_sla"


class ClockRow(NamedTuple):
    ticket_id: UUID
    target: str
    cycle: int
    target_minutes: float
    consumed_minutes: float
    running_since: datetime | None


class TimerRow(NamedTuple):
    ticket_id: UUID
    target: str
    cycle: int
    threshold: str
    fire_at: datetime


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


async def seed_emails(conn: asyncpg.Connection, emails: Sequence[tuple[str, str]]) -> None:
    """Give agents without an address the seed's (an address set since is kept)."""
    await conn.execute(
        """
        UPDATE agents a SET email = s.email
        FROM unnest($1::text[], $2::text[]) AS s(agent_id, email)
        WHERE a.agent_id = s.agent_id AND a.email IS NULL
        """,
        *_columns(emails, 2),
    )


async def ticket_facts(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> dict[UUID, Any]:
    """Each ticket's priority, team and category, as routing triaged it."""
    rows = await conn.fetch(
        "SELECT ticket_id, priority, team, category FROM tickets WHERE ticket_id = ANY($1::uuid[])",
        list(ticket_ids),
    )
    return {r["ticket_id"]: r for r in rows}


async def start_clocks(
    conn: asyncpg.Connection, clocks: Sequence[ClockRow]
) -> set[tuple[UUID, str]]:
    """Store clocks not stored before; returns the (ticket, target) pairs stored now (a
    redelivered ticket.created finds its clocks and starts nothing)."""
    rows = await conn.fetch(
        """
        INSERT INTO sla_clocks (ticket_id, target, cycle, target_minutes, consumed_minutes,
                                running_since)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::float8[], $5::float8[],
                             $6::timestamptz[])
        ON CONFLICT (ticket_id, target) DO NOTHING
        RETURNING ticket_id, target
        """,
        *_columns(clocks, 6),
    )
    return {(r["ticket_id"], r["target"]) for r in rows}


async def lock_clocks(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    """The clocks of `ticket_ids` still watched (not stopped), locked, with their ticket's
    priority, team and category."""
    return await conn.fetch(
        """
        SELECT c.ticket_id, c.target, c.cycle, c.target_minutes, c.consumed_minutes,
               c.running_since, k.priority, k.team, k.category
        FROM sla_clocks c JOIN tickets k USING (ticket_id)
        WHERE c.ticket_id = ANY($1::uuid[]) AND c.stopped_at IS NULL
        ORDER BY c.ticket_id, c.target
        FOR UPDATE OF c
        """,
        list(ticket_ids),
    )


async def save_clocks(conn: asyncpg.Connection, clocks: Sequence[ClockRow]) -> None:
    """Write clocks back (a pause, a resumption, a new target, a new cycle), running again."""
    await conn.execute(
        """
        UPDATE sla_clocks c SET cycle = s.cycle, target_minutes = s.target_minutes,
               consumed_minutes = s.consumed_minutes, running_since = s.running_since,
               stopped_at = NULL
        FROM unnest($1::uuid[], $2::text[], $3::int[], $4::float8[], $5::float8[],
                    $6::timestamptz[])
             AS s(ticket_id, target, cycle, target_minutes, consumed_minutes, running_since)
        WHERE c.ticket_id = s.ticket_id AND c.target = s.target
        """,
        *_columns(clocks, 6),
    )


async def restart_clocks(
    conn: asyncpg.Connection, ticket_ids: Sequence[UUID], target: str
) -> list[asyncpg.Record]:
    """The `target` clocks of `ticket_ids`, stopped or not, locked, for a new cycle."""
    return await conn.fetch(
        """
        SELECT c.ticket_id, c.target, c.cycle, k.priority, k.team, k.category
        FROM sla_clocks c JOIN tickets k USING (ticket_id)
        WHERE c.ticket_id = ANY($1::uuid[]) AND c.target = $2
        FOR UPDATE OF c
        """,
        list(ticket_ids),
        target,
    )


async def stop_clocks(
    conn: asyncpg.Connection, ticket_ids: Sequence[UUID], targets: Sequence[str], at: datetime
) -> None:
    """Stop the clocks (the target was met, or the ticket closed) and drop their unfired
    timers: nothing fires for them any more."""
    await conn.execute(
        """
        WITH stopped AS (
            UPDATE sla_clocks SET stopped_at = $3, running_since = NULL
            WHERE ticket_id = ANY($1::uuid[]) AND target = ANY($2::text[])
              AND stopped_at IS NULL
        )
        DELETE FROM sla_timers
        WHERE ticket_id = ANY($1::uuid[]) AND target = ANY($2::text[]) AND fired_at IS NULL
        """,
        list(ticket_ids),
        list(targets),
        at,
    )


async def forget(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> None:
    """A closed ticket's timers, fired or not: its history is desk's, and a reopening starts
    a new cycle."""
    await conn.execute("DELETE FROM sla_timers WHERE ticket_id = ANY($1::uuid[])", list(ticket_ids))


async def drop_timers(
    conn: asyncpg.Connection, ticket_ids: Sequence[UUID], thresholds: Sequence[str]
) -> None:
    """Unfired timers of `thresholds` on `ticket_ids` (a pause, before new ones are set)."""
    await conn.execute(
        """
        DELETE FROM sla_timers
        WHERE ticket_id = ANY($1::uuid[]) AND threshold = ANY($2::text[]) AND fired_at IS NULL
        """,
        list(ticket_ids),
        list(thresholds),
    )


async def set_timers(conn: asyncpg.Connection, timers: Sequence[TimerRow]) -> None:
    """Set unfired timers (moving an unfired one to its new time); a threshold that fired in
    this cycle stays fired."""
    await conn.execute(
        """
        INSERT INTO sla_timers (ticket_id, target, cycle, threshold, fire_at)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::timestamptz[])
        ON CONFLICT (ticket_id, target, cycle, threshold)
        DO UPDATE SET fire_at = excluded.fire_at WHERE sla_timers.fired_at IS NULL
        """,
        *_columns(timers, 5),
    )


async def claim_due(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Due timers, earliest first, locked so that no other replica fires them (skipped, not
    waited for, when another holds them), with their clock, ticket and assignee."""
    return await conn.fetch(
        """
        SELECT t.ticket_id, t.target, t.cycle, t.threshold, t.fire_at,
               c.target_minutes, c.consumed_minutes, c.running_since,
               k.priority, k.team, k.category,
               (SELECT a.agent_id FROM assignments a
                WHERE a.ticket_id = t.ticket_id AND a.released_at IS NULL) AS assignee_id
        FROM sla_timers t
        JOIN sla_clocks c ON c.ticket_id = t.ticket_id AND c.target = t.target
        JOIN tickets k ON k.ticket_id = t.ticket_id
        WHERE t.fired_at IS NULL AND t.fire_at <= now()
        ORDER BY t.fire_at
        LIMIT $1
        FOR UPDATE OF t SKIP LOCKED
        """,
        limit,
    )


async def mark_fired(conn: asyncpg.Connection, timers: Sequence[asyncpg.Record]) -> None:
    await conn.execute(
        """
        UPDATE sla_timers t SET fired_at = now()
        FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[])
             AS f(ticket_id, target, cycle, threshold)
        WHERE (t.ticket_id, t.target, t.cycle, t.threshold)
            = (f.ticket_id, f.target, f.cycle, f.threshold)
        """,
        [t["ticket_id"] for t in timers],
        [t["target"] for t in timers],
        [t["cycle"] for t in timers],
        [t["threshold"] for t in timers],
    )


async def seconds_to_next(conn: asyncpg.Connection) -> float | None:
    """Seconds until the next unfired timer no other replica is firing now (<= 0: due);
    None when none is set. One probe of the `sla_timers_due` index."""
    return await conn.fetchval(
        """
        SELECT extract(epoch FROM fire_at - now())::float8 FROM sla_timers
        WHERE fired_at IS NULL ORDER BY fire_at LIMIT 1 FOR UPDATE SKIP LOCKED
        """
    )


async def agents(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT agent_id, name, role, teams, email FROM agents")


async def queued_first_responses(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Queued tickets whose first-response clock runs and that were not found at risk in
    this cycle yet, with their place in their team's queue (0: next) and their clock."""
    return await conn.fetch(
        """
        WITH q AS (
            SELECT ticket_id, team, supervisor,
                   row_number() OVER (PARTITION BY team ORDER BY priority_rank, enqueued_at) - 1
                       AS position
            FROM queue
        )
        SELECT q.ticket_id, q.team, q.supervisor, q.position, c.cycle, c.target_minutes,
               c.consumed_minutes, c.running_since, k.priority, k.category
        FROM q
        JOIN sla_clocks c ON c.ticket_id = q.ticket_id AND c.target = 'first_response'
        JOIN tickets k ON k.ticket_id = q.ticket_id
        WHERE c.stopped_at IS NULL AND c.running_since IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM sla_timers t
                          WHERE t.ticket_id = q.ticket_id AND t.target = 'first_response'
                            AND t.cycle = c.cycle AND t.threshold = 'at_risk')
        """
    )


async def assigned_since(conn: asyncpg.Connection, since: datetime) -> dict[str, int]:
    """Assignments per team since `since`: each team's recent throughput."""
    rows = await conn.fetch(
        """
        SELECT k.team, count(*) AS n FROM assignments a JOIN tickets k USING (ticket_id)
        WHERE a.assigned_at > $1 GROUP BY k.team
        """,
        since,
    )
    return {r["team"]: r["n"] for r in rows}


async def claim_at_risk(conn: asyncpg.Connection, tickets: Sequence[tuple[UUID, int]]) -> set[UUID]:
    """Record the at-risk finding of each (ticket, cycle); returns those recorded now (once
    across replicas: another replica's finding wins)."""
    rows = await conn.fetch(
        """
        INSERT INTO sla_timers (ticket_id, target, cycle, threshold, fire_at, fired_at)
        SELECT t, 'first_response', c, 'at_risk', now(), now()
        FROM unnest($1::uuid[], $2::int[]) AS x(t, c)
        ON CONFLICT DO NOTHING
        RETURNING ticket_id
        """,
        *_columns(tickets, 2),
    )
    return {r["ticket_id"] for r in rows}


async def overflow(conn: asyncpg.Connection, moves: Sequence[tuple[UUID, str]]) -> None:
    """Queued tickets move to their backup team's queue (and are that team's from now on)."""
    await conn.execute(
        """
        WITH m AS (SELECT * FROM unnest($1::uuid[], $2::text[]) AS m(ticket_id, team)),
        moved AS (UPDATE queue q SET team = m.team FROM m WHERE q.ticket_id = m.ticket_id)
        UPDATE tickets k SET team = m.team FROM m WHERE k.ticket_id = m.ticket_id
        """,
        *_columns(moves, 2),
    )
