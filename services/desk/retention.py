"""Retention (R7.3): closed tickets are archived after CARELOOP_DESK_ARCHIVE_AFTER_DAYS, and
their learners' personal data pseudonymised after CARELOOP_DESK_RETENTION_DAYS.

Pseudonymising keeps what reports and audits need (the ticket, its category, times, who
worked it, its history, a case's finding and remedies' kinds and amounts) and drops who the
learner is: their name becomes a pseudonym; their contacts, LMS id and context, call details
and attachments go; e-mail addresses and phone numbers are masked inside every text about the
ticket: what the learner wrote, agents' replies and notes, call-back notes, a case's notes,
finding summary and outcomes, remedies' descriptions and the acting systems' reasons, and the
reasons and notes in the history (a survey's comment in the history goes). Each ticket is done
once (`pseudonymised_at`), so running the job again changes nothing. The LMS's snapshot of a
learner goes too once no ticket names them and the LMS has not updated it for as long.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.desk.settings import DeskSettings
from shared.events import now
from shared.retention import Round, mask_texts, masked, pseudonym

# Keys of the history's details that hold what a person wrote (a transfer's or re-triage's
# reason, an approver's note, a resolution, an acting system's reason); the rest are codes.
HISTORY_TEXTS = ("reason", "note", "resolution")
_OF_TICKETS = "ticket_id = ANY($1::uuid[])"
# The other texts about a ticket, whose contacts are masked: each table, the columns that
# identify a row (with their types), its text columns, and which rows are the tickets' ($1).
TEXTS: tuple[tuple[str, dict[str, str], list[str], str], ...] = (
    ("replies", {"reply_id": "uuid"}, ["body"], _OF_TICKETS),
    ("notes", {"note_id": "uuid"}, ["body"], _OF_TICKETS),
    ("ticket_callbacks", {"ticket_id": "uuid"}, ["note"], _OF_TICKETS),
    ("cases", {"case_id": "uuid"}, ["finding_summary", "outcome", "callback_outcome"], _OF_TICKETS),
    (
        "case_notes",
        {"note_id": "uuid"},
        ["body"],
        f"case_id IN (SELECT case_id FROM cases WHERE {_OF_TICKETS})",
    ),
    ("remedies", {"remedy_id": "uuid"}, ["description", "answer_reason"], _OF_TICKETS),
    (
        "remedy_approvals",
        {"remedy_id": "uuid", "approver_id": "text"},
        ["note"],
        f"remedy_id IN (SELECT remedy_id FROM remedies WHERE {_OF_TICKETS})",
    ),
)


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
    await _forget_in_messages(conn, ids)
    for table, keys, columns, where in TEXTS:
        await mask_texts(conn, table=table, keys=keys, columns=columns, where=where, args=[ids])
    await _mask_history(conn, ids)
    await conn.execute(
        """
        INSERT INTO history (ticket_id, kind, actor, detail)
        SELECT ticket_id, 'pseudonymised', 'system', '{}' FROM unnest($1::uuid[]) AS ticket_id
        """,
        ids,
    )
    return len(ids)


async def _mask_history(conn: asyncpg.Connection, ticket_ids: list[object]) -> None:
    """Mask the free texts in these tickets' history details, and drop survey comments (the
    learner's own words, like a message)."""
    rows = await conn.fetch(
        """
        SELECT id, detail FROM history
        WHERE ticket_id = ANY($1::uuid[]) AND detail ?| $2::text[]
        """,
        ticket_ids,
        [*HISTORY_TEXTS, "comment"],
    )
    changed = [(r["id"], d) for r in rows if (d := _masked_detail(r["detail"])) != r["detail"]]
    if not changed:
        return
    await conn.execute(
        """
        UPDATE history h SET detail = r.detail
        FROM unnest($1::bigint[], $2::jsonb[]) AS r(id, detail) WHERE h.id = r.id
        """,
        [c[0] for c in changed],
        [c[1] for c in changed],
    )


def _masked_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: masked(v) if k in HISTORY_TEXTS and isinstance(v, str) else v
        for k, v in detail.items()
        if k != "comment"
    }


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


async def _forget_in_messages(conn: asyncpg.Connection, ticket_ids: list[object]) -> None:
    """The learner's messages on these tickets: the sender becomes the ticket's pseudonym,
    attachments go, contacts in the text are masked."""
    rows = await conn.fetch(
        "SELECT message_id, ticket_id, body FROM messages WHERE ticket_id = ANY($1::uuid[])",
        ticket_ids,
    )
    if not rows:
        return
    await conn.execute(
        """
        UPDATE messages x
        SET body = r.body, learner = jsonb_build_object('name', r.pseudonym), attachments = '[]'
        FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(id, body, pseudonym)
        WHERE x.message_id = r.id
        """,
        [r["message_id"] for r in rows],
        [masked(r["body"]) for r in rows],
        [pseudonym(r["ticket_id"]) for r in rows],
    )


def job(settings: DeskSettings) -> Round:
    """desk's round: archive, then pseudonymise, what is due, then forget the learners nobody
    needs; how many tickets were archived and pseudonymised and learners forgotten. Replicas
    skip each other's tickets."""

    async def run_once(conn: asyncpg.Connection, expired: datetime, limit: int) -> dict[str, int]:
        archived = await archive(
            conn,
            closed_before=now() - timedelta(days=settings.archive_after_days),
            limit=limit,
        )
        return {
            "archived": archived,
            "pseudonymised": await pseudonymise(conn, closed_before=expired, limit=limit),
            "learners_forgotten": await forget_learners(conn, unchanged_since=expired),
        }

    return run_once
