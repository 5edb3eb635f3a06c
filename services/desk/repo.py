"""SQL for desk's schema. Nothing here commits: the caller owns the transaction."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.agents import AgentSeed
from shared.events import (
    TicketAssigned,
    TicketQueued,
    TicketSubmitted,
    TicketTriaged,
    to_builtins,
)
from shared.inbox import last_per_key

History = tuple[UUID, str, str, dict[str, Any]]


def _json_rows(models: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows for jsonb_to_recordset, the latest per ticket; the pool's jsonb codec serializes them."""
    return [to_builtins(m) for m in last_per_key(models, lambda m: m.ticket_id)]


async def insert_submitted(
    conn: asyncpg.Connection, tickets: Sequence[TicketSubmitted]
) -> list[asyncpg.Record]:
    """Create the tickets not created yet; returns the new ones with their numbers."""
    return await conn.fetch(
        """
        INSERT INTO tickets (ticket_id, channel, source, external_id, learner, subject, description,
                             course_id, order_id, language, attachments, submitted_at)
        SELECT r.ticket_id, r.channel, r.source, r.external_id, r.learner, r.subject, r.description,
               r.course_id, r.order_id, r.language, r.attachments, r.submitted_at
        FROM jsonb_to_recordset($1::jsonb) AS r(
            ticket_id uuid, channel text, source text, external_id text, learner jsonb,
            subject text, description text, course_id text, order_id text, language text,
            attachments jsonb, submitted_at timestamptz)
        ON CONFLICT (ticket_id) DO NOTHING
        RETURNING ticket_id, number, created_at
        """,
        _json_rows(tickets),
    )


async def apply_triage(conn: asyncpg.Connection, items: Sequence[TicketTriaged]) -> None:
    await conn.execute(
        """
        UPDATE tickets t SET category = r.category, priority = r.priority, team = r.team,
               first_response_due_at = r.first_response_due_at,
               resolution_due_at = r.resolution_due_at, updated_at = now()
        FROM jsonb_to_recordset($1::jsonb) AS r(ticket_id uuid, category text, priority text,
             team text, first_response_due_at timestamptz, resolution_due_at timestamptz)
        WHERE t.ticket_id = r.ticket_id
        """,
        _json_rows(items),
    )


async def apply_queued(conn: asyncpg.Connection, items: Sequence[TicketQueued]) -> None:
    """Follow routing: an open ticket waits in a queue (an escalated one may leave its agent
    for a supervisor's queue). Routing's events for a ticket arrive in order."""
    await conn.execute(
        """
        UPDATE tickets t SET status = 'queued', team = r.team, assignee_id = NULL,
               updated_at = now()
        FROM jsonb_to_recordset($1::jsonb) AS r(ticket_id uuid, team text)
        WHERE t.ticket_id = r.ticket_id AND t.status IN ('new', 'reopened', 'assigned')
        """,
        _json_rows(items),
    )


async def apply_assigned(conn: asyncpg.Connection, items: Sequence[TicketAssigned]) -> None:
    """Follow routing: an open ticket has this agent now (an escalated one, a supervisor)."""
    await conn.execute(
        """
        UPDATE tickets t SET status = 'assigned', assignee_id = r.agent_id, team = r.team,
               updated_at = now()
        FROM jsonb_to_recordset($1::jsonb) AS r(ticket_id uuid, agent_id text, team text)
        WHERE t.ticket_id = r.ticket_id AND t.status IN ('new', 'queued', 'reopened', 'assigned')
        """,
        _json_rows(items),
    )


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
    conn: asyncpg.Connection, *, assignee_id: str | None, statuses: Sequence[str], limit: int
) -> list[asyncpg.Record]:
    """Tickets in `statuses`, most urgent then oldest first; the assignee's only unless
    `assignee_id` is None."""
    return await conn.fetch(
        """
        SELECT ticket_id, number, status, subject, category, priority, team, assignee_id,
               channel, language, created_at, first_response_due_at, needs_supervisor
        FROM tickets
        WHERE ($1::text IS NULL OR assignee_id = $1) AND status = ANY($2::text[])
        ORDER BY array_position(ARRAY['urgent', 'high', 'medium', 'low'], priority), created_at
        LIMIT $3
        """,
        assignee_id,
        list(statuses),
        limit,
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


async def agent_by_token(conn: asyncpg.Connection, token_sha256: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT agent_id, name, role FROM agents WHERE token_sha256 = $1", token_sha256
    )


async def upsert_agents(conn: asyncpg.Connection, agents: Sequence[AgentSeed]) -> None:
    await conn.executemany(
        """
        INSERT INTO agents (agent_id, name, role, token_sha256) VALUES ($1, $2, $3, $4)
        ON CONFLICT (agent_id) DO UPDATE
            SET name = excluded.name, role = excluded.role, token_sha256 = excluded.token_sha256
        """,
        [(a.id, a.name, a.role.value, a.token_sha256) for a in agents],
    )
