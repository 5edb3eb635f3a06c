"""SQL for desk's schema. Nothing here commits: the caller owns the transaction."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.events import (
    Attachment,
    Learner,
    LearnerSnapshot,
    TicketAssigned,
    TicketQueued,
    TicketRouted,
    TicketSubmitted,
    TicketTriaged,
    to_builtins,
)
from shared.inbox import last_per_key
from shared.phones import normal_phone

History = tuple[UUID, str, str, dict[str, Any]]

# Each statement below takes its batch as typed arrays (one per column, `unnest`ed in SQL)
# and writes the ticket's history rows in the same statement, for the rows it changed only.


@dataclass(frozen=True, slots=True)
class NewTicket:
    """A submission as desk stores it, with what desk decided about it."""

    submitted: TicketSubmitted
    thread_contact: str | None = None
    content_key: str | None = None
    related_ticket_id: UUID | None = None
    ticket_id: UUID | None = None  # another id than the submission's (a linked ticket)


def _attachments_json(attachments: Sequence[Attachment]) -> str:
    return json.dumps(
        [
            {"name": a.name, "content_type": a.content_type, "size": a.size, "url": a.url}
            for a in attachments
        ]
    )


def _learner_json(learner: Learner) -> str:
    return json.dumps(to_builtins(learner))


async def create_tickets(
    conn: asyncpg.Connection, tickets: Sequence[NewTicket]
) -> list[asyncpg.Record]:
    """Create the tickets not created yet (one submission per ticket), each with its "created"
    history row, matched to the learner the LMS described (by id, else e-mail, phone or WeChat
    openid); returns the new ones with their numbers and the learner's context. A ticket that
    exists is left alone: a submission applied twice is applied once."""
    if not tickets:
        return []
    rows = []
    for n in tickets:
        t = n.submitted
        rows.append(
            (
                n.ticket_id or t.ticket_id,
                t.channel,
                t.source,
                t.external_id,
                t.learner.name,
                t.learner.email,
                t.learner.phone,
                t.learner.learner_id,
                t.subject,
                t.description,
                t.course_id,
                t.order_id,
                t.language,
                _attachments_json(t.attachments) if t.attachments else "[]",
                t.submitted_at,
                t.learner.wechat_openid,
                t.learner.weibo_uid,
                t.message_id,
                n.thread_contact,
                n.content_key,
                None if t.call is None else json.dumps(to_builtins(t.call)),
                n.related_ticket_id,
            )
        )
    return await conn.fetch(
        """
        WITH created AS (
            INSERT INTO tickets (ticket_id, channel, source, external_id, learner, subject,
                                 description, course_id, order_id, language, attachments,
                                 submitted_at, learner_id, learner_context, message_id,
                                 thread_contact, content_key, call, related_ticket_id)
            SELECT r.ticket_id, r.channel, r.source, r.external_id,
                   jsonb_strip_nulls(jsonb_build_object(
                       'name', r.name, 'email', r.email, 'phone', r.phone,
                       'learner_id', coalesce(m.learner_id, r.learner_id),
                       'wechat_openid', r.wechat_openid, 'weibo_uid', r.weibo_uid)),
                   r.subject, r.description, r.course_id, r.order_id, r.language,
                   r.attachments::jsonb, r.submitted_at, coalesce(m.learner_id, r.learner_id),
                   m.context, r.message_id, r.thread_contact, r.content_key, r.call::jsonb,
                   r.related_ticket_id
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                        $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                        $12::text[], $13::text[], $14::text[], $15::timestamptz[], $16::text[],
                        $17::text[], $18::uuid[], $19::text[], $20::text[], $21::text[],
                        $22::uuid[])
                AS r(ticket_id, channel, source, external_id, name, email, phone, learner_id,
                     subject, description, course_id, order_id, language, attachments,
                     submitted_at, wechat_openid, weibo_uid, message_id, thread_contact,
                     content_key, call, related_ticket_id)
            LEFT JOIN LATERAL (
                SELECT c.learner_id, c.context FROM (
                    SELECT 1, l.learner_id, l.context FROM learners l
                    WHERE l.learner_id = r.learner_id
                    UNION ALL
                    SELECT 2, l.learner_id, l.context FROM learners l WHERE l.email = r.email
                    UNION ALL
                    SELECT 3, l.learner_id, l.context FROM learners l WHERE l.phone = r.phone
                    UNION ALL
                    SELECT 4, l.learner_id, l.context FROM learners l
                    WHERE l.wechat_openid = r.wechat_openid
                ) AS c(o, learner_id, context)
                ORDER BY c.o LIMIT 1
            ) m ON true
            ON CONFLICT (ticket_id) DO NOTHING
            RETURNING ticket_id, number, created_at, learner, learner_context
        ), noted AS (
            INSERT INTO history (ticket_id, kind, actor, detail)
            SELECT ticket_id, 'created', 'learner', jsonb_build_object('number', number)
            FROM created
        )
        SELECT ticket_id, number, created_at, learner, learner_context FROM created
        """,
        *_columns(rows),
    )


async def apply_routed(conn: asyncpg.Connection, items: Sequence[TicketRouted]) -> None:
    """A new ticket's triage and placement, with its "triaged" and "assigned" or "queued"
    history rows.

    Only a ticket that is still new takes it: its first placement moves it out of "new" for
    good (nothing but routing's placements does, and `ticket.routed` is a ticket's first), so
    the same event again, or a stale copy after a later re-placement, changes nothing.
    """
    if not items:
        return
    rows = [
        (
            t.ticket_id,
            t.category,
            t.priority,
            t.team,
            t.first_response_due_at,
            t.resolution_due_at,
            t.agent_id,
            t.confidence,
            t.reason,
            t.needs_review,
            "\x1f".join(t.collaborators),
        )
        for t in last_per_key(items, lambda t: t.ticket_id)
    ]
    await conn.execute(
        """
        WITH routed AS (
            UPDATE tickets t
            SET category = r.category, priority = r.priority, team = r.team,
                first_response_due_at = r.first_response_due_at,
                resolution_due_at = r.resolution_due_at,
                status = CASE WHEN r.agent_id IS NULL THEN 'queued' ELSE 'assigned' END,
                assignee_id = r.agent_id, triage_confidence = r.confidence,
                triage_reason = r.reason, needs_review = r.needs_review,
                collaborators = coalesce(string_to_array(nullif(r.collaborators, ''), chr(31)), '{}'),
                updated_at = now()
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                        $6::timestamptz[], $7::text[], $8::real[], $9::text[], $10::bool[],
                        $11::text[])
                AS r(ticket_id, category, priority, team, first_response_due_at,
                     resolution_due_at, agent_id, confidence, reason, needs_review,
                     collaborators)
            WHERE t.ticket_id = r.ticket_id AND t.status = 'new'
            RETURNING t.ticket_id, r.category, r.priority, r.team, r.agent_id, r.confidence,
                      r.reason, r.needs_review, t.collaborators
        )
        INSERT INTO history (ticket_id, kind, actor, detail)
        SELECT ticket_id, h.kind, 'routing', h.detail
        FROM routed, LATERAL (VALUES
            (1, 'triaged', jsonb_strip_nulls(jsonb_build_object(
                'category', category, 'priority', priority, 'confidence', confidence,
                'reason', reason, 'needs_review', CASE WHEN needs_review THEN true END,
                'collaborators', CASE WHEN cardinality(collaborators) > 0
                                      THEN to_jsonb(collaborators) END))),
            (2, CASE WHEN agent_id IS NULL THEN 'queued' ELSE 'assigned' END,
                CASE WHEN agent_id IS NULL THEN jsonb_build_object('team', team)
                     ELSE jsonb_build_object('agent_id', agent_id) END)
        ) AS h(step, kind, detail)
        ORDER BY ticket_id, h.step
        """,
        *_columns(rows),
    )


async def apply_triage(conn: asyncpg.Connection, items: Sequence[TicketTriaged]) -> None:
    """Triage alone, as routing sent it before `ticket.routed`, with its history row."""
    if not items:
        return
    rows = [
        (t.ticket_id, t.category, t.priority, t.team, t.first_response_due_at, t.resolution_due_at)
        for t in last_per_key(items, lambda t: t.ticket_id)
    ]
    await conn.execute(
        """
        WITH triaged AS (
            UPDATE tickets t SET category = r.category, priority = r.priority, team = r.team,
                   first_response_due_at = r.first_response_due_at,
                   resolution_due_at = r.resolution_due_at, updated_at = now()
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                        $6::timestamptz[])
                AS r(ticket_id, category, priority, team, first_response_due_at,
                     resolution_due_at)
            WHERE t.ticket_id = r.ticket_id
            RETURNING t.ticket_id, r.category, r.priority
        )
        INSERT INTO history (ticket_id, kind, actor, detail)
        SELECT ticket_id, 'triaged', 'routing',
               jsonb_build_object('category', category, 'priority', priority)
        FROM triaged
        """,
        *_columns(rows),
    )


async def apply_queued(conn: asyncpg.Connection, items: Sequence[TicketQueued]) -> None:
    """Follow routing: an open ticket waits in a queue (an escalated one may leave its agent
    for a supervisor's queue, a queued one at risk moves to its backup team's). Routing's
    events for a ticket arrive in order."""
    if not items:
        return
    rows = [(t.ticket_id, t.team) for t in last_per_key(items, lambda t: t.ticket_id)]
    await conn.execute(
        """
        WITH queued AS (
            UPDATE tickets t SET status = 'queued', team = r.team, assignee_id = NULL,
                   updated_at = now()
            FROM unnest($1::uuid[], $2::text[]) AS r(ticket_id, team)
            WHERE t.ticket_id = r.ticket_id
              AND t.status IN ('new', 'reopened', 'assigned', 'queued')
            RETURNING t.ticket_id, r.team
        )
        INSERT INTO history (ticket_id, kind, actor, detail)
        SELECT ticket_id, 'queued', 'routing', jsonb_build_object('team', team) FROM queued
        """,
        *_columns(rows),
    )


async def apply_assigned(conn: asyncpg.Connection, items: Sequence[TicketAssigned]) -> None:
    """Follow routing: an open ticket has this agent now (an escalated one, a supervisor)."""
    if not items:
        return
    rows = [(t.ticket_id, t.agent_id, t.team) for t in last_per_key(items, lambda t: t.ticket_id)]
    await conn.execute(
        """
        WITH assigned AS (
            UPDATE tickets t SET status = 'assigned', assignee_id = r.agent_id, team = r.team,
                   updated_at = now()
            FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(ticket_id, agent_id, team)
            WHERE t.ticket_id = r.ticket_id
              AND t.status IN ('new', 'queued', 'reopened', 'assigned')
            RETURNING t.ticket_id, r.agent_id
        )
        INSERT INTO history (ticket_id, kind, actor, detail)
        SELECT ticket_id, 'assigned', 'routing', jsonb_build_object('agent_id', agent_id)
        FROM assigned
        """,
        *_columns(rows),
    )


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows turned into one list per column: the typed arrays a statement `unnest`s."""
    return [list(column) for column in zip(*rows, strict=True)]


async def add_history(conn: asyncpg.Connection, rows: Sequence[History]) -> None:
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO history (ticket_id, kind, actor, detail)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[])
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )


async def lock_ticket(conn: asyncpg.Connection, ticket_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM tickets WHERE ticket_id = $1 FOR UPDATE", ticket_id)


async def lock_by_confirm_token(
    conn: asyncpg.Connection, token_sha256: str
) -> asyncpg.Record | None:
    """The ticket whose confirmation link carries the token with this digest, locked."""
    return await conn.fetchrow(
        "SELECT * FROM tickets WHERE confirm_token_sha256 = $1 FOR UPDATE", token_sha256
    )


async def by_confirm_token(conn: asyncpg.Connection, token_sha256: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT ticket_id, status FROM tickets WHERE confirm_token_sha256 = $1", token_sha256
    )


async def mark_needs_supervisor(conn: asyncpg.Connection, ticket_id: UUID) -> None:
    await conn.execute(
        "UPDATE tickets SET needs_supervisor = true, updated_at = now() WHERE ticket_id = $1",
        ticket_id,
    )


async def get_ticket(conn: asyncpg.Connection, ticket_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM tickets WHERE ticket_id = $1", ticket_id)


async def ticket_history(conn: asyncpg.Connection, ticket_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT at, kind, actor, detail FROM history WHERE ticket_id = $1 ORDER BY id", ticket_id
    )


async def list_tickets(
    conn: asyncpg.Connection,
    *,
    assignee_id: str | None,
    statuses: Sequence[str],
    limit: int,
    needs_review: bool = False,
) -> list[asyncpg.Record]:
    """Tickets in `statuses`, most urgent then oldest first; the assignee's only unless
    `assignee_id` is None; with `needs_review`, only those triage was unsure of."""
    return await conn.fetch(
        """
        SELECT ticket_id, number, status, subject, category, priority, team, assignee_id,
               channel, language, created_at, first_response_due_at, needs_supervisor,
               triage_confidence, needs_review
        FROM tickets
        WHERE ($1::text IS NULL OR assignee_id = $1) AND status = ANY($2::text[])
            AND (NOT $4 OR needs_review)
        ORDER BY array_position(ARRAY['urgent', 'high', 'medium', 'low'], priority), created_at
        LIMIT $3
        """,
        assignee_id,
        list(statuses),
        limit,
        needs_review,
    )


async def insert_reply(
    conn: asyncpg.Connection, *, reply_id: UUID, ticket_id: UUID, agent_id: str, body: str
) -> tuple[datetime, bool]:
    """Store a reply; returns its time and whether it is the ticket's first response."""
    row = await conn.fetchrow(
        """
        WITH r AS (
            INSERT INTO replies (reply_id, ticket_id, agent_id, body) VALUES ($1, $2, $3, $4)
            RETURNING created_at
        )
        UPDATE tickets SET first_responded_at = coalesce(first_responded_at, r.created_at),
               updated_at = now()
        FROM r WHERE ticket_id = $2
        RETURNING r.created_at, first_responded_at = r.created_at AS first
        """,
        reply_id,
        ticket_id,
        agent_id,
        body,
    )
    assert row is not None
    return row["created_at"], row["first"]


async def set_triage(
    conn: asyncpg.Connection, ticket_id: UUID, *, category: str, priority: str
) -> asyncpg.Record:
    """A person's triage replaces routing's; it needs no review."""
    row = await conn.fetchrow(
        "UPDATE tickets SET category = $2, priority = $3, needs_review = false, "
        "updated_at = now() WHERE ticket_id = $1 RETURNING *",
        ticket_id,
        category,
        priority,
    )
    assert row is not None
    return row


async def set_status(
    conn: asyncpg.Connection, ticket_id: UUID, status: str, **fields: Any
) -> asyncpg.Record:
    """Set `status` and the given columns (names come from code, never from input)."""
    columns = ["status", *fields]
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    row = await conn.fetchrow(
        f"UPDATE tickets SET {assignments}, updated_at = now() WHERE ticket_id = $1 RETURNING *",
        ticket_id,
        status,
        *fields.values(),
    )
    assert row is not None
    return row


async def resolved_before(
    conn: asyncpg.Connection, cutoff: datetime, limit: int
) -> list[asyncpg.Record]:
    """Resolved tickets unanswered since `cutoff`, locked for closing; replicas skip each other's."""
    return await conn.fetch(
        """
        SELECT ticket_id, number, created_at FROM tickets
        WHERE status = 'resolved' AND resolved_at < $1
        ORDER BY resolved_at LIMIT $2 FOR UPDATE SKIP LOCKED
        """,
        cutoff,
        limit,
    )


async def close_many(
    conn: asyncpg.Connection, ticket_ids: Sequence[UUID], closed_at: datetime
) -> None:
    await conn.execute(
        "UPDATE tickets SET status = 'closed', closed_at = $2, confirm_token_sha256 = NULL, "
        "updated_at = now() WHERE ticket_id = ANY($1::uuid[])",
        list(ticket_ids),
        closed_at,
    )


# ---- learners and follow-up messages ------------------------------------------------------


async def upsert_learners(conn: asyncpg.Connection, snapshots: Sequence[LearnerSnapshot]) -> int:
    """Keep each learner's newest snapshot: an older `updated_at` than the one held changes
    nothing. Returns how many rows changed."""
    newest: dict[str, LearnerSnapshot] = {}
    for snap in snapshots:
        held = newest.get(snap.learner_id)
        if held is None or snap.updated_at > held.updated_at:
            newest[snap.learner_id] = snap
    if not newest:
        return 0
    rows = [
        (
            s.learner_id,
            s.name,
            s.email.lower() if s.email else None,
            normal_phone(s.phone),
            s.wechat_openid,
            json.dumps(to_builtins(s.context())),
            s.updated_at,
        )
        for s in newest.values()
    ]
    changed = await conn.fetch(
        """
        INSERT INTO learners (learner_id, name, email, phone, wechat_openid, context, updated_at)
        SELECT learner_id, name, email, phone, wechat_openid, context::jsonb, updated_at
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::timestamptz[])
            AS r(learner_id, name, email, phone, wechat_openid, context, updated_at)
        ON CONFLICT (learner_id) DO UPDATE
            SET name = excluded.name, email = excluded.email, phone = excluded.phone,
                wechat_openid = excluded.wechat_openid, context = excluded.context,
                updated_at = excluded.updated_at
            WHERE learners.updated_at < excluded.updated_at
        RETURNING learner_id
        """,
        *_columns(rows),
    )
    return len(changed)


async def set_survey_urls(conn: asyncpg.Connection, urls: Sequence[tuple[UUID, str]]) -> None:
    if urls:
        await conn.execute(
            "UPDATE tickets t SET survey_url = u.url FROM unnest($1::uuid[], $2::text[]) "
            "AS u(ticket_id, url) WHERE t.ticket_id = u.ticket_id",
            [u[0] for u in urls],
            [u[1] for u in urls],
        )


async def receipt(conn: asyncpg.Connection, ref: UUID) -> asyncpg.Record | None:
    """The ticket a submission made or landed on: by its ticket id, else by the learner
    message's id (a follow-up joins a ticket under another id)."""
    return await conn.fetchrow(
        """
        SELECT number, status, ticket_id FROM tickets WHERE ticket_id = $1
        UNION ALL
        SELECT t.number, t.status, t.ticket_id FROM messages m JOIN tickets t USING (ticket_id)
        WHERE m.message_id = $1
        UNION ALL
        SELECT number, status, ticket_id FROM tickets WHERE message_id = $1
        LIMIT 1
        """,
        ref,
    )


async def message_seen(conn: asyncpg.Connection, message_id: UUID) -> bool:
    """Whether a learner message was stored already, as a ticket's first or a follow-up."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT FROM messages WHERE message_id = $1) "
            "OR EXISTS (SELECT FROM tickets WHERE message_id = $1)",
            message_id,
        )
    )


async def lock_by_number(conn: asyncpg.Connection, number: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM tickets WHERE number = $1 FOR UPDATE", number)


async def get_ticket_by_number(conn: asyncpg.Connection, number: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM tickets WHERE number = $1", number)


async def lock_latest_by_contact(
    conn: asyncpg.Connection, *, channel: str, contact: str, since: datetime
) -> asyncpg.Record | None:
    """The learner's latest ticket on a channel without threads, if open and recent."""
    return await conn.fetchrow(
        """
        SELECT * FROM tickets
        WHERE channel = $1 AND thread_contact = $2 AND updated_at > $3 AND status <> 'closed'
        ORDER BY updated_at DESC LIMIT 1 FOR UPDATE
        """,
        channel,
        contact,
        since,
    )


async def recent_with_content(
    conn: asyncpg.Connection, content_key: str, since: datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT ticket_id, number, channel FROM tickets "
        "WHERE content_key = $1 AND created_at > $2 ORDER BY created_at LIMIT 1",
        content_key,
        since,
    )


async def note_also_received(
    conn: asyncpg.Connection, ticket_id: UUID, *, submission: UUID, channel: str
) -> None:
    """The ticket's history notes the same text received again on `channel`, once per
    submission however often it is delivered."""
    await conn.execute(
        """
        INSERT INTO history (ticket_id, kind, actor, detail)
        SELECT $1, 'also_received', 'learner',
               jsonb_build_object('channel', $3::text, 'submission', $2::text)
        WHERE NOT EXISTS (
            SELECT FROM history WHERE ticket_id = $1 AND kind = 'also_received'
                AND detail->>'submission' = $2::text
        )
        """,
        ticket_id,
        str(submission),
        channel,
    )


async def insert_message(
    conn: asyncpg.Connection,
    *,
    message_id: UUID,
    ticket_id: UUID,
    channel: str,
    learner: Learner,
    body: str,
    attachments: Sequence[Attachment],
    received_at: datetime,
) -> bool:
    """Store a follow-up once; False when this message was stored already."""
    inserted = await conn.fetchval(
        """
        WITH m AS (
            INSERT INTO messages (message_id, ticket_id, channel, learner, body, attachments,
                                  received_at)
            VALUES ($1, $2, $3, $4::text::jsonb, $5, $6::text::jsonb, $7)
            ON CONFLICT (message_id) DO NOTHING
            RETURNING ticket_id
        ), touched AS (
            UPDATE tickets SET updated_at = now(), search_of = NULL
            WHERE ticket_id IN (SELECT ticket_id FROM m)
        )
        SELECT count(*) FROM m
        """,
        message_id,
        ticket_id,
        channel,
        _learner_json(learner),
        body,
        _attachments_json(attachments),
        received_at,
    )
    return bool(inserted)


async def conversation(conn: asyncpg.Connection, ticket_id: UUID) -> list[asyncpg.Record]:
    """Everything said on a ticket, oldest first: the learner's first message, later messages
    on any channel, agents' replies (by the agent's name), and the history's events (assigned,
    resolved…).

    Each row: kind (description | message | reply | event), at, author, channel, body,
    attachments, detail (an event's kind is in `body`, its facts in `detail`).
    """
    return await conn.fetch(
        """
        SELECT 'description' AS kind, submitted_at AS at, learner->>'name' AS author, channel,
               description AS body, attachments, NULL::jsonb AS detail
        FROM tickets WHERE ticket_id = $1
        UNION ALL
        SELECT 'message', received_at, learner->>'name', channel, body, attachments, NULL
        FROM messages WHERE ticket_id = $1
        UNION ALL
        SELECT 'reply', r.created_at, coalesce(a.name, r.agent_id), NULL, r.body, '[]'::jsonb,
               NULL
        FROM replies r LEFT JOIN agents a USING (agent_id) WHERE r.ticket_id = $1
        UNION ALL
        SELECT 'event', at, actor, NULL, kind, '[]'::jsonb, detail
        FROM history WHERE ticket_id = $1
            AND kind NOT IN ('created', 'replied', 'message_received')
        ORDER BY at, kind
        """,
        ticket_id,
    )


async def tickets_of_learner(
    conn: asyncpg.Connection, learner_id: str, *, limit: int = 100
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT ticket_id, number, status, subject, channel, category, priority, created_at,
               updated_at, resolved_at, closed_at
        FROM tickets WHERE learner_id = $1 ORDER BY created_at DESC LIMIT $2
        """,
        learner_id,
        limit,
    )


# ---- notes, macros, transfers, merges (issue 9) ------------------------------------------


async def agents_by_id(conn: asyncpg.Connection, agent_ids: Sequence[str]) -> list[asyncpg.Record]:
    """The agents among `agent_ids` desk knows, with their teams and addresses."""
    return await conn.fetch(
        "SELECT agent_id, name, role, teams, email FROM agents "
        "WHERE agent_id = ANY($1::text[]) AND active "
        "ORDER BY array_position($1::text[], agent_id)",
        list(agent_ids),
    )


async def people(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT agent_id, name, role, teams FROM agents WHERE active ORDER BY name"
    )


async def team_exists(conn: asyncpg.Connection, team: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT FROM agents WHERE active AND $1 = ANY(teams))", team
        )
    )


async def insert_note(
    conn: asyncpg.Connection,
    *,
    note_id: UUID,
    ticket_id: UUID,
    agent_id: str,
    body: str,
    mentions: Sequence[str],
) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        INSERT INTO notes (note_id, ticket_id, agent_id, body, mentions)
        VALUES ($1, $2, $3, $4, $5) RETURNING *
        """,
        note_id,
        ticket_id,
        agent_id,
        body,
        list(mentions),
    )
    assert row is not None
    return row


_MACRO = "macro_id, name, body, language, updated_by, created_at, updated_at"


async def list_macros(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_MACRO} FROM macros ORDER BY name")


async def get_macro(conn: asyncpg.Connection, macro_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_MACRO} FROM macros WHERE macro_id = $1", macro_id)


async def save_macro(
    conn: asyncpg.Connection,
    *,
    macro_id: UUID,
    name: str,
    body: str,
    language: str | None,
    by: str,
    create: bool,
) -> asyncpg.Record | None:
    """Create (`create`) or replace a macro; None when there is no such macro to replace.
    A name another macro has raises asyncpg's UniqueViolationError."""
    if create:
        sql = f"""
            INSERT INTO macros (macro_id, name, body, language, updated_by)
            VALUES ($1, $2, $3, $4, $5) RETURNING {_MACRO}
        """
    else:
        sql = f"""
            UPDATE macros SET name = $2, body = $3, language = $4, updated_by = $5,
                   updated_at = now()
            WHERE macro_id = $1 RETURNING {_MACRO}
        """
    return await conn.fetchrow(sql, macro_id, name, body, language, by)


async def delete_macro(conn: asyncpg.Connection, macro_id: UUID) -> bool:
    return bool(
        await conn.fetchval("DELETE FROM macros WHERE macro_id = $1 RETURNING true", macro_id)
    )


async def move_conversation(
    conn: asyncpg.Connection, *, from_id: UUID, into_id: UUID, description_id: UUID
) -> int:
    """Everything said on a duplicate moves to the ticket it merges into: its first message
    (as a message there, under `description_id`, so a repeat moves it once), its messages,
    replies and notes. Returns how many moved."""
    moved = await conn.fetchval(
        """
        WITH first AS (
            INSERT INTO messages (message_id, ticket_id, channel, learner, body, attachments,
                                  received_at)
            SELECT $3, $2, channel, learner, description, attachments, submitted_at
            FROM tickets WHERE ticket_id = $1
            ON CONFLICT (message_id) DO NOTHING
            RETURNING 1
        ), m AS (UPDATE messages SET ticket_id = $2 WHERE ticket_id = $1 RETURNING 1),
        r AS (UPDATE replies SET ticket_id = $2 WHERE ticket_id = $1 RETURNING 1),
        n AS (UPDATE notes SET ticket_id = $2 WHERE ticket_id = $1 RETURNING 1),
        touched AS (
            UPDATE tickets SET updated_at = now(), search_of = NULL WHERE ticket_id = $2
        )
        SELECT (SELECT count(*) FROM first) + (SELECT count(*) FROM m)
               + (SELECT count(*) FROM r) + (SELECT count(*) FROM n)
        """,
        from_id,
        into_id,
        description_id,
    )
    return int(moved)


# ---- the timeline ------------------------------------------------------------------------


async def timeline(conn: asyncpg.Connection, ticket_id: UUID) -> list[asyncpg.Record]:
    """Everything a ticket went through, oldest first (R7.3): its first message, the learner's
    later messages on any channel, replies, internal notes, and every change in its history
    (triage, placements, transfers, merges, survey answers, the outcome). For agents only:
    notes are never the learner's to see.

    Each row: kind (description | message | reply | note | event), at, actor (an agent id,
    'learner', 'routing'…), actor_name, channel, body (an event's history kind), detail (a
    reply's names its reply_id)."""
    return await conn.fetch(
        """
        SELECT * FROM (
            SELECT 'description' AS kind, submitted_at AS at, 'learner' AS actor,
                   learner->>'name' AS actor_name, channel, description AS body,
                   jsonb_build_object('attachments', attachments) AS detail, 0 AS seq
            FROM tickets WHERE ticket_id = $1
            UNION ALL
            SELECT 'message', received_at, 'learner', learner->>'name', channel, body,
                   jsonb_build_object('attachments', attachments), 0
            FROM messages WHERE ticket_id = $1
            UNION ALL
            SELECT 'reply', r.created_at, r.agent_id, a.name, NULL, r.body,
                   jsonb_build_object('reply_id', r.reply_id), 0
            FROM replies r LEFT JOIN agents a USING (agent_id) WHERE r.ticket_id = $1
            UNION ALL
            SELECT 'note', n.created_at, n.agent_id, a.name, NULL, n.body,
                   jsonb_build_object('mentions', to_jsonb(n.mentions)), 0
            FROM notes n LEFT JOIN agents a USING (agent_id) WHERE n.ticket_id = $1
            UNION ALL
            SELECT 'event', h.at, h.actor, a.name, NULL, h.kind, h.detail, h.id
            FROM history h LEFT JOIN agents a ON a.agent_id = h.actor
            WHERE h.ticket_id = $1
              AND h.kind NOT IN ('created', 'replied', 'message_received', 'note_added')
        ) AS t
        ORDER BY at, seq
        """,
        ticket_id,
    )


# ---- search ------------------------------------------------------------------------------

_FOUND = """ticket_id, number, subject, status, priority, category, team, assignee_id,
    learner->>'name' AS learner_name, channel, created_at, updated_at, archived_at"""
# An agent's reach: assigned to them, or in one of their teams (NULL teams: everyone's).
_REACH = "($2::text[] IS NULL OR team = ANY($2::text[]) OR assignee_id = $3)"


async def search_number(
    conn: asyncpg.Connection, number: str, *, teams: Sequence[str] | None, agent_id: str
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_FOUND}, 1.0::real AS rank FROM tickets WHERE number = $1 AND {_REACH}",
        number,
        None if teams is None else list(teams),
        agent_id,
    )


async def search_words(
    conn: asyncpg.Connection,
    *,
    tsquery: str,
    contact: bool,
    teams: Sequence[str] | None,
    agent_id: str,
    limit: int,
) -> list[asyncpg.Record]:
    """Tickets whose words match, best first: subject and contacts weigh most, then the
    learner's name, then what they wrote. `contact`: `tsquery` is one e-mail address or phone
    number, matched as stored; else it is `shared.searchwords.query`'s words."""
    q = "quote_literal($1::text)::tsquery" if contact else "to_tsquery('english', $1)"
    return await conn.fetch(
        f"""
        SELECT {_FOUND}, ts_rank(search, w.q, 1) AS rank
        FROM tickets, (SELECT {q} AS q) AS w
        WHERE search @@ w.q AND {_REACH}
        ORDER BY rank DESC, updated_at DESC
        LIMIT $4
        """,
        tsquery,
        None if teams is None else list(teams),
        agent_id,
        limit,
    )


# What the learner wrote is indexed up to this many characters: a tsvector holds at most 1 MB.
SEARCH_TEXT_CHARS = 100_000


async def stale_search(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Tickets whose text changed since their search words were made (or never indexed), with
    the text to index: subject, the learner's name and contacts, and everything the learner
    wrote."""
    return await conn.fetch(
        """
        SELECT t.ticket_id, t.updated_at, t.subject, t.learner,
               left(concat_ws(E'\\n', t.description, m.bodies), $2) AS body
        FROM (
            SELECT ticket_id, updated_at, subject, learner, description FROM tickets
            WHERE search_of IS NULL
            ORDER BY updated_at LIMIT $1
        ) AS t
        LEFT JOIN LATERAL (
            SELECT string_agg(body, E'\\n' ORDER BY received_at) AS bodies
            FROM messages WHERE ticket_id = t.ticket_id
        ) AS m ON true
        """,
        limit,
        SEARCH_TEXT_CHARS,
    )


@dataclass(frozen=True, slots=True)
class SearchWords:
    ticket_id: UUID
    of: datetime  # the `updated_at` they were made from
    subject: str
    name: str
    body: str
    contacts: list[str]


async def set_search(conn: asyncpg.Connection, items: Sequence[SearchWords]) -> None:
    """Store each ticket's words, unless it changed again since they were read (the next
    round makes them anew)."""
    if not items:
        return
    await conn.execute(
        """
        UPDATE tickets t
        SET search = setweight(to_tsvector('english', w.subject), 'A')
                     || setweight(array_to_tsvector(w.contacts), 'A')
                     || setweight(to_tsvector('english', w.name), 'B')
                     || setweight(to_tsvector('english', w.body), 'C'),
            search_of = w.of
        FROM (
            SELECT ticket_id, of, subject, name, body,
                   coalesce(string_to_array(nullif(contacts, ''), chr(31)), '{}') AS contacts
            FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                        $6::text[]) AS r(ticket_id, of, subject, name, body, contacts)
        ) AS w
        WHERE t.ticket_id = w.ticket_id AND t.updated_at = w.of
        """,
        [i.ticket_id for i in items],
        [i.of for i in items],
        [i.subject for i in items],
        [i.name for i in items],
        [i.body for i in items],
        ["\x1f".join(i.contacts) for i in items],
    )
