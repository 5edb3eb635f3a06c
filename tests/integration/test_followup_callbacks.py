"""Call-backs on closed tickets in-process against the real stack (R9.3, 004 §三.3): a closed
ticket in the sample and a complaint closed without a case enter the agents' call-back list,
one outside the sample does not; the outcome is recorded once, published on Kafka, and metrics
counts it beside the surveys' scores."""

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.desk.app import create_app as create_desk
from services.desk.callbacks import sampled
from services.desk.settings import DeskSettings
from services.metrics.app import create_app as create_metrics
from services.metrics.settings import MetricsSettings
from shared import topics
from shared.events import (
    CallbackRecorded,
    Category,
    Channel,
    Learner,
    Priority,
    TicketSubmitted,
    now,
)
from shared.settings import CommonSettings
from tests.integration.inprocess import (
    ANA,
    environment,
    find_event,
    routed_to_ana,
    served,
    service_env,
)
from tests.support import RunningStack, eventually, fresh_groups

BEN = {"Authorization": "Bearer test-ben-token"}
SAMPLE = 0.5
RETRY_SECONDS = 10


@pytest.fixture(scope="module")
async def desk(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        **service_env(stack),
        "CARELOOP_DESK_CALLBACK_SAMPLE": str(SAMPLE),
        "CARELOOP_DESK_CALLBACK_ATTEMPTS": "2",
        "CARELOOP_DESK_CALLBACK_RETRY_HOURS": str(RETRY_SECONDS / 3600),
    }
    with environment(env):
        async with served(lambda: create_desk(DeskSettings()), "desk") as client:
            yield client


@pytest.fixture(scope="module")
async def metrics(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    env = {**service_env(stack), **fresh_groups(), "CARELOOP_REPORTS_SCHEDULE": ""}
    with environment(env):
        async with served(lambda: create_metrics(MetricsSettings()), "metrics") as client:
            yield client


def ticket_id_where(in_sample: bool) -> uuid.UUID:
    """A new ticket id that falls in (or outside) the SAMPLE by its hash."""
    while sampled(ticket_id := uuid.uuid4(), SAMPLE) is not in_sample:
        pass
    return ticket_id


async def closed_ticket(
    settings: CommonSettings,
    desk: httpx.AsyncClient,
    stack: RunningStack,
    *,
    ticket_id: uuid.UUID,
    category: Category,
    email: str,
) -> None:
    """A learner's ticket routed to Ana, resolved, and closed by the learner's 'solved'."""
    at = now()
    submitted = TicketSubmitted(
        ticket_id=ticket_id,
        channel=Channel.WEB,
        learner=Learner(name="刘洋", email=email),
        subject="直播课画面卡顿",
        description=f"今晚的直播课画面一直卡顿，声音也断断续续 ({ticket_id.hex[:8]})",
        course_id="PY-101",
        language="zh",
        submitted_at=at,
    )
    await routed_to_ana(settings, desk, submitted, category=category, priority=Priority.MEDIUM)
    resolution = {"resolution": "已为您切换到备用线路，回放也已重新生成。"}
    r = await desk.post(f"/v1/tickets/{ticket_id}/resolve", headers=ANA, json=resolution)
    assert r.status_code == 200, r.text
    resolved = await find_event(
        stack.bootstrap,
        topics.TICKETS,
        lambda e: e.type == "ticket.resolved" and e.data.ticket_id == ticket_id,
    )
    token = resolved.data.confirm_url.rsplit("/", 1)[1]
    r = await desk.post(f"/v1/confirmations/{token}", json={"answer": "solved"})
    assert (r.status_code, r.json()) == (200, {"status": "closed"})


def sample_values(text: str, name: str, match: Callable[[dict[str, str]], bool]) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and match(s.labels)
    )


async def test_sampled_and_complaint_tickets_get_one_call_back_whose_outcome_is_counted(
    desk: httpx.AsyncClient,
    metrics: httpx.AsyncClient,
    stack: RunningStack,
    settings: CommonSettings,
) -> None:
    email = f"liu.yang+{uuid.uuid4().hex[:6]}@example.com"
    in_sample = ticket_id_where(in_sample=True)
    outside = ticket_id_where(in_sample=False)
    complaint = ticket_id_where(in_sample=False)
    for ticket_id, category in (
        (in_sample, Category.TECHNICAL),
        (outside, Category.TECHNICAL),
        (complaint, Category.COMPLAINT),
    ):
        await closed_ticket(
            settings, desk, stack, ticket_id=ticket_id, category=category, email=email
        )

    rows = (await desk.get("/v1/callbacks", headers=ANA)).json()
    reasons = {r["ticket_id"]: r["reason"] for r in rows}
    assert reasons.get(str(in_sample)) == "sample"
    assert reasons.get(str(complaint)) == "complaint"
    assert str(outside) not in reasons

    unreached = {"reached": False, "score": 2, "outcome": "无人接听"}
    r = await desk.post(f"/v1/tickets/{complaint}/callback", json=unreached, headers=ANA)
    assert r.status_code == 422 and "reached" in r.text
    unreached.pop("score")
    assert (
        await desk.post(f"/v1/tickets/{complaint}/callback", json=unreached, headers=ANA)
    ).status_code == 200
    assert (
        await desk.post(f"/v1/tickets/{complaint}/callback", json=unreached, headers=ANA)
    ).status_code == 409
    reached = {"reached": True, "score": 4, "outcome": "学员说问题已解决，希望直播更稳定"}
    assert (
        await desk.post(f"/v1/tickets/{outside}/callback", json=reached, headers=ANA)
    ).status_code == 409
    assert (
        await desk.post(f"/v1/tickets/{in_sample}/callback", json=reached, headers=BEN)
    ).status_code == 404
    assert (
        await desk.post(f"/v1/tickets/{in_sample}/callback", json=reached, headers=ANA)
    ).status_code == 200

    left = {r["ticket_id"] for r in (await desk.get("/v1/callbacks", headers=ANA)).json()}
    assert not {str(in_sample), str(complaint)} & left
    made = await find_event(
        stack.bootstrap,
        topics.TICKETS,
        lambda e: e.type == CallbackRecorded.TYPE and e.data.ticket_id == in_sample,
    )
    assert (made.data.reason, made.data.reached, made.data.score, made.data.by) == (
        "sample",
        True,
        4,
        "ana",
    )
    history = (await desk.get(f"/v1/tickets/{in_sample}", headers=ANA)).json()["history"]
    assert "callback_made" in [h["kind"] for h in history]

    async def counted() -> bool:
        text = (await metrics.get("/metrics")).text
        calls = "careloop_callbacks_total"
        return (
            sample_values(text, calls, lambda s: s == {"reason": "sample", "reached": "true"}) >= 1
            and sample_values(
                text, calls, lambda s: s == {"reason": "complaint", "reached": "false"}
            )
            >= 1
            and sample_values(
                text, "careloop_survey_score_sum", lambda s: s["dimension"] == "callback"
            )
            >= 4
        )

    assert await eventually(counted)


async def test_a_learner_not_reached_is_called_again_until_the_last_try(
    desk: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    complaint = ticket_id_where(in_sample=False)
    email = f"liu.yang+{uuid.uuid4().hex[:6]}@example.com"
    await closed_ticket(
        settings, desk, stack, ticket_id=complaint, category=Category.COMPLAINT, email=email
    )
    unreached = {"reached": False, "outcome": "无人接听"}

    async def due() -> bool:
        rows = (await desk.get("/v1/callbacks", headers=ANA)).json()
        return str(complaint) in {r["ticket_id"] for r in rows}

    first = await desk.post(f"/v1/tickets/{complaint}/callback", json=unreached, headers=ANA)
    assert first.status_code == 200, first.text
    assert (first.json()["attempts"], first.json()["done"]) == (1, False)
    assert first.json()["due_at"] is not None
    assert not await due()  # not before the retry time
    again = await desk.post(f"/v1/tickets/{complaint}/callback", json=unreached, headers=ANA)
    assert again.status_code == 409

    assert await eventually(due, timeout=RETRY_SECONDS + 20)
    rows = (await desk.get("/v1/callbacks", headers=ANA)).json()
    assert next(r for r in rows if r["ticket_id"] == str(complaint))["attempts"] == 1
    last = await desk.post(f"/v1/tickets/{complaint}/callback", json=unreached, headers=ANA)
    assert (last.json()["attempts"], last.json()["done"], last.json()["due_at"]) == (2, True, None)

    history = (await desk.get(f"/v1/tickets/{complaint}", headers=ANA)).json()["history"]
    calls = [h["detail"] for h in history if h["kind"] == "callback_made"]
    assert [(c["attempt"], c["reached"], c["again_at"] is None) for c in calls] == [
        (1, False, False),
        (2, False, True),
    ]
    assert not await due()  # nothing comes back after the last try
