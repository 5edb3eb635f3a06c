"""The learner API's write side on the real broker and Redis: app tickets, messages, chat."""

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.intake.channels import hotline, learner_api, partner, suggestion
from services.intake.settings import IntakeSettings
from shared import http, topics
from shared.events import Channel, TicketSubmitted
from shared.service import build_app, new_context
from shared.signing import SigningSettings, learner_token
from tests.integration.inprocess import find_event
from tests.support import RunningStack

SECRETS = {
    "app": "app-secret-1",
    "chat": "chat-secret-1",
    "callcentre": "cc-secret-1",
    "lms": "lms-secret-1",
}


def channels_app(
    stack: RunningStack,
    *,
    learner: dict[str, Any] | None = None,
    partners: dict[str, Any] | None = None,
    calls: dict[str, Any] | None = None,
    suggestions: dict[str, Any] | None = None,
) -> FastAPI:
    """intake with this helper's channels, as the lead wires them into services.intake.app."""
    settings = IntakeSettings(kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url)
    ctx = new_context("intake", settings)
    app = build_app(ctx, uses_postgres=False, uses_redis=True, title="careloop intake")
    signing = SigningSettings(CARELOOP_SOURCES_SECRETS=SECRETS)

    def own(prefix: str, values: dict[str, Any] | None) -> dict[str, Any]:
        return {f"CARELOOP_{prefix}_{k.upper()}": v for k, v in (values or {}).items()}

    app.include_router(
        learner_api.routes(
            ctx, learner_api.LearnerApiSettings(**own("learner_api", learner)), signing
        )
    )
    app.include_router(
        partner.routes(ctx, partner.PartnerSettings(**own("partners", partners)), signing)
    )
    app.include_router(
        hotline.routes(ctx, hotline.HotlineSettings(**own("hotline", calls)), signing)
    )
    app.include_router(
        suggestion.routes(ctx, suggestion.SuggestionSettings(**own("suggestions", suggestions)))
    )
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app


async def published(stack: RunningStack, **match: Any) -> TicketSubmitted:
    """The TicketSubmitted on careloop.intake.v1 whose fields equal `match`."""

    def wanted(event: Any) -> bool:
        return isinstance(event.data, TicketSubmitted) and all(
            getattr(event.data, k) == v for k, v in match.items()
        )

    found = await find_event(stack.bootstrap, topics.INTAKE, wanted)
    data: TicketSubmitted = found.data
    return data


def token(source: str = "app", **claims: Any) -> dict[str, str]:
    values = {"learner_id": f"L-{uuid.uuid4().hex[:8]}", "name": "王芳", **claims}
    minted = learner_token(source=source, secret=SECRETS.get(source, "x"), **values)
    return {"Authorization": f"Bearer {minted}"}


@pytest.fixture(scope="module")
def client(stack: RunningStack) -> Iterator[TestClient]:
    with TestClient(channels_app(stack)) as c:
        yield c


async def test_a_learner_opens_a_ticket_with_their_token(
    stack: RunningStack, client: TestClient
) -> None:
    auth = token(email="Wang.Fang@Example.com")
    body = {
        "subject": "视频无法播放",
        "description": "第三课的视频一直在加载",
        "course_id": "PY-101",
    }

    answer = client.post("/v1/learner/tickets", json=body, headers=auth)

    assert answer.status_code == 202, answer.text
    ticket_id = uuid.UUID(answer.json()["ticket_id"])
    ticket = await published(stack, ticket_id=ticket_id)
    assert (ticket.channel, ticket.source, ticket.language) == (Channel.APP, "app", "zh")
    assert ticket.learner.email == "wang.fang@example.com"
    assert ticket.course_id == "PY-101"
    again = client.post("/v1/learner/tickets", json=body, headers=auth)
    assert again.json() == {**answer.json(), "duplicate": True}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "Authorization: Bearer"),
        ({"Authorization": "Basic YWxhZGRpbjpvcGVu"}, "Authorization: Bearer"),
        ({"Authorization": "Bearer app.not-a-token"}, "forged"),
        ({"Authorization": "Bearer lms.whatever"}, "unknown source"),
    ],
)
def test_a_call_without_a_valid_learner_token_is_401(
    client: TestClient, headers: dict[str, str], reason: str
) -> None:
    answer = client.post(
        "/v1/learner/tickets", json={"subject": "s", "description": "d"}, headers=headers
    )
    assert answer.status_code == 401
    assert reason in answer.json()["detail"]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_learner_token_is_401(client: TestClient) -> None:
    expired = learner_token(
        source="app",
        secret=SECRETS["app"],
        learner_id="L1",
        name="Li",
        ttl_seconds=10,
        now=time.time() - 60,
    )
    answer = client.post(
        "/v1/learner/tickets",
        json={"subject": "s", "description": "d"},
        headers={"Authorization": f"Bearer {expired}"},
    )
    assert answer.status_code == 401
    assert "expired" in answer.json()["detail"]


async def test_a_message_on_a_ticket_is_published_once_with_its_message_id(
    stack: RunningStack, client: TestClient
) -> None:
    auth = token()
    opened = client.post(
        "/v1/learner/tickets",
        json={"subject": "Refund", "description": "Please refund"},
        headers=auth,
    ).json()["ticket_id"]
    url = f"/v1/learner/tickets/{opened}/messages"

    first = client.post(url, json={"message_id": "m-1", "text": "Any news?"}, headers=auth)
    again = client.post(url, json={"message_id": "m-1", "text": "Any news?"}, headers=auth)

    assert first.status_code == again.status_code == 202
    assert again.json() == {**first.json(), "duplicate": True}
    message_id = uuid.UUID(first.json()["message_id"])
    message = await published(stack, message_id=message_id)
    assert str(message.ticket_id) == opened
    assert message.description == "Any news?"


async def test_a_message_on_a_number_names_it_as_reply_to(
    stack: RunningStack, client: TestClient
) -> None:
    answer = client.post(
        "/v1/learner/tickets/CL-000123/messages",
        json={"text": "还没有收到退款"},
        headers={**token(), "Idempotency-Key": f"key-{uuid.uuid4()}"},
    )
    assert answer.status_code == 202, answer.text
    message = await published(stack, message_id=uuid.UUID(answer.json()["message_id"]))
    assert message.reply_to == "CL-000123"


def test_a_message_needs_an_id_and_a_ticket_that_can_be_one(client: TestClient) -> None:
    no_id = client.post(
        f"/v1/learner/tickets/{uuid.uuid4()}/messages", json={"text": "hi"}, headers=token()
    )
    bad_ref = client.post(
        "/v1/learner/tickets/ticket-7/messages",
        json={"text": "hi", "message_id": "m"},
        headers=token(),
    )
    assert no_id.status_code == bad_ref.status_code == 422
    assert no_id.json()["detail"][0]["loc"] == ["body", "message_id"]
    assert bad_ref.json()["detail"][0]["loc"] == ["path", "ticket"]


async def test_a_chat_conversation_is_one_ticket_and_every_message_is_published(
    stack: RunningStack, client: TestClient
) -> None:
    auth = token("chat")
    conversation = f"conv-{uuid.uuid4()}"
    answers = [
        client.post(
            "/v1/chat/messages",
            json={
                "conversation_id": conversation,
                "message_id": f"{conversation}-{n}",
                "text": text,
                "sent_at": f"2026-11-30T12:00:0{n}+08:00",
            },
            headers=auth,
        )
        for n, text in enumerate(["你好，我想改课程时间", "改到周六可以吗"])
    ]

    assert [a.status_code for a in answers] == [202, 202]
    assert [a.json()["duplicate"] for a in answers] == [False, False]
    assert answers[0].json()["ticket_id"] == answers[1].json()["ticket_id"]
    second = await published(stack, message_id=uuid.UUID(answers[1].json()["message_id"]))
    assert (second.channel, second.description) == (Channel.CHAT, "改到周六可以吗")


@pytest.mark.parametrize(
    "body",
    [
        {"subject": "a\x00b", "description": "d"},
        {"subject": "s", "description": "d", "unknown": 1},
        {"subject": "s"},
    ],
)
def test_bad_bodies_are_422_naming_the_field(client: TestClient, body: dict[str, Any]) -> None:
    answer = client.post("/v1/learner/tickets", json=body, headers=token())
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][0] == "body"


def test_a_body_that_is_not_json_or_not_utf8_is_refused(client: TestClient) -> None:
    headers = {**token(), "content-type": "application/json"}
    broken = client.post("/v1/learner/tickets", content=b'{"subject": ', headers=headers)
    latin1 = client.post(
        "/v1/learner/tickets",
        content=json.dumps({"subject": "x", "description": "d"}).encode().replace(b"x", b"\xe9"),
        headers=headers,
    )
    assert broken.status_code == 422
    assert latin1.status_code == 400


def test_the_per_learner_limit_answers_429_with_retry_after(stack: RunningStack) -> None:
    auth = token()
    with TestClient(channels_app(stack, learner={"rate_per_learner": 2})) as c:
        answers = [
            c.post(
                "/v1/learner/tickets", json={"subject": "s", "description": f"d{i}"}, headers=auth
            )
            for i in range(3)
        ]
        other = c.post(
            "/v1/learner/tickets", json={"subject": "s", "description": "d"}, headers=token()
        )
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].json()["limit"] == "learner"
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert other.status_code == 202
