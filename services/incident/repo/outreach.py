"""SQL of what reaches people: learners' enrolments, announcements and their notices, the
response group's messages, and compensation batches with their remedies."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from shared.events import LearnerSnapshot

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
                                   body_en, learners, by, idempotency_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
                "idempotency_key",
            )
        ),
    )


async def announced(conn: asyncpg.Connection, incident_id: UUID, key: str) -> int | None:
    """How many learners the incident's announcement made under idempotency `key` reaches;
    None when none was made under it."""
    learners: int | None = await conn.fetchval(
        "SELECT learners FROM announcements WHERE incident_id = $1 AND idempotency_key = $2",
        incident_id,
        key,
    )
    return learners


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
    conn: asyncpg.Connection, batch: asyncpg.Record, *, by: str
) -> asyncpg.Record:
    """Approve the (locked) batch and add a remedy for each learner of its incident's linked
    tickets (`linked_learners`: their latest ticket), in one statement however many learners
    there are; a learner this incident already compensated in kind is skipped. The remedy's
    id is the batch's and the learner's (an MD5 UUID). The batch's `learners` is how many it
    adds."""
    status = await conn.execute(
        """
        INSERT INTO compensation_items (remedy_id, batch_id, incident_id, kind, learner_key,
                                        learner, ticket_id, number)
        SELECT md5($1::uuid::text || ':' || l.learner_key)::uuid, $1::uuid, $2, $3, l.learner_key,
               l.learner, l.ticket_id, l.number
        FROM (
            SELECT DISTINCT ON (t.learner_key) t.learner_key, t.learner, t.ticket_id, t.number
            FROM links k JOIN tickets t USING (ticket_id)
            WHERE k.incident_id = $2 AND k.unlinked_at IS NULL AND t.learner_key IS NOT NULL
            ORDER BY t.learner_key, t.created_at DESC
        ) AS l
        ON CONFLICT DO NOTHING
        """,
        batch["batch_id"],
        batch["incident_id"],
        batch["kind"],
    )
    row = await conn.fetchrow(
        """
        UPDATE compensations SET approved_by = $2, approved_at = now(), learners = $3
        WHERE batch_id = $1 RETURNING *
        """,
        batch["batch_id"],
        by,
        int(status.split()[-1]),
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
