"""Partner and hotline webhooks on the real broker and Redis: signed calls become tickets;
forged, stale, replayed or unknown-source calls get 401 and publish nothing."""

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio
from fastapi.testclient import TestClient

from shared.events import Channel
from shared.signing import Refused, ReplayGuard, sign
from tests.integration.test_learner_api import SECRETS, channels_app, published
from tests.support import RunningStack


@pytest.fixture(scope="module")
def client(stack: RunningStack) -> Iterator[TestClient]:
    with TestClient(channels_app(stack)) as c:
        yield c


def signed(source: str, body: dict[str, Any], *, at: float | None = None) -> dict[str, Any]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = {**sign(SECRETS[source], raw, at=at), "content-type": "application/json"}
    return {"content": raw, "headers": headers}


def _inbound(**changes: Any) -> dict[str, Any]:
    return {
        "external_id": f"lms-{uuid.uuid4()}",
        "name": "Zhang San",
        "phone": "139 0000 0000",
        "subject": "证书没有收到",
        "description": "考试通过两周了，证书还没有寄到",
        **changes,
    }


def _call(**changes: Any) -> dict[str, Any]:
    return {
        "call_id": f"CC-{uuid.uuid4()}",
        "caller_number": "+86 138 0013 8000",
        "caller_name": "李雷",
        "agent": "agent-07",
        "started_at": "2026-11-30T11:58:00+08:00",
        "ended_at": "2026-11-30T12:04:30+08:00",
        "ivr_choice": "2-refunds",
        "recording_url": "https://calls.example.com/rec/0042.mp3",
        "summary": "学员要求退还课程费用",
        "transcript": "坐席：您好。\n学员：我想退课。",
        **changes,
    }


async def test_a_signed_partner_call_becomes_the_sources_ticket(
    stack: RunningStack, client: TestClient
) -> None:
    body = _inbound(channel="app", received_at="2026-11-30T09:00:00+08:00")

    answer = client.post("/v1/partners/lms/tickets", **signed("lms", body))

    assert answer.status_code == 202, answer.text
    ticket = await published(stack, ticket_id=uuid.UUID(answer.json()["ticket_id"]))
    assert (ticket.source, ticket.external_id, ticket.channel) == (
        "lms",
        body["external_id"],
        Channel.APP,
    )
    assert (ticket.learner.email, ticket.learner.phone) == (None, "+8613900000000")


def test_the_same_signed_call_sent_again_is_a_replay(client: TestClient) -> None:
    call = signed("lms", _inbound())
    first = client.post("/v1/partners/lms/tickets", **call)
    replay = client.post("/v1/partners/lms/tickets", **call)

    assert first.status_code == 202
    assert replay.status_code == 401
    assert replay.json()["detail"].startswith("replayed")


def test_the_same_submission_signed_anew_is_the_same_ticket(client: TestClient) -> None:
    body = _inbound()
    first = client.post("/v1/partners/lms/tickets", **signed("lms", body))
    again = client.post("/v1/partners/lms/tickets", **signed("lms", body, at=time.time() - 1))
    assert again.status_code == 202
    assert again.json() == {**first.json(), "duplicate": True}


@pytest.mark.parametrize(
    ("path", "tamper", "reason"),
    [
        ("/v1/partners/lms/tickets", lambda c: {**c, "content": c["content"] + b" "}, "forged"),
        ("/v1/partners/callcentre/tickets", lambda c: c, "forged"),  # lms's secret, not its own
        ("/v1/partners/payments/tickets", lambda c: c, "unknown source"),
        ("/v1/partners/lms/tickets", lambda c: {**c, "headers": {}}, "missing"),
    ],
)
def test_forged_or_unsigned_partner_calls_get_401(
    client: TestClient, path: str, tamper: Any, reason: str
) -> None:
    answer = client.post(path, **tamper(signed("lms", _inbound())))
    assert answer.status_code == 401
    assert reason in answer.json()["detail"]


def test_a_stale_signature_gets_401(client: TestClient) -> None:
    answer = client.post(
        "/v1/partners/lms/tickets", **signed("lms", _inbound(), at=time.time() - 301)
    )
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("stale")


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"phone": None}, ["body"]),  # no way to reach the learner
        ({"source": "payments"}, ["body", "source"]),
        ({"description": "bad\x07bell"}, ["body", "description"]),
        ({"channel": "carrier-pigeon"}, ["body", "channel"]),
    ],
)
def test_a_signed_call_that_cannot_be_stored_is_422(
    client: TestClient, changes: dict[str, Any], where: list[str]
) -> None:
    answer = client.post("/v1/partners/lms/tickets", **signed("lms", _inbound(**changes)))
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][: len(where)] == where


def test_a_signed_body_that_is_not_json_is_422(client: TestClient) -> None:
    raw = b'{"external_id": '
    answer = client.post(
        "/v1/partners/lms/tickets",
        content=raw,
        headers={**sign(SECRETS["lms"], raw), "content-type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "json_invalid"


def test_the_per_source_limit_answers_429_with_retry_after(stack: RunningStack) -> None:
    # A window of its own: counters are keyed by window, so earlier tests' calls do not count.
    window = 100 + uuid.uuid4().int % 1000
    limits = {"rate_per_source": 1, "rate_window_seconds": window}
    with TestClient(channels_app(stack, partners=limits)) as c:
        source_busy = [
            c.post("/v1/partners/lms/tickets", **signed("lms", _inbound())) for _ in range(2)
        ]
    assert [a.status_code for a in source_busy] == [202, 429]
    assert int(source_busy[1].headers["Retry-After"]) >= 1


async def test_a_refused_call_frees_its_signature_for_the_retry(stack: RunningStack) -> None:
    client = redis.asyncio.Redis.from_url(stack.redis_url)
    guard = ReplayGuard(lambda: client, window_seconds=300, timeout_seconds=1)
    signature = f"sha256={uuid.uuid4().hex}{uuid.uuid4().hex}"
    try:
        await guard.first_use("lms", signature)
        with pytest.raises(Refused, match="replayed"):
            await guard.first_use("lms", signature)
        await guard.release("lms", signature)
        await guard.first_use("lms", signature)
        ttl = await client.ttl(f"careloop:signing:seen:lms:{signature}")
    finally:
        await client.aclose()
    assert 500 < ttl <= 600


async def test_a_call_record_becomes_a_hotline_ticket_with_its_call(
    stack: RunningStack, client: TestClient
) -> None:
    body = _call()

    answer = client.post("/v1/hotline/calls", **signed("callcentre", body))

    assert answer.status_code == 202, answer.text
    ticket = await published(stack, ticket_id=uuid.UUID(answer.json()["ticket_id"]))
    assert (ticket.channel, ticket.source, ticket.external_id) == (
        Channel.HOTLINE,
        "callcentre",
        body["call_id"],
    )
    assert (ticket.learner.name, ticket.learner.phone) == ("李雷", "+8613800138000")
    assert ticket.call is not None
    assert ticket.call.recording_url == body["recording_url"]
    assert ticket.description == "学员要求退还课程费用\n\n坐席：您好。\n学员：我想退课。"
    reposted = client.post("/v1/hotline/calls", **signed("callcentre", body, at=time.time() - 2))
    assert reposted.json() == {**answer.json(), "duplicate": True}


def test_a_call_record_signed_with_another_sources_secret_is_forged(client: TestClient) -> None:
    answer = client.post("/v1/hotline/calls", **signed("lms", _call()))
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("forged")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"summary": None, "transcript": None}, "summary or a transcript"),
        ({"started_at": "2026-11-30 11:58"}, "timezone"),
        ({"caller_number": "unknown"}, "pattern"),
    ],
)
def test_a_call_record_that_cannot_be_a_ticket_is_422(
    client: TestClient, changes: dict[str, Any], problem: str
) -> None:
    answer = client.post("/v1/hotline/calls", **signed("callcentre", _call(**changes)))
    assert answer.status_code == 422
    assert problem in json.dumps(answer.json()["detail"])


async def test_a_call_about_a_named_ticket_is_published_as_a_message_on_it(
    stack: RunningStack, client: TestClient
) -> None:
    answer = client.post(
        "/v1/hotline/calls", **signed("callcentre", _call(ticket_number="CL-000042"))
    )

    assert answer.status_code == 202, answer.text
    message = await published(stack, message_id=uuid.UUID(answer.json()["message_id"]))
    assert message.reply_to == "CL-000042"
