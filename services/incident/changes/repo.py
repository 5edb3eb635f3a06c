"""SQL of course changes in incident's schema; never commits: the use case owns the
transaction."""

import re
from typing import Any
from uuid import UUID

import asyncpg

from shared.text import TOKEN_PATTERN

CHANGE_COLUMNS = (
    "change_id",
    "change_ref",
    "course_id",
    "course_title",
    "kind",
    "old",
    "new",
    "reason",
    "reason_en",
    "impact",
    "impact_en",
    "remedy",
    "remedy_en",
    "effective_at",
    "learners",
    "by",
)


async def add_change(conn: asyncpg.Connection, change: dict[str, Any]) -> asyncpg.Record | None:
    """The change with its number; None when its `change_ref` was announced already."""
    return await conn.fetchrow(
        f"""
        INSERT INTO course_changes (number, {", ".join(CHANGE_COLUMNS)})
        VALUES ('CC-' || lpad(nextval('change_numbers')::text, 6, '0'),
                {", ".join(f"${i}" for i in range(1, len(CHANGE_COLUMNS) + 1))})
        ON CONFLICT (change_ref) DO NOTHING
        RETURNING *
        """,
        *(change[k] for k in CHANGE_COLUMNS),
    )


async def add_notices(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> int:
    """(notice_id, change_id, decision_ticket_id, kind, learner_key, learner, channel, locale,
    reply_token) rows; a learner already told of the change is skipped. Returns how many."""
    if not rows:
        return 0
    status = await conn.execute(
        """
        INSERT INTO change_notices (notice_id, change_id, decision_ticket_id, kind, learner_key,
                                    learner, channel, locale, reply_token)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                             $6::jsonb[], $7::text[], $8::text[], $9::text[])
        ON CONFLICT DO NOTHING
        """,
        *(list(c) for c in zip(*rows, strict=True)),
    )
    return int(status.split()[-1])


async def pending_channels(conn: asyncpg.Connection) -> list[str]:
    found = await conn.fetch(
        "SELECT DISTINCT channel FROM change_notices WHERE released_at IS NULL"
    )
    return [r["channel"] for r in found]


async def take_notices(conn: asyncpg.Connection, channel: str, limit: int) -> list[asyncpg.Record]:
    """Mark up to `limit` of a channel's oldest pending notices released; returns them with
    their change's (or decision's) words."""
    if limit < 1:
        return []
    return await conn.fetch(
        """
        WITH taken AS (
            UPDATE change_notices SET released_at = now()
            WHERE notice_id IN (
                SELECT notice_id FROM change_notices WHERE channel = $1 AND released_at IS NULL
                ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING *)
        SELECT n.notice_id, n.change_id, n.decision_ticket_id, n.kind, n.learner, n.channel,
               n.locale, n.reply_token, c.number, c.course_id, c.course_title,
               c.kind AS change_kind, c.old, c.new, c.effective_at, c.reason, c.reason_en,
               c.impact, c.impact_en, c.remedy, c.remedy_en, d.decision, d.note, d.note_en,
               t.number AS ticket_number
        FROM taken n
        LEFT JOIN course_changes c ON c.change_id = n.change_id
        LEFT JOIN change_decisions d ON d.ticket_id = n.decision_ticket_id
        LEFT JOIN tickets t ON t.ticket_id = n.decision_ticket_id
        """,
        channel,
        limit,
    )


async def change(conn: asyncpg.Connection, change_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{CHANGES} WHERE c.change_id = $1 GROUP BY c.change_id", change_id)


async def changes(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(f"{CHANGES} GROUP BY c.change_id ORDER BY c.at DESC LIMIT $1", limit)


# A change with how far its notices got and how many learners answered.
CHANGES = """
    SELECT c.*, count(n.released_at)::int AS reached,
           (SELECT count(*) FROM change_replies r WHERE r.change_id = c.change_id)::int
               AS replies
    FROM course_changes c LEFT JOIN change_notices n USING (change_id)
"""


async def notice_by_token(conn: asyncpg.Connection, token: str) -> asyncpg.Record | None:
    """The announcement a reply link belongs to, with its change; None for a link that is
    none of ours (a token of a shape we never make, a NUL in it say, is not looked up)."""
    if not re.fullmatch(TOKEN_PATTERN, token):
        return None
    return await conn.fetchrow(
        """
        SELECT n.notice_id, n.learner, n.locale, c.change_id, c.number, c.course_id,
               c.course_title, c.kind AS change_kind, c.old, c.new, c.effective_at, c.reason, c.reason_en,
               c.impact, c.impact_en, c.remedy, c.remedy_en
        FROM change_notices n JOIN course_changes c USING (change_id)
        WHERE n.reply_token = $1
        FOR UPDATE OF n
        """,
        token,
    )


async def replies_today(conn: asyncpg.Connection, notice_id: UUID) -> int:
    n: int = await conn.fetchval(
        "SELECT count(*) FROM change_replies "
        "WHERE notice_id = $1 AND submitted_at > now() - interval '1 day'",
        notice_id,
    )
    return n


async def add_reply(
    conn: asyncpg.Connection, *, ticket_id: UUID, change_id: UUID, notice_id: UUID
) -> None:
    await conn.execute(
        "INSERT INTO change_replies (ticket_id, change_id, notice_id) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING",
        ticket_id,
        change_id,
        notice_id,
    )


async def link_replies(conn: asyncpg.Connection, ticket_ids: list[UUID]) -> list[asyncpg.Record]:
    """Mark the replies among these (now created) tickets linked; returns them with their
    change, once each however often the ticket's creation is delivered."""
    return await conn.fetch(
        """
        UPDATE change_replies r SET linked_at = now()
        FROM course_changes c
        WHERE r.ticket_id = ANY($1::uuid[]) AND r.linked_at IS NULL
          AND c.change_id = r.change_id
        RETURNING r.ticket_id, r.change_id, c.number, c.course_id, c.kind, r.linked_at
        """,
        ticket_ids,
    )


async def replies_by_number(conn: asyncpg.Connection, found: list[tuple[Any, ...]]) -> None:
    """(ticket_id, change number, learner_id, email, wechat_openid, phone), lower-cased, of
    tickets naming a change (a reply on the channel, its subject keeping the number):
    recorded as replies when the learner, by any of these, was told of that change."""
    if not found:
        return
    await conn.execute(
        """
        INSERT INTO change_replies (ticket_id, change_id, notice_id)
        SELECT DISTINCT ON (f.ticket_id) f.ticket_id, n.change_id, n.notice_id
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
            AS f(ticket_id, number, learner_id, email, wechat_openid, phone)
        JOIN course_changes c ON c.number = f.number
        JOIN change_notices n ON n.change_id = c.change_id
            AND (lower(n.learner->>'learner_id') = f.learner_id
                 OR lower(n.learner->>'email') = f.email
                 OR lower(n.learner->>'wechat_openid') = f.wechat_openid
                 OR n.learner->>'phone' = f.phone)
        ON CONFLICT DO NOTHING
        """,
        *(list(c) for c in zip(*found, strict=True)),
    )


async def replies(conn: asyncpg.Connection, change_id: UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT r.ticket_id, t.number, t.subject, n.learner->>'name' AS learner_name,
               r.submitted_at, r.linked_at
        FROM change_replies r JOIN change_notices n USING (notice_id)
        LEFT JOIN tickets t USING (ticket_id)
        WHERE r.change_id = $1 ORDER BY r.submitted_at LIMIT $2
        """,
        change_id,
        limit,
    )


# ---- learners' own requests -------------------------------------------------------------------


async def requests(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Learners' course-change tickets (not replies to a change), newest first, with any
    decision."""
    return await conn.fetch(
        """
        SELECT t.ticket_id, t.number, t.subject, t.course_id, t.created_at, d.decision, d.note,
               d.by, d.at
        FROM tickets t LEFT JOIN change_decisions d USING (ticket_id)
        WHERE t.category = 'course_change' AND t.created_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM change_replies r WHERE r.ticket_id = t.ticket_id)
        ORDER BY t.created_at DESC LIMIT $1
        """,
        limit,
    )


async def ticket(conn: asyncpg.Connection, ticket_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT t.*, l.preferred_channel, coalesce(l.locale, t.locale) AS reader_locale,
               EXISTS (SELECT 1 FROM change_replies r WHERE r.ticket_id = t.ticket_id)
                   AS is_reply
        FROM tickets t LEFT JOIN learners l ON l.learner_id = t.learner->>'learner_id'
        WHERE t.ticket_id = $1 FOR UPDATE OF t
        """,
        ticket_id,
    )


async def add_decision(
    conn: asyncpg.Connection, ticket_id: UUID, decision: dict[str, Any]
) -> asyncpg.Record | None:
    """The decision; None when the request was decided already."""
    return await conn.fetchrow(
        """
        INSERT INTO change_decisions (ticket_id, decision, note, note_en, by)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING *
        """,
        ticket_id,
        decision["decision"],
        decision["note"],
        decision["note_en"],
        decision["by"],
    )
