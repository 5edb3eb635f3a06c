"""The follow-up programme in survey, in-process against the real stack (R9.3): a learner is
never sent two surveys within the quiet period; active learners get a periodic survey of the
service, their courses and the teaching, once a period."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from services.survey.app import create_app
from services.survey.domain import period_of
from services.survey.settings import SurveySettings
from shared import topics
from shared.events import (
    LOW_PERIODIC_SCORE,
    Channel,
    Envelope,
    Learner,
    TicketCreated,
    TicketResolved,
    new_event,
    now,
)
from shared.kafka import ensure_topics, make_broker
from shared.settings import CommonSettings
from tests.integration.inprocess import environment, find_event, publish, served, service_env
from tests.support import RunningStack, eventually


@pytest.fixture(scope="module")
async def survey(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        **service_env(stack),
        "CARELOOP_SURVEY_QUIET_DAYS": "30",
        "CARELOOP_SURVEY_PERIODIC_MONTHS": "3",
        "CARELOOP_SURVEY_PROGRAMME_SECONDS": "0.3",
    }
    with environment(env):
        async with served(lambda: create_app(SurveySettings()), "survey") as client:
            yield client


def created(email: str, learner_id: str | None = None) -> Envelope[TicketCreated]:
    ticket_id = uuid.uuid4()
    return new_event(
        TicketCreated(
            ticket_id=ticket_id,
            number=f"CL-{ticket_id.int % 10**8:08d}",
            channel=Channel.EMAIL,
            learner=Learner(name="陈静", email=email, learner_id=learner_id),
            subject="课程回放打不开",
            description="昨晚的直播回放一直加载失败，换了浏览器也不行。",
            language="zh",
            created_at=now(),
        ),
        producer="desk",
    )


def resolved(ticket: Envelope[TicketCreated]) -> Envelope[TicketResolved]:
    at = now()
    return new_event(
        TicketResolved(
            ticket_id=ticket.data.ticket_id,
            number=ticket.data.number,
            agent_id="ana",
            resolution="回放已重新生成，请刷新页面。",
            confirm_url="http://127.0.0.1/confirm/x",
            created_at=ticket.data.created_at,
            resolved_at=at,
        ),
        producer="desk",
    )


async def status(stack: RunningStack, ticket_id: uuid.UUID) -> str | None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        value: str | None = await conn.fetchval(
            "SELECT status FROM survey.surveys WHERE ticket_id = $1", ticket_id
        )
        return value
    finally:
        await conn.close()


async def test_a_learner_resolved_twice_within_the_quiet_period_is_surveyed_once(
    survey: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    email = f"chen.jing.{uuid.uuid4().hex[:8]}@example.com"
    first, second, other = created(email), created(email.upper()), created(f"x.{email}")
    await publish(settings, [first, second, other])
    await publish(settings, [resolved(first)])
    await find_event(
        stack.bootstrap,
        topics.SURVEY,
        lambda e: e.type == "survey.requested" and e.data.ticket_id == first.data.ticket_id,
    )

    await publish(settings, [resolved(second), resolved(other)])
    await find_event(
        stack.bootstrap,
        topics.SURVEY,
        lambda e: e.type == "survey.requested" and e.data.ticket_id == other.data.ticket_id,
    )

    async def held_back() -> bool:
        return await status(stack, second.data.ticket_id) == "quiet"

    await eventually(held_back)
    metrics = (await survey.get("/metrics")).text.splitlines()
    (counted,) = [line for line in metrics if line.startswith("careloop_survey_quiet_total ")]
    assert float(counted.split()[1]) >= 1


async def publish_snapshots(stack: RunningStack, snapshots: list[dict[str, Any]]) -> None:
    """What the LMS publishes on careloop.learners.v1: bare JSON, key = learner id."""
    settings = CommonSettings(kafka_bootstrap=stack.bootstrap)
    await ensure_topics(settings)
    broker = make_broker(settings, client_id="test-lms")
    await broker.start()
    try:
        for snap in snapshots:
            await broker.publish(
                json.dumps(snap).encode(), topic=topics.LEARNERS, key=snap["learner_id"].encode()
            )
    finally:
        await broker.stop()


def snapshot(
    learner_id: str, courses: list[dict[str, str]], updated_at: datetime
) -> dict[str, Any]:
    return {
        "learner_id": learner_id,
        "name": "林晓",
        "email": f"{learner_id.lower()}@example.com",
        "locale": "zh",
        "courses": courses,
        "updated_at": updated_at.isoformat(),
    }


async def periodic_surveys(stack: RunningStack, learner_ids: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(stack.dsn)
    try:
        rows = await conn.fetch(
            "SELECT learner_id, count(*) AS n FROM survey.surveys "
            "WHERE kind = 'periodic' AND learner_id = ANY($1) GROUP BY learner_id",
            learner_ids,
        )
    finally:
        await conn.close()
    return {r["learner_id"]: r["n"] for r in rows}


async def test_active_learners_get_one_periodic_survey_of_service_courses_and_teaching(
    survey: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    run = uuid.uuid4().hex[:8]
    enrolled, lapsed, recent, late = (
        f"L-{who}-{run}" for who in ("en", "lapsed", "recent", "late")
    )
    # `recent` was surveyed about a ticket a moment ago: the programme leaves them be.
    ticket = created(f"{recent.lower()}@example.com", learner_id=recent)
    await publish(settings, [ticket])
    await publish(settings, [resolved(ticket)])
    await find_event(
        stack.bootstrap,
        topics.SURVEY,
        lambda e: e.type == "survey.requested" and e.data.ticket_id == ticket.data.ticket_id,
    )
    courses = [
        {"course_id": f"IELTS-{run}", "title": "雅思 <强化> & 冲刺"},
        {"course_id": f"PY-{run}", "title": "Python 入门"},
    ]
    long_ago = now() - timedelta(days=400)
    await publish_snapshots(
        stack,
        [
            snapshot(enrolled, courses, long_ago),  # enrolled: active however old the snapshot
            snapshot(lapsed, [], long_ago),  # no course, nothing new for a year: not active
            snapshot(recent, courses[:1], now()),
        ],
    )
    requested = await find_event(
        stack.bootstrap,
        topics.SURVEY,
        lambda e: e.type == "survey.periodic_requested" and e.data.learner.learner_id == enrolled,
    )
    assert requested.key == enrolled
    assert requested.data.learner.email == f"{enrolled.lower()}@example.com"
    assert requested.data.period == period_of(now(), 3)

    # A learner active since: surveyed on a later round, which also looked at the others.
    await publish_snapshots(stack, [snapshot(late, [], now())])

    async def late_surveyed() -> dict[str, int] | None:
        found = await periodic_surveys(stack, [enrolled, lapsed, recent, late])
        return found if late in found else None

    assert await eventually(late_surveyed) == {enrolled: 1, late: 1}

    token = requested.data.survey_url.rsplit("/", 1)[1]
    page = await survey.get(f"/s/{token}")
    assert page.status_code == 200
    assert "雅思 &lt;强化&gt; &amp; 冲刺" in page.text and "<强化>" not in page.text
    assert 'name="course_1_structure"' in page.text and 'name="teaching_method"' in page.text

    scores = {"overall": 4, "response_speed": 4, "problem_solving": 5, "attitude": 5}
    teaching = {"teacher_level": 5, "teaching_method": 3, "teaching_attitude": 4}
    one_course = [{"course_id": f"IELTS-{run}", "usefulness": 5, "difficulty": 2, "structure": 4}]
    wrong = await survey.post(
        f"/v1/periodic-surveys/{token}", json={**scores, **teaching, "courses": one_course}
    )
    assert wrong.status_code == 422 and f"PY-{run}" in wrong.json()["detail"]
    ticket_shaped = await survey.post(f"/v1/surveys/{token}", json=scores)
    assert ticket_shaped.status_code == 422 and "periodic" in ticket_shaped.json()["detail"]

    form = {k: str(v) for k, v in {**scores, **teaching}.items()}
    for n, _ in enumerate(courses):
        form |= {f"course_{n}_usefulness": "4", f"course_{n}_difficulty": "3"}
    missing = await survey.post(f"/s/{token}", data=form)
    assert missing.status_code == 422 and "courses 0 structure" in missing.text
    form |= {"course_0_structure": "5", "course_1_structure": "2", "comment": "口语练习再多一点"}
    thanks = await survey.post(f"/s/{token}", data=form)
    assert thanks.status_code == 200 and "谢谢" in thanks.text
    assert (await survey.post(f"/s/{token}", data=form)).status_code == 409

    answered = await find_event(
        stack.bootstrap,
        topics.SURVEY,
        lambda e: e.type == "survey.periodic_answered" and e.data.learner_id == enrolled,
    )
    assert [(c.course_id, c.structure) for c in answered.data.courses] == [
        (f"IELTS-{run}", 5),
        (f"PY-{run}", 2),
    ]
    assert (answered.data.teaching_method, answered.data.comment) == (3, "口语练习再多一点")


async def test_a_low_periodic_answer_opens_a_follow_up_ticket_for_a_supervisor(
    survey: httpx.AsyncClient, stack: RunningStack
) -> None:
    learner = f"L-low-{uuid.uuid4().hex[:8]}"
    course = {"course_id": f"PY-{learner}", "title": "Python 入门"}
    await publish_snapshots(stack, [snapshot(learner, [course], now())])
    requested = await find_event(
        stack.bootstrap,
        topics.SURVEY,
        lambda e: e.type == "survey.periodic_requested" and e.data.learner.learner_id == learner,
    )
    token = requested.data.survey_url.rsplit("/", 1)[1]
    answer = {
        "overall": 1,
        "response_speed": 2,
        "problem_solving": 1,
        "attitude": 2,
        "teacher_level": 2,
        "teaching_method": 1,
        "teaching_attitude": 3,
        "courses": [
            {"course_id": course["course_id"], "usefulness": 2, "difficulty": 4, "structure": 1}
        ],
        "comment": "老师总是迟到，问题反映了也没人管",
    }

    r = await survey.post(f"/v1/periodic-surveys/{token}", json=answer)

    assert (r.status_code, r.json()) == (200, {"low_score": True})
    opened = await find_event(
        stack.bootstrap,
        topics.INTAKE,
        lambda e: e.type == "ticket.submitted" and e.data.learner.learner_id == learner,
    )
    assert opened.data.source == LOW_PERIODIC_SCORE
    assert opened.data.learner.email == f"{learner.lower()}@example.com"
    assert opened.data.subject == "定期满意度调查低分（总体 1/5）"
    assert "学员留言：老师总是迟到，问题反映了也没人管" in opened.data.description
