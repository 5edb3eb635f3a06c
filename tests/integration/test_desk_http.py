"""desk in-process against the real stack: links stored as digests, low scores reach a
supervisor whatever the ticket's state, and routing's moves are followed."""

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from services.desk.app import create_app
from services.desk.settings import DeskSettings
from shared import topics
from shared.events import (
    Category,
    Channel,
    Envelope,
    Learner,
    Priority,
    SurveyLowScore,
    TicketAssigned,
    TicketRouted,
    TicketSubmitted,
    new_event,
    now,
)
from shared.settings import CommonSettings
from tests.integration.inprocess import (
    ANA,
    SUE,
    environment,
    find_event,
    publish,
    served,
    service_env,
)
from tests.support import RunningStack, eventually


@pytest.fixture(scope="module")
async def desk(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    with environment(service_env(stack)):
        async with served(lambda: create_app(DeskSettings()), "desk") as client:
            yield client


def submitted() -> Envelope[TicketSubmitted]:
    """A keyless web submission; each with its own text, or desk would take the same
    learner's same words again for the first ticket."""
    ticket_id = uuid.uuid4()
    return new_event(
        TicketSubmitted(
            ticket_id=ticket_id,
            channel=Channel.WEB,
            learner=Learner(name="Li Lei", email="lilei@example.com"),
            subject="Cannot log in",
            description=f"The login page spins forever ({ticket_id.hex[:8]})",
            language="en",
            submitted_at=now(),
        ),
        producer="test",
    )


def assigned(ticket_id: uuid.UUID, agent_id: str) -> Envelope[TicketAssigned]:
    return new_event(
        TicketAssigned(
            ticket_id=ticket_id,
            agent_id=agent_id,
            team="tech_support",
            priority=Priority.MEDIUM,
            assigned_at=now(),
        ),
        producer="test",
    )


def routed(ticket_id: uuid.UUID, agent_id: str | None) -> Envelope[TicketRouted]:
    at = now()
    return new_event(
        TicketRouted(
            ticket_id=ticket_id,
            channel=Channel.WEB,
            category=Category.TECHNICAL,
            priority=Priority.MEDIUM,
            team="tech_support",
            language="en",
            first_response_due_at=at + timedelta(hours=4),
            resolution_due_at=at + timedelta(hours=48),
            agent_id=agent_id,
            routed_at=at,
        ),
        producer="test",
    )


def low_score(ticket_id: uuid.UUID, overall: int = 2) -> Envelope[SurveyLowScore]:
    return new_event(
        SurveyLowScore(
            survey_id=uuid.uuid4(), ticket_id=ticket_id, overall=overall, answered_at=now()
        ),
        producer="test",
    )


async def ticket(desk: httpx.AsyncClient, ticket_id: uuid.UUID) -> dict[str, Any] | None:
    r = await desk.get(f"/v1/tickets/{ticket_id}", headers=SUE)
    return r.json() if r.status_code == 200 else None


async def in_state(desk: httpx.AsyncClient, ticket_id: uuid.UUID, **wanted: Any) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        t = await ticket(desk, ticket_id)
        return t if t and all(t[k] == v for k, v in wanted.items()) else None

    found: dict[str, Any] = await eventually(check, timeout=30)
    return found


async def assigned_ticket(
    desk: httpx.AsyncClient, settings: CommonSettings, agent_id: str = "ana"
) -> uuid.UUID:
    created = submitted()
    ticket_id = created.data.ticket_id
    await publish(settings, [created])
    await in_state(desk, ticket_id, status="new")
    await publish(settings, [assigned(ticket_id, agent_id)])
    await in_state(desk, ticket_id, status="assigned", assignee_id=agent_id)
    return ticket_id


async def resolve_and_get_token(
    desk: httpx.AsyncClient, stack: RunningStack, ticket_id: uuid.UUID
) -> str:
    r = await desk.post(
        f"/v1/tickets/{ticket_id}/resolve", headers=ANA, json={"resolution": "Cache cleared"}
    )
    assert r.status_code == 200
    event = await find_event(
        stack.bootstrap,
        topics.TICKETS,
        lambda e: e.type == "ticket.resolved" and e.data.ticket_id == ticket_id,
    )
    return str(event.data.confirm_url.rsplit("/", 1)[1])


async def row(stack: RunningStack, ticket_id: uuid.UUID) -> asyncpg.Record:
    conn = await asyncpg.connect(stack.dsn)
    try:
        found = await conn.fetchrow("SELECT * FROM desk.tickets WHERE ticket_id = $1", ticket_id)
    finally:
        await conn.close()
    assert found is not None
    return found


async def test_a_routed_ticket_reaches_its_agent_with_triage_and_history(
    desk: httpx.AsyncClient, settings: CommonSettings
) -> None:
    created = submitted()
    ticket_id = created.data.ticket_id
    await publish(settings, [created])
    await in_state(desk, ticket_id, status="new")

    await publish(settings, [routed(ticket_id, "ana")])

    t = await in_state(desk, ticket_id, status="assigned", assignee_id="ana")
    assert (t["category"], t["priority"], t["team"]) == ("technical", "medium", "tech_support")
    assert [h["kind"] for h in t["history"]] == ["created", "triaged", "assigned"]
    anas = await desk.get("/v1/agent/tickets", headers=ANA)
    assert str(ticket_id) in [x["ticket_id"] for x in anas.json()]


async def test_a_confirmation_link_works_though_only_its_digest_is_stored(
    desk: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    ticket_id = await assigned_ticket(desk, settings)
    token = await resolve_and_get_token(desk, stack, ticket_id)

    stored = await row(stack, ticket_id)
    assert stored["confirm_token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(v) for v in dict(stored).values()}

    assert (await desk.get(f"/confirm/{token}")).status_code == 200
    r = await desk.post(f"/v1/confirmations/{token}", json={"answer": "solved"})
    assert (r.status_code, r.json()) == (200, {"status": "closed"})


async def test_the_confirmation_page_closes_the_ticket_and_the_link_is_then_spent(
    desk: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    ticket_id = await assigned_ticket(desk, settings)
    token = await resolve_and_get_token(desk, stack, ticket_id)

    done = await desk.post(f"/confirm/{token}", data={"answer": "solved"})
    again = await desk.get(f"/confirm/{token}")

    assert done.status_code == 200 and "Thank you" in done.text
    assert again.status_code == 404 and "This link is not valid" in again.text


async def test_a_low_score_after_not_solved_escalates_the_open_ticket_to_a_supervisor(
    desk: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    ticket_id = await assigned_ticket(desk, settings)
    token = await resolve_and_get_token(desk, stack, ticket_id)
    r = await desk.post(f"/v1/confirmations/{token}", json={"answer": "not_solved"})
    assert r.json() == {"status": "reopened"}
    await publish(settings, [assigned(ticket_id, "ana")])  # routing: back to the same agent
    await in_state(desk, ticket_id, status="assigned", assignee_id="ana")

    low = low_score(ticket_id)
    await publish(settings, [low])

    t = await in_state(desk, ticket_id, needs_supervisor=True)
    assert (t["status"], t["assignee_id"]) == ("assigned", "ana"), "routing moves it, not desk"
    [escalated] = [h for h in t["history"] if h["kind"] == "escalated"]
    assert escalated["detail"]["reason"] == "low_score" and escalated["actor"] == "survey"
    event = await find_event(
        stack.bootstrap,
        topics.TICKETS,
        lambda e: e.type == "ticket.escalated" and e.data.ticket_id == ticket_id,
    )
    assert (event.data.reason, event.data.assignee_id) == ("low_score", "ana")
    assert event.causation_id == low.event_id


async def test_desk_follows_routing_when_it_moves_an_escalated_ticket_to_a_supervisor(
    desk: httpx.AsyncClient, settings: CommonSettings
) -> None:
    ticket_id = await assigned_ticket(desk, settings)
    await publish(settings, [low_score(ticket_id)])
    await in_state(desk, ticket_id, needs_supervisor=True)

    await publish(settings, [assigned(ticket_id, "sue")])

    t = await in_state(desk, ticket_id, assignee_id="sue")
    assert t["status"] == "assigned"
    sues = await desk.get("/v1/agent/tickets", headers=SUE)
    assert str(ticket_id) in [x["ticket_id"] for x in sues.json()]


async def test_a_second_low_score_on_an_escalated_ticket_is_noted_not_escalated_again(
    desk: httpx.AsyncClient, settings: CommonSettings
) -> None:
    ticket_id = await assigned_ticket(desk, settings)
    await publish(settings, [low_score(ticket_id)])
    await in_state(desk, ticket_id, needs_supervisor=True)

    await publish(settings, [low_score(ticket_id, overall=1)])

    async def noted() -> dict[str, Any] | None:
        t = await ticket(desk, ticket_id)
        return t if t and "low_score" in [h["kind"] for h in t["history"]] else None

    t = await eventually(noted, timeout=30)
    assert [h["kind"] for h in t["history"]].count("escalated") == 1


async def test_a_low_score_on_a_closed_ticket_still_reopens_it_for_a_supervisor(
    desk: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    ticket_id = await assigned_ticket(desk, settings)
    token = await resolve_and_get_token(desk, stack, ticket_id)
    await desk.post(f"/v1/confirmations/{token}", json={"answer": "solved"})

    await publish(settings, [low_score(ticket_id)])

    t = await in_state(desk, ticket_id, status="reopened")
    assert t["needs_supervisor"] is True and t["assignee_id"] is None


async def test_everyone_takes_only_true_or_false(desk: httpx.AsyncClient) -> None:
    for value, status in (("true", 200), ("false", 200), ("yes", 422), ("1", 422)):
        r = await desk.get(f"/v1/agent/tickets?everyone={value}", headers=SUE)
        assert r.status_code == status, value


async def test_a_reply_the_database_could_not_store_is_refused_naming_the_body(
    desk: httpx.AsyncClient, settings: CommonSettings
) -> None:
    ticket_id = await assigned_ticket(desk, settings)
    for raw in (b'{"body": "a\\u0000b"}', b'{"body": "a\\ud800b"}'):
        r = await desk.post(
            f"/v1/tickets/{ticket_id}/replies",
            headers={**ANA, "content-type": "application/json"},
            content=raw,
        )
        assert r.status_code == 422
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "body"]]
