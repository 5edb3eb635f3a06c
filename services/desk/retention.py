"""Retention (R7.3): closed tickets are archived after CARELOOP_DESK_ARCHIVE_AFTER_DAYS, and
their learners' personal data pseudonymised after CARELOOP_DESK_RETENTION_DAYS.

Pseudonymising keeps what reports and audits need (the ticket, its category, times, who
worked it, its history) and drops who the learner is: their name becomes a pseudonym; their
contacts, LMS id and context, call details and attachments go; e-mail addresses and phone
numbers inside the text they wrote, agents' replies and notes are masked. Each ticket is done
once (`pseudonymised_at`), so running the job again changes nothing. The LMS's snapshot of a
learner goes too once no ticket names them and the LMS has not updated it for as long.
"""

from datetime import datetime, timedelta

import asyncpg
import structlog

from services.desk.domain import masked, pseudonym
from services.desk.settings import DeskSettings
from shared.events import now
from shared.service import Context, every

log = structlog.get_logger(__name__)
BATCH = 200


async def archive(conn: asyncpg.Connection, *, closed_before: datetime, limit: int) -> int:
    """Archive closed tickets that closed before `closed_before`; returns how many."""
    archived = await conn.fetch(
        """
        WITH due AS (
            SELECT ticket_id FROM tickets
            WHERE status = 'closed' AND closed_at < $1 AND archived_at IS NULL
            ORDER BY closed_at LIMIT $2 FOR UPDATE SKIP LOCKED
        ), done AS (
            UPDATE tickets t SET archived_at = now() FROM due
            WHERE t.ticket_id = due.ticket_id RETURNING t.ticket_id
        )
        INSERT INTO history (ticket_id, kind, actor, detail)
        SELECT ticket_id, 'archived', 'system', '{}' FROM done
        RETURNING ticket_id
        """,
        closed_before,
        limit,
    )
    return len(archived)


async def pseudonymise(conn: asyncpg.Connection, *, closed_before: datetime, limit: int) -> int:
    """Pseudonymise the learners of closed tickets that closed before `closed_before`;
    returns how many tickets."""
    due = await conn.fetch(
        """
        SELECT ticket_id, subject, description FROM tickets
        WHERE status = 'closed' AND closed_at < $1 AND pseudonymised_at IS NULL
        ORDER BY closed_at LIMIT $2 FOR UPDATE SKIP LOCKED
        """,
        closed_before,
        limit,
    )
    if not due:
        return 0
    ids = [t["ticket_id"] for t in due]
    await conn.execute(
        """
        UPDATE tickets t
        SET learner = jsonb_build_object('name', r.pseudonym), subject = r.subject,
            description = r.description, learner_id = NULL, learner_context = NULL,
            call = NULL, attachments = '[]', thread_contact = NULL, content_key = NULL,
            pseudonymised_at = now(), search_of = NULL
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
            AS r(ticket_id, pseudonym, subject, description)
        WHERE t.ticket_id = r.ticket_id
        """,
        ids,
        [pseudonym(i) for i in ids],
        [masked(t["subject"]) for t in due],
        [masked(t["description"]) for t in due],
    )
    await _mask_texts(conn, "messages", "message_id", ids, learner=True)
    await _mask_texts(conn, "replies", "reply_id", ids)
    await _mask_texts(conn, "notes", "note_id", ids)
    # A survey's free comment is the learner's own words, like a message.
    await conn.execute(
        """
        UPDATE history SET detail = detail - 'comment'
        WHERE ticket_id = ANY($1::uuid[]) AND kind = 'survey_answered'
        """,
        ids,
    )
    await conn.execute(
        """
        INSERT INTO history (ticket_id, kind, actor, detail)
        SELECT ticket_id, 'pseudonymised', 'system', '{}' FROM unnest($1::uuid[]) AS ticket_id
        """,
        ids,
    )
    return len(ids)


async def forget_learners(conn: asyncpg.Connection, *, unchanged_since: datetime) -> int:
    """Drop the LMS's snapshots of learners it has not updated within the retention period and
    whom no ticket names any more (theirs are pseudonymised); returns how many. A learner who
    writes again is matched anew from the LMS's next snapshot."""
    forgotten = await conn.fetch(
        """
        DELETE FROM learners l
        WHERE l.updated_at < $1
          AND NOT EXISTS (SELECT FROM tickets t WHERE t.learner_id = l.learner_id)
        RETURNING learner_id
        """,
        unchanged_since,
    )
    return len(forgotten)


async def _mask_texts(
    conn: asyncpg.Connection,
    table: str,
    key: str,
    ticket_ids: list[object],
    *,
    learner: bool = False,
) -> None:
    """Mask contacts in the bodies of `table`'s rows of these tickets (`learner`: the rows
    also carry the learner, who becomes the ticket's pseudonym, and their attachments go).
    `table` and `key` come from code, never from input."""
    rows = await conn.fetch(
        f"SELECT {key}, ticket_id, body FROM {table} WHERE ticket_id = ANY($1::uuid[])", ticket_ids
    )
    if not rows:
        return
    who = (
        ", learner = jsonb_build_object('name', r.pseudonym), attachments = '[]'" if learner else ""
    )
    await conn.execute(
        f"""
        UPDATE {table} x SET body = r.body{who}
        FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(id, body, pseudonym)
        WHERE x.{key} = r.id
        """,
        [r[key] for r in rows],
        [masked(r["body"]) for r in rows],
        [pseudonym(r["ticket_id"]) for r in rows],
    )


async def run_once(
    conn: asyncpg.Connection, settings: DeskSettings, *, limit: int = BATCH
) -> tuple[int, int]:
    """One round: archive, then pseudonymise, what is due, then forget the learners nobody
    needs; returns how many tickets were archived and pseudonymised."""
    at = now()
    expired = at - timedelta(days=settings.retention_days)
    archived = await archive(
        conn, closed_before=at - timedelta(days=settings.archive_after_days), limit=limit
    )
    purged = await pseudonymise(conn, closed_before=expired, limit=limit)
    forgotten = await forget_learners(conn, unchanged_since=expired)
    if forgotten:
        log.info("learners forgotten", count=forgotten)
    return archived, purged


async def retention(ctx: Context[DeskSettings]) -> None:
    """desk's retention clock; replicas skip each other's tickets."""

    async def step() -> bool:
        async with ctx.pool.acquire() as conn, conn.transaction():
            archived, purged = await run_once(conn, ctx.settings)
        if archived or purged:
            log.info("retention", archived=archived, pseudonymised=purged)
        return BATCH in (archived, purged)

    await every(ctx.settings.retention_interval_seconds, step, what="retention")
