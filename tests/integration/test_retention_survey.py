"""survey's retention (R7.3) against the real database: once a survey has been settled for the
retention period, its learner key (LMS id or e-mail address) and its answer's comment go and a
periodic survey's learner becomes a pseudonym, while scores, courses, statuses and times stay;
a ticket's learner key and the LMS's stale snapshot of a learner go too; once, however often
the job runs. A recent survey, one still scheduled, and a learner a survey waits for are left
as they are. The scheduled loop runs the job."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.survey import retention
from services.survey.settings import SurveySettings
from shared.db import create_pool
from shared.events import now
from shared.migrate import migrate
from shared.retention import keep, pseudonym
from tests.support import RunningStack, eventually

SURVEY = SurveySettings()  # forget after 730 days


@pytest.fixture(scope="module")
async def survey_pool(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(migrate, stack.dsn, "survey")
    pool = await create_pool(stack.dsn, schema="survey")
    yield pool
    await pool.close()


async def answered(pool: asyncpg.Pool, *, days_ago: int) -> uuid.UUID:
    """A resolved ticket's survey, sent and answered with a comment `days_ago`, with the
    ticket's learner key as ticket.created gave it."""
    survey_id, ticket_id = uuid.uuid4(), uuid.uuid4()
    email = f"wxm.{ticket_id.hex[:6]}@example.com"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO ticket_learners (ticket_id, learner_key, seen_at) "
            "VALUES ($1, $2, now() - make_interval(days => $3))",
            ticket_id,
            f"email:{email}",
            days_ago,
        )
        await conn.execute(
            """
            INSERT INTO surveys (survey_id, ticket_id, resolution_event_id, status, due_at,
                                 requested_at, created_at, token_sha256, learner_key)
            VALUES ($1, $2, $3, 'answered', now() - make_interval(days => $4),
                    now() - make_interval(days => $4), now() - make_interval(days => $4),
                    md5($6), $5)
            """,
            survey_id,
            ticket_id,
            uuid.uuid4(),
            days_ago,
            f"email:{email}",
            str(survey_id),
        )
        await conn.execute(
            """
            INSERT INTO answers (survey_id, overall, response_speed, problem_solving, attitude,
                                 comment, answered_at)
            VALUES ($1, 2, 3, 2, 4, $2, now() - make_interval(days => $3))
            """,
            survey_id,
            f"老师很好，但退款慢，有事打 13800138000 或写信 {email}",
            days_ago,
        )
    return survey_id


async def periodic(pool: asyncpg.Pool, *, days_ago: int, answer: bool = True) -> uuid.UUID:
    """The LMS's learner, last updated `days_ago`, and their periodic survey of then,
    answered (`answer`) or still scheduled."""
    survey_id = uuid.uuid4()
    learner_id = f"L-{survey_id.hex[:8]}"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO learners (learner_id, name, email, locale, courses, updated_at)
            VALUES ($1, '王小明', $2, 'zh', '["C-101"]', now() - make_interval(days => $3))
            """,
            learner_id,
            f"{learner_id.lower()}@example.com",
            days_ago,
        )
        await conn.execute(
            """
            INSERT INTO surveys (survey_id, kind, learner_id, learner_key, period, courses,
                                 status, due_at, requested_at, created_at, token_sha256)
            VALUES ($1, 'periodic', $2, 'id:' || $2, '2024Q1', '["C-101"]', $3,
                    now() - make_interval(days => $4),
                    CASE WHEN $5 THEN now() - make_interval(days => $4) END,
                    now() - make_interval(days => $4), CASE WHEN $5 THEN md5($6) END)
            """,
            survey_id,
            learner_id,
            "answered" if answer else "scheduled",
            days_ago,
            answer,
            str(survey_id),
        )
        if answer:
            await conn.execute(
                """
                INSERT INTO periodic_answers (survey_id, overall, response_speed, problem_solving,
                                              attitude, teacher_level, teaching_method,
                                              teaching_attitude, courses, comment, answered_at)
                VALUES ($1, 4, 4, 5, 5, 4, 3, 5,
                        '[{"course_id": "C-101", "usefulness": 4, "difficulty": 3,
                           "structure": 4}]',
                        '我是王小明，手机 13800138000', now() - make_interval(days => $2))
                """,
                survey_id,
                days_ago,
            )
    return survey_id


async def kept(pool: asyncpg.Pool, survey_id: uuid.UUID) -> dict[str, Any]:
    survey = await pool.fetchrow("SELECT * FROM surveys WHERE survey_id = $1", survey_id)
    assert survey is not None
    answer = await pool.fetchrow(
        "SELECT * FROM answers WHERE survey_id = $1 UNION ALL "
        "SELECT survey_id, overall, response_speed, problem_solving, attitude, comment, "
        "answered_at FROM periodic_answers WHERE survey_id = $1",
        survey_id,
    )
    periodic_scores = await pool.fetchrow(
        "SELECT teacher_level, teaching_method, teaching_attitude, courses "
        "FROM periodic_answers WHERE survey_id = $1",
        survey_id,
    )
    learner_key = await pool.fetchval(
        "SELECT learner_key FROM ticket_learners WHERE ticket_id = $1", survey["ticket_id"]
    )
    snapshot = await pool.fetchrow(
        "SELECT name, email FROM learners WHERE learner_id = $1", survey["learner_id"]
    )
    return {
        "survey": {k: v for k, v in dict(survey).items() if k != "pseudonymised_at"},
        "answer": answer and dict(answer),
        "periodic_scores": periodic_scores and dict(periodic_scores),
        "ticket_learner": learner_key,
        "snapshot": snapshot and dict(snapshot),
    }


async def run(pool: asyncpg.Pool) -> dict[str, int]:
    expired = now() - timedelta(days=SURVEY.retention_days)
    async with pool.acquire() as conn, conn.transaction():
        return dict(await retention.run_once(conn, expired, 10_000))


async def test_settled_surveys_lose_who_answered_and_keep_the_scores_once(
    survey_pool: asyncpg.Pool,
) -> None:
    old = await answered(survey_pool, days_ago=800)
    old_periodic = await periodic(survey_pool, days_ago=800)
    waiting = await periodic(survey_pool, days_ago=800, answer=False)
    recent = await answered(survey_pool, days_ago=3)
    recent_periodic = await periodic(survey_pool, days_ago=3)
    surveys = (old, old_periodic, waiting, recent, recent_periodic)
    before = {s: await kept(survey_pool, s) for s in surveys}

    await run(survey_pool)

    gone = await kept(survey_pool, old)
    assert gone == {
        **before[old],
        "survey": {**before[old]["survey"], "learner_key": None},
        "answer": {**before[old]["answer"], "comment": None},
        "ticket_learner": None,
    }
    gone_periodic = await kept(survey_pool, old_periodic)
    name = pseudonym(old_periodic)
    assert gone_periodic == {
        **before[old_periodic],
        "survey": {
            **before[old_periodic]["survey"],
            "learner_id": name,
            "learner_key": f"id:{name}",
        },
        "answer": {**before[old_periodic]["answer"], "comment": None},
        "snapshot": None,
    }
    assert not await survey_pool.fetchval(
        "SELECT count(*) FROM learners WHERE learner_id = $1",
        before[old_periodic]["survey"]["learner_id"],
    )
    for untouched in (waiting, recent, recent_periodic):
        assert await kept(survey_pool, untouched) == before[untouched]

    assert await run(survey_pool) == {"surveys": 0, "ticket_learners": 0, "learners": 0}
    assert await kept(survey_pool, old) == gone
    assert await kept(survey_pool, old_periodic) == gone_periodic


async def test_the_scheduled_loop_forgets_what_falls_due(survey_pool: asyncpg.Pool) -> None:
    often = SURVEY.model_copy(update={"retention_interval_seconds": 0.05})
    loop = asyncio.create_task(keep(survey_pool, often, retention.run_once, what="survey"))
    try:
        old = await answered(survey_pool, days_ago=731)

        async def forgotten() -> bool:
            return (await kept(survey_pool, old))["answer"]["comment"] is None

        await eventually(forgotten, timeout=10, interval=0.05)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert (await kept(survey_pool, old))["ticket_learner"] is None
