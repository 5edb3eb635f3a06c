"""The follow-up programme in survey, in-process against the real stack (R9.3): a learner is
never sent two surveys within the quiet period."""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from services.survey.app import create_app
from services.survey.settings import SurveySettings
from shared import topics
from shared.events import (
    Channel,
    Envelope,
    Learner,
    TicketCreated,
    TicketResolved,
    new_event,
    now,
)
from shared.settings import CommonSettings
from tests.integration.inprocess import environment, find_event, publish, served, service_env
from tests.support import RunningStack, eventually


@pytest.fixture(scope="module")
async def survey(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    env = {**service_env(stack), "CARELOOP_SURVEY_QUIET_DAYS": "30"}
    with environment(env):
        async with served(lambda: create_app(SurveySettings()), "survey") as client:
            yield client


def created(email: str) -> Envelope[TicketCreated]:
    ticket_id = uuid.uuid4()
    return new_event(
        TicketCreated(
            ticket_id=ticket_id,
            number=f"CL-{ticket_id.int % 10**8:08d}",
            channel=Channel.EMAIL,
            learner=Learner(name="陈静", email=email),
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
