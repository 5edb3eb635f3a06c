"""SQL for incident's own schema; never commits: the use case owns the transaction."""

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.events import LearnerSnapshot

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
    """Tickets per (dimension, value) created since `since`."""
    return await conn.fetch(
        """
        SELECT d.dimension, d.value, count(*)::int AS observed
        FROM tickets t,
             LATERAL (VALUES ('category', t.category), ('course', t.course_id),
                             ('channel', t.channel)) AS d(dimension, value)
        WHERE t.created_at > $1 AND d.value IS NOT NULL
        GROUP BY d.dimension, d.value
        """,
        since,
    )


async def rates(conn: asyncpg.Connection, since: datetime) -> asyncpg.Record:
    """Triaged tickets since `since`: all of them, complaints and technical faults."""
    row = await conn.fetchrow(
        """
        SELECT count(*)::int AS total,
               count(*) FILTER (WHERE category = 'complaint')::int AS complaints,
               count(*) FILTER (WHERE category = 'technical')::int AS faults
        FROM tickets WHERE created_at > $1 AND category IS NOT NULL
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


# ---- alerts -------------------------------------------------------------------------------------


async def silenced(
    conn: asyncpg.Connection, *, kind: str, dimension: str, value: str, since: datetime
) -> bool:
    """Whether this key alerted since `since`, or alerted into an incident still open."""
    found: bool = await conn.fetchval(
        """
        SELECT EXISTS (
            SELECT 1 FROM alerts a LEFT JOIN incidents i USING (incident_id)
            WHERE a.kind = $1 AND a.dimension = $2 AND a.value = $3
              AND (a.raised_at > $4 OR i.status <> 'resolved'))
        """,
        kind,
        dimension,
        value,
        since,
    )
    return found


async def add_alert(conn: asyncpg.Connection, alert: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO alerts (alert_id, kind, dimension, value, observed, expected, p_value, title,
                            keywords, sample_ticket_ids, raised_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        """,
        *(
            alert[k]
            for k in (
                "alert_id",
                "kind",
                "dimension",
                "value",
                "observed",
                "expected",
                "p_value",
                "title",
                "keywords",
                "sample_ticket_ids",
                "raised_at",
            )
        ),
    )


async def alert(conn: asyncpg.Connection, alert_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM alerts WHERE alert_id = $1 FOR UPDATE", alert_id)


async def alerts(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM alerts ORDER BY raised_at DESC LIMIT $1", limit)


# ---- incidents ----------------------------------------------------------------------------------


async def add_incident(conn: asyncpg.Connection, incident: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        INSERT INTO incidents (incident_id, number, title, title_en, severity, status, criteria,
                               owner_id, alert_id, opened_by)
        VALUES ($1, 'INC-' || lpad(nextval('incident_numbers')::text, 4, '0'), $2, $3, $4,
                'investigating', $5, $6, $7, $8)
        RETURNING *
        """,
        incident["incident_id"],
        incident["title"],
        incident["title_en"],
        incident["severity"],
        incident["criteria"],
        incident["owner_id"],
        incident["alert_id"],
        incident["opened_by"],
    )
    assert row is not None  # an INSERT's RETURNING
    if incident["alert_id"] is not None:
        await conn.execute(
            "UPDATE alerts SET incident_id = $1 WHERE alert_id = $2",
            incident["incident_id"],
            incident["alert_id"],
        )
    return row


async def incident(
    conn: asyncpg.Connection, incident_id: UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT * FROM incidents WHERE incident_id = $1{' FOR UPDATE' if lock else ''}",
        incident_id,
    )


async def incident_by_number(conn: asyncpg.Connection, number: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM incidents WHERE number = $1", number)


async def incidents(
    conn: asyncpg.Connection, *, open_only: bool, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT i.*, (SELECT count(*) FROM links k
                     WHERE k.incident_id = i.incident_id AND k.unlinked_at IS NULL)::int AS linked
        FROM incidents i WHERE NOT $1 OR i.status <> 'resolved'
        ORDER BY i.opened_at DESC LIMIT $2
        """,
        open_only,
        limit,
    )


async def open_incidents(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Open incidents, most severe first, then oldest: the order linking tries them in."""
    return await conn.fetch(
        """
        SELECT incident_id, number, title, criteria FROM incidents
        WHERE status <> 'resolved' ORDER BY severity, opened_at
        """
    )


async def update_incident(
    conn: asyncpg.Connection, incident_id: UUID, changes: dict[str, Any]
) -> asyncpg.Record:
    columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=2))
    row = await conn.fetchrow(
        f"UPDATE incidents SET {columns} WHERE incident_id = $1 RETURNING *",
        incident_id,
        *changes.values(),
    )
    assert row is not None  # the caller locked the row
    return row


async def add_entry(
    conn: asyncpg.Connection,
    *,
    incident_id: UUID,
    kind: str,
    by: str,
    status: str | None = None,
    message: str | None = None,
    message_en: str | None = None,
    public: bool = False,
) -> None:
    await conn.execute(
        """
        INSERT INTO timeline (incident_id, kind, status, message, message_en, by, public)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        incident_id,
        kind,
        status,
        message,
        message_en,
        by,
        public,
    )


async def timeline(
    conn: asyncpg.Connection, incident_ids: Sequence[UUID], *, public_only: bool
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT * FROM timeline WHERE incident_id = ANY($1::uuid[]) AND (public OR NOT $2)
        ORDER BY entry_id
        """,
        list(incident_ids),
        public_only,
    )


# ---- links --------------------------------------------------------------------------------------


async def link(
    conn: asyncpg.Connection, incident_id: UUID, ticket_ids: Sequence[UUID], *, by: str | None
) -> list[UUID]:
    """Link the tickets; returns those linked now (a ticket once unlinked stays unlinked)."""
    found = await conn.fetch(
        """
        INSERT INTO links (incident_id, ticket_id, linked_by)
        SELECT $1, unnest($2::uuid[]), $3 ON CONFLICT DO NOTHING RETURNING ticket_id
        """,
        incident_id,
        list(ticket_ids),
        by,
    )
    return [r["ticket_id"] for r in found]


async def relink(conn: asyncpg.Connection, incident_id: UUID, ticket_id: UUID, by: str) -> bool:
    """An agent links a ticket the criteria did not (or that was unlinked): True when it was
    not linked."""
    status = await conn.execute(
        """
        INSERT INTO links AS k (incident_id, ticket_id, linked_by) VALUES ($1, $2, $3)
        ON CONFLICT (incident_id, ticket_id) DO UPDATE
            SET linked_by = excluded.linked_by, linked_at = now(), unlinked_by = NULL,
                unlinked_at = NULL
            WHERE k.unlinked_at IS NOT NULL
        """,
        incident_id,
        ticket_id,
        by,
    )
    return status.endswith(" 1")


async def unlink(conn: asyncpg.Connection, incident_id: UUID, ticket_id: UUID, by: str) -> bool:
    status = await conn.execute(
        """
        UPDATE links SET unlinked_by = $3, unlinked_at = now()
        WHERE incident_id = $1 AND ticket_id = $2 AND unlinked_at IS NULL
        """,
        incident_id,
        ticket_id,
        by,
    )
    return status.endswith(" 1")


async def held_elsewhere(
    conn: asyncpg.Connection, incident_id: UUID, ticket_id: UUID
) -> str | None:
    """The number of another open incident the ticket is linked to, if any."""
    number: str | None = await conn.fetchval(
        """
        SELECT i.number FROM links k JOIN incidents i USING (incident_id)
        WHERE k.ticket_id = $2 AND k.incident_id <> $1 AND k.unlinked_at IS NULL
          AND i.status <> 'resolved'
        """,
        incident_id,
        ticket_id,
    )
    return number


async def linked(conn: asyncpg.Connection, incident_id: UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT k.ticket_id, t.number, t.subject, t.channel, t.course_id, t.category,
               k.linked_by, k.linked_at, k.unlinked_by, k.unlinked_at
        FROM links k LEFT JOIN tickets t USING (ticket_id)
        WHERE k.incident_id = $1 ORDER BY k.linked_at LIMIT $2
        """,
        incident_id,
        limit,
    )


async def active_links(conn: asyncpg.Connection, incident_id: UUID) -> list[UUID]:
    found = await conn.fetch(
        "SELECT ticket_id FROM links WHERE incident_id = $1 AND unlinked_at IS NULL",
        incident_id,
    )
    return [r["ticket_id"] for r in found]


# ---- learners and notices -----------------------------------------------------------------------


async def upsert_learners(conn: asyncpg.Connection, snapshots: Sequence[LearnerSnapshot]) -> int:
    """Keep each learner's newest snapshot; returns how many rows changed."""
    newest: dict[str, LearnerSnapshot] = {}
    for s in snapshots:
        held = newest.get(s.learner_id)
        if held is None or s.updated_at > held.updated_at:
            newest[s.learner_id] = s
    if not newest:
        return 0
    rows = [
        (
            s.learner_id,
            s.name,
            s.email,
            s.phone,
            s.wechat_openid,
            s.locale,
            s.preferred_channel.value if s.preferred_channel else None,
            "{" + ",".join(_array_item(c.course_id) for c in s.courses) + "}",
            s.updated_at,
        )
        for s in newest.values()
    ]
    changed = await conn.fetch(
        """
        INSERT INTO learners AS l (learner_id, name, email, phone, wechat_openid, locale,
                                   preferred_channel, courses, updated_at)
        SELECT learner_id, name, email, phone, wechat_openid, locale, preferred_channel,
               courses::text[], updated_at
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[], $8::text[], $9::timestamptz[])
            AS r(learner_id, name, email, phone, wechat_openid, locale, preferred_channel,
                 courses, updated_at)
        ON CONFLICT (learner_id) DO UPDATE
            SET name = excluded.name, email = excluded.email, phone = excluded.phone,
                wechat_openid = excluded.wechat_openid, locale = excluded.locale,
                preferred_channel = excluded.preferred_channel, courses = excluded.courses,
                updated_at = excluded.updated_at
            WHERE l.updated_at < excluded.updated_at
        RETURNING learner_id
        """,
        *(list(c) for c in zip(*rows, strict=True)),
    )
    return len(changed)


def _array_item(value: str) -> str:
    """One element of a Postgres text[] literal, quoted."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def linked_learners(conn: asyncpg.Connection, incident_id: UUID) -> list[asyncpg.Record]:
    """The learners of the incident's linked tickets, once each (their latest ticket)."""
    return await conn.fetch(
        """
        SELECT DISTINCT ON (t.learner_key) t.learner_key, t.learner, t.ticket_id, t.number,
               coalesce(l.locale, t.locale) AS locale, l.preferred_channel
        FROM links k JOIN tickets t USING (ticket_id)
        LEFT JOIN learners l ON l.learner_id = t.learner->>'learner_id'
        WHERE k.incident_id = $1 AND k.unlinked_at IS NULL AND t.learner_key IS NOT NULL
        ORDER BY t.learner_key, t.created_at DESC
        """,
        incident_id,
    )


async def enrolled_learners(conn: asyncpg.Connection, courses: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT learner_id, name, email, phone, wechat_openid, locale, preferred_channel
        FROM learners WHERE courses && $1::text[]
        """,
        courses,
    )


async def add_announcement(conn: asyncpg.Connection, announcement: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO announcements (announcement_id, incident_id, kind, audience, title, body,
                                   body_en, learners, by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        *(
            announcement[k]
            for k in (
                "announcement_id",
                "incident_id",
                "kind",
                "audience",
                "title",
                "body",
                "body_en",
                "learners",
                "by",
            )
        ),
    )


async def add_notices(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> int:
    """(notice_id, incident_id, announcement_id, kind, learner_key, learner, ticket_id,
    channel, locale) rows, one per learner and announcement; returns how many are new."""
    if not rows:
        return 0
    status = await conn.execute(
        """
        INSERT INTO notices (notice_id, incident_id, announcement_id, kind, learner_key, learner,
                             ticket_id, channel, locale)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                             $6::jsonb[], $7::uuid[], $8::text[], $9::text[])
        ON CONFLICT DO NOTHING
        """,
        *(list(c) for c in zip(*rows, strict=True)),
    )
    return int(status.split()[-1])


async def pending_channels(conn: asyncpg.Connection) -> list[str]:
    found = await conn.fetch("SELECT DISTINCT channel FROM notices WHERE released_at IS NULL")
    return [r["channel"] for r in found]


async def take_notices(conn: asyncpg.Connection, channel: str, limit: int) -> list[asyncpg.Record]:
    """Mark up to `limit` of a channel's oldest pending notices released; returns them with
    their announcement's and incident's words."""
    return await conn.fetch(
        """
        WITH taken AS (
            UPDATE notices SET released_at = now()
            WHERE notice_id IN (
                SELECT notice_id FROM notices WHERE channel = $1 AND released_at IS NULL
                ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING *)
        SELECT n.notice_id, n.incident_id, n.kind, n.learner, n.ticket_id, n.channel, n.locale,
               a.body, a.body_en, i.number, i.title, i.title_en
        FROM taken n JOIN announcements a USING (announcement_id)
        JOIN incidents i ON i.incident_id = n.incident_id
        """,
        channel,
        limit,
    )


async def notice_counts(conn: asyncpg.Connection, incident_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT kind, channel, count(*)::int AS requested,
               count(released_at)::int AS released
        FROM notices WHERE incident_id = $1 GROUP BY kind, channel ORDER BY kind, channel
        """,
        incident_id,
    )


# ---- the response group -------------------------------------------------------------------------


async def add_pages(conn: asyncpg.Connection, rows: list[tuple[UUID, str, str, str, bool]]) -> None:
    """(incident_id, target, subject, body, urgent) messages for the sender loop."""
    if rows:
        await conn.executemany(
            "INSERT INTO pages (incident_id, target, subject, body, urgent) "
            "VALUES ($1, $2, $3, $4, $5)",
            rows,
        )


async def due_pages(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT * FROM pages WHERE sent_at IS NULL AND failed_at IS NULL AND next_at <= now()
        ORDER BY page_id LIMIT $1 FOR UPDATE SKIP LOCKED
        """,
        limit,
    )


async def page_sent(conn: asyncpg.Connection, page_id: int) -> None:
    await conn.execute(
        "UPDATE pages SET sent_at = now(), attempts = attempts + 1 WHERE page_id = $1", page_id
    )


async def page_failed(
    conn: asyncpg.Connection, page_id: int, *, error: str, give_up: bool, retry_seconds: float
) -> None:
    await conn.execute(
        """
        UPDATE pages SET attempts = attempts + 1, last_error = $2,
            failed_at = CASE WHEN $3 THEN now() END,
            next_at = now() + make_interval(secs => $4)
        WHERE page_id = $1
        """,
        page_id,
        error[:1000],
        give_up,
        retry_seconds,
    )


async def page_counts(conn: asyncpg.Connection, incident_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT target, count(sent_at)::int AS sent, count(failed_at)::int AS failed,
               max(last_error) AS last_error
        FROM pages WHERE incident_id = $1 GROUP BY target ORDER BY target
        """,
        incident_id,
    )


# ---- compensation -------------------------------------------------------------------------------


async def add_compensation(conn: asyncpg.Connection, batch: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        INSERT INTO compensations (batch_id, incident_id, kind, amount, currency, points, days,
                                   course_id, reason, requested_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        RETURNING *
        """,
        *(
            batch[k]
            for k in (
                "batch_id",
                "incident_id",
                "kind",
                "amount",
                "currency",
                "points",
                "days",
                "course_id",
                "reason",
                "requested_by",
            )
        ),
    )
    assert row is not None  # an INSERT's RETURNING
    return row


async def compensation(
    conn: asyncpg.Connection, batch_id: UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT * FROM compensations WHERE batch_id = $1{' FOR UPDATE' if lock else ''}",
        batch_id,
    )


async def compensations(conn: asyncpg.Connection, incident_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT c.*, count(i.remedy_id)::int AS items, count(i.released_at)::int AS issued,
               count(i.acknowledged_at)::int AS acknowledged,
               count(i.rejected_reason)::int AS rejected
        FROM compensations c LEFT JOIN compensation_items i USING (batch_id)
        WHERE c.incident_id = $1 GROUP BY c.batch_id ORDER BY c.requested_at
        """,
        incident_id,
    )


async def approve_compensation(
    conn: asyncpg.Connection, batch_id: UUID, *, by: str, items: list[tuple[Any, ...]]
) -> asyncpg.Record:
    """Approve the batch and add its remedies, (remedy_id, incident_id, kind, learner_key,
    learner, ticket_id, number) each; a learner this incident already compensated in kind is
    skipped. The batch's `learners` is how many it adds."""
    added = 0
    if items:
        status = await conn.execute(
            """
            INSERT INTO compensation_items (remedy_id, batch_id, incident_id, kind, learner_key,
                                            learner, ticket_id, number)
            SELECT r.remedy_id, $1, r.incident_id, r.kind, r.learner_key, r.learner, r.ticket_id,
                   r.number
            FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::uuid[],
                        $8::text[])
                AS r(remedy_id, incident_id, kind, learner_key, learner, ticket_id, number)
            ON CONFLICT DO NOTHING
            """,
            batch_id,
            *(list(c) for c in zip(*items, strict=True)),
        )
        added = int(status.split()[-1])
    row = await conn.fetchrow(
        """
        UPDATE compensations SET approved_by = $2, approved_at = now(), learners = $3
        WHERE batch_id = $1 RETURNING *
        """,
        batch_id,
        by,
        added,
    )
    assert row is not None  # the caller locked it
    return row


async def take_remedies(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Mark up to `limit` approved, unissued remedies issued; returns them with their batch."""
    return await conn.fetch(
        """
        WITH taken AS (
            UPDATE compensation_items SET released_at = now()
            WHERE remedy_id IN (
                SELECT remedy_id FROM compensation_items WHERE released_at IS NULL
                LIMIT $1 FOR UPDATE SKIP LOCKED)
            RETURNING *)
        SELECT t.remedy_id, t.batch_id, t.learner, t.ticket_id, t.number, c.kind, c.amount,
               c.currency, c.points, c.days, c.course_id, c.requested_by, c.approved_by,
               c.approved_at
        FROM taken t JOIN compensations c USING (batch_id)
        """,
        limit,
    )


async def remedy_answered(
    conn: asyncpg.Connection, answers: list[tuple[UUID, str | None, str | None]]
) -> None:
    """(remedy_id, reference, rejected reason) from the acting systems; others' remedies (a
    complaint case's) are not here and change nothing."""
    await conn.execute(
        """
        UPDATE compensation_items i
        SET acknowledged_at = CASE WHEN r.reason IS NULL THEN now() END,
            reference = r.reference, rejected_reason = r.reason
        FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(remedy_id, reference, reason)
        WHERE i.remedy_id = r.remedy_id
        """,
        *(list(c) for c in zip(*answers, strict=True)),
    )
