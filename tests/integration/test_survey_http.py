"""survey in-process against the real stack: a survey's token is made when it is sent and
only its digest is kept; the page and the API take an answer once."""

import hashlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import msgspec
import pytest

from services.survey.app import create_app
from services.survey.settings import SurveySettings
from shared import topics
from shared.events import Envelope, TicketResolved, new_event, now
from shared.settings import CommonSettings
from tests.integration.inprocess import environment, find_event, publish, served, service_env
from tests.support import RunningStack

SCORES = {"overall": 4, "response_speed": 5, "problem_solving": 4, "attitude": 5}


@pytest.fixture(scope="module")
async def survey(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    with environment(service_env(stack)):
        async with served(lambda: create_app(SurveySettings()), "survey") as client:
            yield client


def resolved() -> Envelope[TicketResolved]:
    at = now()
    return new_event(
        TicketResolved(
            ticket_id=uuid.uuid4(),
            number="CL-900001",
            agent_id="ana",
            resolution="Cache cleared",
            confirm_url="http://127.0.0.1/confirm/x",
            created_at=at,
            resolved_at=at,
        ),
        producer="desk",
    )


async def sent_token(stack: RunningStack, settings: CommonSettings) -> tuple[uuid.UUID, str]:
    """Resolve a ticket; return its id and the token survey put in the link it sent."""
    event = resolved()
    await publish(settings, [event])
    requested = await find_event(
        stack.bootstrap,
        topics.SURVEY,
        lambda e: e.type == "survey.requested" and e.data.ticket_id == event.data.ticket_id,
    )
    return event.data.ticket_id, str(requested.data.survey_url.rsplit("/", 1)[1])


async def test_a_survey_link_works_though_only_its_digest_is_stored(
    survey: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    ticket_id, token = await sent_token(stack, settings)

    conn = await asyncpg.connect(stack.dsn)
    try:
        stored = await conn.fetchrow("SELECT * FROM survey.surveys WHERE ticket_id = $1", ticket_id)
    finally:
        await conn.close()
    assert stored is not None
    assert stored["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(v) for v in dict(stored).values()}
    assert (await survey.get(f"/s/{token}")).status_code == 200
    r = await survey.post(f"/v1/surveys/{token}", json=SCORES)
    assert (r.status_code, r.json()) == (200, {"low_score": False})


async def test_the_form_takes_scores_as_strings_once_and_then_says_it_was_answered(
    survey: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    _, token = await sent_token(stack, settings)
    form = {k: str(v) for k, v in SCORES.items()} | {"overall": "2", "comment": "还是登不上"}

    first = await survey.post(f"/s/{token}", data=form)
    second = await survey.post(f"/s/{token}", data=form)
    page = await survey.get(f"/s/{token}")

    assert first.status_code == 200 and "supervisor" in first.text
    assert second.status_code == 409 and page.status_code == 409
    assert "Already answered" in page.text


async def test_a_low_score_is_published_for_desk(
    survey: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    ticket_id, token = await sent_token(stack, settings)

    r = await survey.post(f"/v1/surveys/{token}", json={**SCORES, "overall": 1})

    assert r.json() == {"low_score": True}
    low = await find_event(
        stack.bootstrap,
        topics.SURVEY,
        lambda e: e.type == "survey.low_score" and e.data.ticket_id == ticket_id,
    )
    assert low.data.overall == 1


async def test_an_unknown_well_formed_token_is_404(survey: httpx.AsyncClient) -> None:
    token = "Z" * 32
    assert (await survey.get(f"/s/{token}")).status_code == 404
    assert (await survey.post(f"/v1/surveys/{token}", json=SCORES)).status_code == 404


async def test_a_ticket_its_incident_resolved_is_not_surveyed(
    survey: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    by_incident = resolved()
    by_incident = msgspec.structs.replace(
        by_incident, data=msgspec.structs.replace(by_incident.data, resolution_code="incident")
    )
    # reopened and resolved again by an agent: that resolution is surveyed (same ticket, so
    # it is handled after the first)
    by_agent = new_event(
        msgspec.structs.replace(by_incident.data, resolution_code=None, resolved_at=now()),
        producer="desk",
    )

    await publish(settings, [by_incident, by_agent])
    requested = await find_event(
        stack.bootstrap,
        topics.SURVEY,
        lambda e: e.type == "survey.requested" and e.data.ticket_id == by_agent.data.ticket_id,
    )

    conn = await asyncpg.connect(stack.dsn)
    try:
        scheduled = await conn.fetch(
            "SELECT survey_id, resolution_event_id FROM survey.surveys WHERE ticket_id = $1",
            by_agent.data.ticket_id,
        )
    finally:
        await conn.close()
    assert [(r["survey_id"], r["resolution_event_id"]) for r in scheduled] == [
        (requested.data.survey_id, by_agent.event_id)
    ]
