"""SQL for survey's schema. Nothing here commits: the caller owns the transaction."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.survey.domain import AnswerIn


async def schedule(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Surveys due after a resolution; each gets its token only when it is sent."""
    await conn.execute(
        """
        INSERT INTO surveys (survey_id, ticket_id, resolution_event_id, due_at)
        SELECT r.survey_id, r.ticket_id, r.resolution_event_id, r.due_at
        FROM jsonb_to_recordset($1::jsonb) AS r(survey_id uuid, ticket_id uuid,
             resolution_event_id uuid, due_at timestamptz)
        ON CONFLICT (resolution_event_id) DO NOTHING
        """,
        list(rows),
    )


async def record_learners(conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str]]) -> None:
    """(ticket_id, learner key) pairs from ticket.created; a redelivery changes nothing."""
    await conn.execute(
        """
        INSERT INTO ticket_learners (ticket_id, learner_key)
        SELECT * FROM unnest($1::uuid[], $2::text[])
        ON CONFLICT (ticket_id) DO NOTHING
        """,
        [ticket_id for ticket_id, _ in rows],
        [key for _, key in rows],
    )


async def cancel_scheduled(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> None:
    await conn.execute(
        "UPDATE surveys SET status = 'cancelled' "
        "WHERE ticket_id = ANY($1::uuid[]) AND status = 'scheduled'",
        list(ticket_ids),
    )


async def lock_due(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Due surveys with their learner's key where known, locked for sending; replicas skip
    each other's rows."""
    return await conn.fetch(
        """
        SELECT s.survey_id, s.ticket_id, COALESCE(s.learner_key, t.learner_key) AS learner_key
        FROM surveys s LEFT JOIN ticket_learners t USING (ticket_id)
        WHERE s.status = 'scheduled' AND s.due_at <= now()
        ORDER BY s.due_at LIMIT $1 FOR UPDATE OF s SKIP LOCKED
        """,
        limit,
    )


async def last_sent(conn: asyncpg.Connection, keys: Sequence[str]) -> dict[str, datetime]:
    """When each learner was last sent a survey, holding a lock per learner until the caller
    commits, so that two replicas cannot both send one inside the quiet period."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
        "FROM (SELECT DISTINCT k FROM unnest($1::text[]) AS k ORDER BY k) AS keys",
        list(keys),
    )
    rows = await conn.fetch(
        """
        SELECT learner_key, max(requested_at) AS at FROM surveys
        WHERE learner_key = ANY($1::text[]) AND requested_at IS NOT NULL
        GROUP BY learner_key
        """,
        list(keys),
    )
    return {r["learner_key"]: r["at"] for r in rows}


async def mark_quiet(conn: asyncpg.Connection, survey_ids: Sequence[UUID]) -> None:
    await conn.execute(
        "UPDATE surveys SET status = 'quiet' WHERE survey_id = ANY($1::uuid[])", list(survey_ids)
    )


async def mark_requested(
    conn: asyncpg.Connection, sent: Sequence[tuple[UUID, str, str | None]]
) -> list[asyncpg.Record]:
    """Mark (survey_id, token digest, learner key) triples sent; returns each survey with its
    request time."""
    return await conn.fetch(
        """
        UPDATE surveys s SET status = 'requested', requested_at = now(),
               token_sha256 = r.token_sha256, learner_key = r.learner_key
        FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(survey_id, token_sha256, learner_key)
        WHERE s.survey_id = r.survey_id
        RETURNING s.survey_id, s.ticket_id, s.requested_at
        """,
        [survey_id for survey_id, _, _ in sent],
        [token_sha256 for _, token_sha256, _ in sent],
        [key for _, _, key in sent],
    )


async def by_token(conn: asyncpg.Connection, token_sha256: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT survey_id, ticket_id, status FROM surveys WHERE token_sha256 = $1", token_sha256
    )


async def lock_by_token(conn: asyncpg.Connection, token_sha256: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT survey_id, ticket_id, status FROM surveys WHERE token_sha256 = $1 FOR UPDATE",
        token_sha256,
    )


async def record_answer(
    conn: asyncpg.Connection, survey_id: UUID, answer: AnswerIn
) -> asyncpg.Record:
    await conn.execute("UPDATE surveys SET status = 'answered' WHERE survey_id = $1", survey_id)
    row = await conn.fetchrow(
        """
        INSERT INTO answers (survey_id, overall, response_speed, problem_solving, attitude, comment)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING answered_at
        """,
        survey_id,
        answer.overall,
        answer.response_speed,
        answer.problem_solving,
        answer.attitude,
        answer.comment or None,
    )
    assert row is not None
    return row
