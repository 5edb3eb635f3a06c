"""SQL of the tickets incident follows and the baseline's hourly counts."""

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

# ---- tickets and the baseline -------------------------------------------------------------------


async def record_created(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> set[UUID]:
    """Each ticket's ticket.created facts: (ticket_id, number, created_at, channel, course_id,
    subject, description, learner, learner_key, locale). Returns the tickets recorded now (a
    redelivery records nothing, so nothing is counted twice)."""
    found = await conn.fetch(
        """
        INSERT INTO tickets AS t (ticket_id, number, created_at, channel, course_id, subject,
                                  description, learner, learner_key, locale)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::jsonb[], $9::text[], $10::text[])
        ON CONFLICT (ticket_id) DO UPDATE
            SET number = excluded.number, created_at = excluded.created_at,
                channel = excluded.channel, course_id = excluded.course_id,
                subject = excluded.subject, description = excluded.description,
                learner = excluded.learner, learner_key = excluded.learner_key,
                locale = excluded.locale
            WHERE t.created_at IS NULL
        RETURNING ticket_id
        """,
        *(list(c) for c in zip(*rows, strict=True)),
    )
    return {r["ticket_id"] for r in found}


async def record_category(conn: asyncpg.Connection, rows: list[tuple[UUID, str]]) -> set[UUID]:
    """Each ticket's category from its triage; returns the tickets categorised now."""
    found = await conn.fetch(
        """
        INSERT INTO tickets AS t (ticket_id, category)
        SELECT * FROM unnest($1::uuid[], $2::text[])
        ON CONFLICT (ticket_id) DO UPDATE SET category = excluded.category
            WHERE t.category IS NULL
        RETURNING ticket_id
        """,
        *(list(c) for c in zip(*rows, strict=True)),
    )
    return {r["ticket_id"] for r in found}


async def count_hourly(conn: asyncpg.Connection, keys: Counter[tuple[str, str, datetime]]) -> None:
    """Add tickets to the hourly counts, one row per (dimension, value, hour)."""
    if not keys:
        return
    dims, values, hours = zip(*keys, strict=True)
    await conn.execute(
        """
        INSERT INTO hourly_counts AS h (dimension, value, hour, count)
        SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[])
        ON CONFLICT (dimension, value, hour) DO UPDATE SET count = h.count + excluded.count
        """,
        list(dims),
        list(values),
        list(hours),
        list(keys.values()),
    )


async def facts(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    """What linking needs of each ticket that no open incident holds (linked or unlinked)."""
    return await conn.fetch(
        """
        SELECT t.ticket_id, t.subject, t.description, t.channel, t.course_id, t.category
        FROM tickets t
        WHERE t.ticket_id = ANY($1::uuid[]) AND t.created_at IS NOT NULL
          AND NOT EXISTS (
              SELECT 1 FROM links k JOIN incidents i USING (incident_id)
              WHERE k.ticket_id = t.ticket_id AND i.status <> 'resolved')
        """,
        list(ticket_ids),
    )


async def recent_unheld(conn: asyncpg.Connection, since: datetime) -> list[asyncpg.Record]:
    """The tickets created since `since` that no open incident holds: a new incident's
    candidates."""
    found = await conn.fetch("SELECT ticket_id FROM tickets WHERE created_at > $1", since)
    return await facts(conn, [r["ticket_id"] for r in found])


async def window_counts(conn: asyncpg.Connection, since: datetime) -> list[asyncpg.Record]:
    """Tickets per (dimension, value) created since `since`, but for answers to a course
    change (see `answers_to_changes`)."""
    return await conn.fetch(
        """
        SELECT d.dimension, d.value, count(*)::int AS observed
        FROM tickets t,
             LATERAL (VALUES ('category', t.category), ('course', t.course_id),
                             ('channel', t.channel)) AS d(dimension, value)
        WHERE t.created_at > $1 AND d.value IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM change_replies r WHERE r.ticket_id = t.ticket_id)
        GROUP BY d.dimension, d.value
        """,
        since,
    )


async def rates(conn: asyncpg.Connection, since: datetime) -> asyncpg.Record:
    """Triaged tickets since `since`, but for answers to a course change: all of them,
    complaints and technical faults."""
    row = await conn.fetchrow(
        """
        SELECT count(*)::int AS total,
               count(*) FILTER (WHERE category = 'complaint')::int AS complaints,
               count(*) FILTER (WHERE category = 'technical')::int AS faults
        FROM tickets t WHERE created_at > $1 AND category IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM change_replies r WHERE r.ticket_id = t.ticket_id)
        """,
        since,
    )
    assert row is not None  # an aggregate always has its row
    return row


async def history_start(conn: asyncpg.Connection) -> datetime | None:
    """The first hour the baseline holds: weeks before it are unknown, not quiet."""
    start: datetime | None = await conn.fetchval("SELECT min(hour) FROM hourly_counts")
    return start


async def baselines(
    conn: asyncpg.Connection,
    keys: list[tuple[str, str]],
    *,
    hours: list[datetime],
    since: datetime,
    until: datetime,
) -> dict[tuple[str, str], tuple[dict[datetime, int], int]]:
    """For each key, its counts at `hours` and its total over [since, until)."""
    if not keys:
        return {}
    dims, values = zip(*keys, strict=True)
    found = await conn.fetch(
        """
        SELECT k.dimension, k.value, h.hour, h.count,
               (SELECT coalesce(sum(a.count), 0)::int FROM hourly_counts a
                WHERE a.dimension = k.dimension AND a.value = k.value
                  AND a.hour >= $4 AND a.hour < $5) AS total
        FROM unnest($1::text[], $2::text[]) AS k(dimension, value)
        LEFT JOIN hourly_counts h
            ON h.dimension = k.dimension AND h.value = k.value AND h.hour = ANY($3::timestamptz[])
        """,
        list(dims),
        list(values),
        hours,
        since,
        until,
    )
    out: dict[tuple[str, str], tuple[dict[datetime, int], int]] = {}
    for r in found:
        counts, _ = out.setdefault((r["dimension"], r["value"]), ({}, r["total"]))
        if r["hour"] is not None:
            counts[r["hour"]] = r["count"]
    return out


async def texts(
    conn: asyncpg.Connection, *, dimension: str, value: str, since: datetime, limit: int = 200
) -> list[asyncpg.Record]:
    """The newest tickets of one key since `since`: what the problem is named from."""
    column = {"category": "category", "course": "course_id", "channel": "channel"}[dimension]
    return await conn.fetch(
        f"""
        SELECT ticket_id, subject, description FROM tickets
        WHERE created_at > $1 AND {column} = $2 ORDER BY created_at DESC LIMIT $3
        """,
        since,
        value,
        limit,
    )


async def held_share(
    conn: asyncpg.Connection, *, dimension: str, value: str, since: datetime
) -> float:
    """The share of one key's tickets since `since` that an open incident already holds."""
    column = {"category": "category", "course": "course_id", "channel": "channel"}[dimension]
    share: float = await conn.fetchval(
        f"""
        SELECT coalesce(avg(CASE WHEN EXISTS (
                   SELECT 1 FROM links k JOIN incidents i USING (incident_id)
                   WHERE k.ticket_id = t.ticket_id AND k.unlinked_at IS NULL
                     AND i.status <> 'resolved') THEN 1.0 ELSE 0.0 END), 0)::float
        FROM tickets t WHERE t.created_at > $1 AND t.{column} = $2
        """,
        since,
        value,
    )
    return share


async def forget_tickets(conn: asyncpg.Connection, before: datetime, limit: int = 10_000) -> int:
    """Drop tickets created before `before` that no incident links, a slice at a time (and
    those whose ticket.created never came, by when they were first seen: the triage of a
    ticket forgotten already)."""
    status = await conn.execute(
        """
        DELETE FROM tickets WHERE ticket_id IN (
            SELECT t.ticket_id FROM tickets t
            WHERE coalesce(t.created_at, t.seen_at) < $1
              AND NOT EXISTS (SELECT 1 FROM links k WHERE k.ticket_id = t.ticket_id)
            LIMIT $2)
        """,
        before,
        limit,
    )
    return int(status.split()[-1])


async def answers_to_changes(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> set[UUID]:
    """Those of `ticket_ids` that learners sent from a course change's reply page. They are
    the expected answer to an announcement, not a sign of trouble: the detector leaves them out
    of its counts (hundreds of replies about one course within the hour must not open an
    incident that holds them away from course operations), and no incident links them."""
    rows = await conn.fetch(
        "SELECT ticket_id FROM change_replies WHERE ticket_id = ANY($1::uuid[])", list(ticket_ids)
    )
    return {r["ticket_id"] for r in rows}


# ---- the linked tickets' SLA (the post-incident report) -----------------------------------------

Milestone = Literal[
    "answered_at", "resolved_at", "first_response_breached_at", "resolution_breached_at"
]


async def record_due(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, datetime, datetime]]
) -> None:
    """Each ticket's (ticket_id, first_response_due_at, resolution_due_at) as routing set them."""
    if rows:
        await conn.execute(
            """
            UPDATE tickets t SET first_response_due_at = d.first, resolution_due_at = d.resolution
            FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[])
                AS d(ticket_id, first, resolution)
            WHERE t.ticket_id = d.ticket_id
            """,
            *(list(c) for c in zip(*rows, strict=True)),
        )


async def record_milestone(
    conn: asyncpg.Connection, milestone: Milestone, rows: Sequence[tuple[UUID, datetime]]
) -> None:
    """The first time each of the (ticket_id, at) reached `milestone`: a later one (a second
    resolution after a reopening, a redelivery) keeps the first. A ticket not held (forgotten
    already) is passed over: it is linked to no incident. One row per ticket: an UPDATE joined
    to two rows of the same ticket would take either."""
    if rows:
        await conn.execute(
            f"""
            UPDATE tickets t SET {milestone} = least(t.{milestone}, d.at)
            FROM (SELECT ticket_id, min(at) AS at
                  FROM unnest($1::uuid[], $2::timestamptz[]) AS u(ticket_id, at)
                  GROUP BY ticket_id) AS d
            WHERE t.ticket_id = d.ticket_id
            """,
            *(list(c) for c in zip(*rows, strict=True)),
        )


async def sla_impact(conn: asyncpg.Connection, incident_id: UUID, at: datetime) -> asyncpg.Record:
    """The SLA of the tickets the incident ever linked, at `at` (see api.SlaImpact): a ticket
    is answered by its first reply or its resolution, whichever came first; it was held from
    its link until it was unlinked or resolved, or until `at`."""
    return await conn.fetchrow(
        """
        SELECT count(t.first_response_due_at) AS tickets_with_targets,
               count(*) FILTER (WHERE t.first_response_due_at
                                      < coalesce(least(t.answered_at, t.resolved_at), $2))
                   AS first_response_would_have_breached,
               count(t.first_response_breached_at) AS first_response_breached,
               count(*) FILTER (WHERE t.resolution_due_at < coalesce(t.resolved_at, $2))
                   AS resolution_would_have_breached,
               count(t.resolution_breached_at) AS resolution_breached,
               (coalesce(sum(extract(epoch FROM greatest(
                   coalesce(k.unlinked_at, t.resolved_at, $2) - k.linked_at, interval '0'))), 0)
                   / 60)::float8 AS minutes_paused
        FROM links k LEFT JOIN tickets t USING (ticket_id)
        WHERE k.incident_id = $1
        """,
        incident_id,
        at,
    )
