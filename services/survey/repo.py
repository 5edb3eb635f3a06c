"""SQL for survey's schema. Nothing here commits: the caller owns the transaction."""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.survey.domain import AnswerIn, PeriodicAnswerIn
from shared.events import LearnerSnapshot


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
    """Due surveys with their learner's key where known (a periodic one with the learner's
    name, e-mail and locale), locked for sending; replicas skip
    each other's rows."""
    return await conn.fetch(
        """
        SELECT s.survey_id, s.ticket_id, s.kind, s.period, s.learner_id,
               COALESCE(s.learner_key, t.learner_key) AS learner_key,
               l.name, l.email, l.locale
        FROM surveys s LEFT JOIN ticket_learners t USING (ticket_id)
             LEFT JOIN learners l ON l.learner_id = s.learner_id
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
        RETURNING s.survey_id, s.requested_at
        """,
        [survey_id for survey_id, _, _ in sent],
        [token_sha256 for _, token_sha256, _ in sent],
        [key for _, _, key in sent],
    )


SURVEY_COLUMNS = "survey_id, ticket_id, status, kind, learner_id, period, courses"


async def by_token(conn: asyncpg.Connection, token_sha256: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {SURVEY_COLUMNS} FROM surveys WHERE token_sha256 = $1", token_sha256
    )


async def lock_by_token(conn: asyncpg.Connection, token_sha256: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {SURVEY_COLUMNS} FROM surveys WHERE token_sha256 = $1 FOR UPDATE", token_sha256
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


async def upsert_learners(conn: asyncpg.Connection, snapshots: Sequence[LearnerSnapshot]) -> int:
    """Keep each learner's newest snapshot (an older `updated_at` changes nothing); returns how
    many rows changed."""
    newest: dict[str, LearnerSnapshot] = {}
    for snap in snapshots:
        held = newest.get(snap.learner_id)
        if held is None or snap.updated_at > held.updated_at:
            newest[snap.learner_id] = snap
    changed = await conn.fetch(
        """
        INSERT INTO learners (learner_id, name, email, locale, courses, updated_at)
        SELECT learner_id, name, email, locale, courses::jsonb, updated_at
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::timestamptz[]) AS r(learner_id, name, email, locale, courses, updated_at)
        ON CONFLICT (learner_id) DO UPDATE
            SET name = excluded.name, email = excluded.email, locale = excluded.locale,
                courses = excluded.courses, updated_at = excluded.updated_at
            WHERE learners.updated_at < excluded.updated_at
        RETURNING learner_id
        """,
        [s.learner_id for s in newest.values()],
        [s.name for s in newest.values()],
        [s.email for s in newest.values()],
        [s.locale for s in newest.values()],
        [
            json.dumps([{"course_id": c.course_id, "title": c.title} for c in s.courses])
            for s in newest.values()
        ],
        [s.updated_at for s in newest.values()],
    )
    return len(changed)


async def schedule_periodic(
    conn: asyncpg.Connection, period: str, active_since: datetime, quiet_since: datetime
) -> int:
    """One statement for the whole programme: a periodic survey, due now, for every active
    learner (enrolled in a course, or whose snapshot changed since `active_since`) who has none
    this period and was not sent a survey since `quiet_since`. Returns how many it added."""
    added = await conn.fetch(
        """
        INSERT INTO surveys (survey_id, kind, learner_id, learner_key, period, courses, due_at)
        SELECT gen_random_uuid(), 'periodic', l.learner_id, 'id:' || l.learner_id, $1,
               l.courses, now()
        FROM learners l
        WHERE (jsonb_array_length(l.courses) > 0 OR l.updated_at >= $2)
          AND NOT EXISTS (
              SELECT 1 FROM surveys s
              WHERE s.learner_key = 'id:' || l.learner_id AND s.requested_at > $3)
        ON CONFLICT (learner_id, period) WHERE kind = 'periodic' DO NOTHING
        RETURNING survey_id
        """,
        period,
        active_since,
        quiet_since,
    )
    return len(added)


async def learner(conn: asyncpg.Connection, learner_id: str) -> asyncpg.Record | None:
    """The learner as the LMS's latest snapshot describes them."""
    return await conn.fetchrow(
        "SELECT learner_id, name, email, locale FROM learners WHERE learner_id = $1", learner_id
    )


async def record_periodic_answer(
    conn: asyncpg.Connection, survey_id: UUID, answer: PeriodicAnswerIn
) -> asyncpg.Record:
    await conn.execute("UPDATE surveys SET status = 'answered' WHERE survey_id = $1", survey_id)
    row = await conn.fetchrow(
        """
        INSERT INTO periodic_answers (survey_id, overall, response_speed, problem_solving,
            attitude, teacher_level, teaching_method, teaching_attitude, courses, comment)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10) RETURNING answered_at
        """,
        survey_id,
        answer.overall,
        answer.response_speed,
        answer.problem_solving,
        answer.attitude,
        answer.teacher_level,
        answer.teaching_method,
        answer.teaching_attitude,
        [c.model_dump() for c in answer.courses],
        answer.comment or None,
    )
    assert row is not None
    return row
