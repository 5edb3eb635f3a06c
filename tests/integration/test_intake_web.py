"""intake's web form against the real broker and Redis: derived keys and rate limits."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.support import RunningStack, fresh_groups

URL = "/v1/tickets"


def _settings(stack: RunningStack, **overrides: Any) -> IntakeSettings:
    own: dict[str, Any] = {"rate_per_address": 0, "rate_per_source": 0, **overrides}
    return IntakeSettings(
        kafka_bootstrap=stack.bootstrap,
        kafka_group_prefix=fresh_groups()["CARELOOP_KAFKA_GROUP_PREFIX"],
        redis_url=stack.redis_url,
        **{f"CARELOOP_INTAKE_{k.upper()}": v for k, v in own.items()},
    )


@pytest.fixture(scope="module")
def client(stack: RunningStack) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(stack)), client=("203.0.113.9", 40000)) as c:
        yield c


def _submission(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Li Lei",
        "email": f"li-{uuid.uuid4().hex[:10]}@example.com",
        "subject": "Cannot log in",
        "description": f"The login page spins forever ({uuid.uuid4()})",
        **overrides,
    }


def test_a_keyless_submission_sent_twice_is_one_ticket(client: TestClient) -> None:
    submission = _submission()
    first = client.post(URL, json=submission)
    again = client.post(URL, json=submission)

    assert first.status_code == again.status_code == 202
    assert again.json() == {"ticket_id": first.json()["ticket_id"], "duplicate": True}


def test_keyless_submissions_with_other_text_are_other_tickets(client: TestClient) -> None:
    submission = _submission()
    first = client.post(URL, json=submission)
    other = client.post(URL, json={**submission, "description": "Another problem entirely"})

    assert first.json()["ticket_id"] != other.json()["ticket_id"]
    assert other.json()["duplicate"] is False


def test_a_retry_with_the_same_idempotency_key_is_one_ticket(client: TestClient) -> None:
    key = {"Idempotency-Key": f"form-{uuid.uuid4()}"}
    first = client.post(URL, json=_submission(), headers=key)
    retry = client.post(URL, json=_submission(), headers=key)

    assert retry.json() == {"ticket_id": first.json()["ticket_id"], "duplicate": True}


def test_an_accepted_key_is_remembered_for_the_dedupe_ttl(
    stack: RunningStack, client: TestClient
) -> None:
    key = {"Idempotency-Key": f"form-{uuid.uuid4()}"}
    ticket_id = client.post(URL, json=_submission(), headers=key).json()["ticket_id"]

    ttl = redis.Redis.from_url(stack.redis_url).ttl(f"careloop:intake:seen:{ticket_id}")

    remembered_for = _settings(stack).dedupe_ttl_seconds
    assert remembered_for - 60 < ttl <= remembered_for


def test_the_per_email_limit_answers_429_with_retry_after_and_a_json_body(
    stack: RunningStack,
) -> None:
    settings = _settings(stack, rate_per_email=2, rate_email_window_seconds=120)
    submission = _submission()
    with TestClient(create_app(settings)) as c:
        answers = [
            c.post(URL, json={**submission, "description": f"attempt {i}"}) for i in range(3)
        ]

    assert [a.status_code for a in answers] == [202, 202, 429]
    refused = answers[2]
    assert 1 <= int(refused.headers["Retry-After"]) <= 120
    assert refused.json()["limit"] == "email"
    assert refused.json()["retry_after_seconds"] == int(refused.headers["Retry-After"])


def test_sub_addresses_of_one_inbox_share_its_email_limit(stack: RunningStack) -> None:
    settings = _settings(stack, rate_per_email=2, rate_email_window_seconds=120)
    inbox = f"victim{uuid.uuid4().hex[:8]}"
    with TestClient(create_app(settings)) as c:
        answers = [
            c.post(URL, json=_submission(email=f"{inbox}+{i}@example.com")) for i in range(3)
        ]

    assert [a.status_code for a in answers] == [202, 202, 429]


def test_the_per_address_limit_counts_every_email_from_one_address(stack: RunningStack) -> None:
    settings = _settings(stack, rate_per_address=2, rate_address_window_seconds=97)
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    with TestClient(create_app(settings), client=(address, 40000)) as c:
        _forget_address_limits(stack)
        answers = [c.post(URL, json=_submission()) for _ in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].json()["limit"] == "address"


def test_x_forwarded_for_is_ignored_without_trusted_proxies(stack: RunningStack) -> None:
    settings = _settings(stack, rate_per_address=2, rate_address_window_seconds=89)
    with TestClient(create_app(settings), client=("192.0.2.77", 40000)) as c:
        _forget_address_limits(stack)
        answers = [
            c.post(URL, json=_submission(), headers={"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(3)
        ]

    assert [a.status_code for a in answers] == [202, 202, 429]


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(stack: RunningStack) -> None:
    settings = _settings(
        stack, rate_per_address=1, rate_address_window_seconds=83, trusted_proxies="192.0.2.0/24"
    )
    with TestClient(create_app(settings), client=("192.0.2.1", 40000)) as c:
        _forget_address_limits(stack)
        answers = [
            c.post(URL, json=_submission(), headers={"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(3)
        ]

    assert [a.status_code for a in answers] == [202, 202, 202]


def test_the_web_source_limit_counts_every_submission(stack: RunningStack) -> None:
    settings = _settings(stack, rate_per_source=2, rate_source_window_seconds=79)
    with TestClient(create_app(settings)) as c:
        _forget_limits(stack, "source")
        answers = [c.post(URL, json=_submission()) for _ in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].json()["limit"] == "source"


def test_with_redis_unreachable_submissions_are_accepted_unlimited(stack: RunningStack) -> None:
    settings = _settings(stack, rate_per_email=1)
    settings = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    submission = _submission()
    with TestClient(create_app(settings)) as c:
        answers = [
            c.post(URL, json={**submission, "description": f"attempt {i}"}) for i in range(3)
        ]

    assert [a.status_code for a in answers] == [202, 202, 202]


def test_with_redis_unreachable_a_keyless_retry_is_still_one_ticket(stack: RunningStack) -> None:
    settings = _settings(stack).model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    submission = _submission()
    with TestClient(create_app(settings)) as c:
        first, retry = c.post(URL, json=submission), c.post(URL, json=submission)

    # Without Redis the window is the clock's: the same unless an edge fell in between.
    assert first.json()["ticket_id"] == retry.json()["ticket_id"]


def _forget_address_limits(stack: RunningStack) -> None:
    _forget_limits(stack, "address")


def _forget_limits(stack: RunningStack, name: str) -> None:
    r = redis.Redis.from_url(stack.redis_url)
    try:
        for key in r.scan_iter(f"careloop:intake:rate:{name}:*"):
            r.delete(key)
    finally:
        r.close()
