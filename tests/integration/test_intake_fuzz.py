"""Fuzzing intake's web form in-process against the real broker and Redis: never a 5xx but 503.

Any unicode (NUL, lone surrogates, controls), wrong JSON types, huge values, bytes that are
not UTF-8 and odd headers: each is answered with a JSON 2xx or 4xx that names the problem.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.support import RunningStack, fresh_groups

URL = "/v1/tickets"
FIELDS = (
    "name",
    "email",
    "phone",
    "learner_id",
    "subject",
    "description",
    "course_id",
    "order_id",
    "external_id",
    "language",
    "attachments",
)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Every code point, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, categories=None), max_size=60)
huge_text = st.builds(
    lambda c, n: c * n, st.sampled_from(["x", "界", "\x00", "😀"]), st.integers(0, 90_000)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
    huge_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
attachment = st.fixed_dictionaries(
    {"name": any_text, "content_type": any_text, "size": json_values, "url": any_text}
)
# Mostly what a person types (any script, emoji), so that many get through to Kafka.
typed_text = st.text(
    st.characters(categories=["L", "M", "N", "P", "S", "Zs"]), min_size=1, max_size=60
)
some_text = st.one_of(typed_text, typed_text, any_text)
plain_email = st.builds("{}@example.com".format, st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True))
plausible = st.fixed_dictionaries(
    {
        "name": some_text,
        "email": st.one_of(plain_email, plain_email, st.emails(), any_text),
        "subject": some_text,
        "description": st.one_of(some_text, huge_text),
    },
    optional={
        "phone": any_text,
        "learner_id": any_text,
        "course_id": any_text,
        "external_id": any_text,
        "language": st.sampled_from(["zh", "en", "fr", ""]),
        "attachments": st.lists(attachment, max_size=12),
    },
)


@pytest.fixture(scope="module")
def client(stack: RunningStack) -> Iterator[TestClient]:
    settings_ = IntakeSettings(
        kafka_bootstrap=stack.bootstrap,
        kafka_group_prefix=fresh_groups()["CARELOOP_KAFKA_GROUP_PREFIX"],
        redis_url=stack.redis_url,
        CARELOOP_INTAKE_RATE_PER_ADDRESS=0,
        CARELOOP_INTAKE_RATE_PER_EMAIL=0,
        CARELOOP_INTAKE_RATE_PER_SOURCE=0,
    )
    with TestClient(create_app(settings_), raise_server_exceptions=False) as c:
        yield c


def _check(response: Any) -> None:
    event(f"status {response.status_code}")  # shown by --hypothesis-show-statistics
    assert response.status_code < 500 or response.status_code == 503, response.text[:500]
    assert response.headers["content-type"] == "application/json", response.text[:200]
    response.json()


def _post_json(client: TestClient, body: Any, headers: dict[str, Any] | None = None) -> None:
    # ensure_ascii: a lone surrogate travels as a `\ud800` escape, as a client would send it
    raw = json.dumps(body, ensure_ascii=True).encode()
    _check(
        client.post(
            URL, content=raw, headers={"content-type": "application/json", **(headers or {})}
        )
    )


@FUZZ
@given(body=plausible)
def test_a_submission_with_any_unicode_in_any_field_never_gets_a_5xx(
    client: TestClient, body: dict[str, Any]
) -> None:
    _post_json(client, body)


@FUZZ
@given(body=st.dictionaries(st.sampled_from(FIELDS) | any_text, json_values, max_size=12))
def test_a_body_of_wrong_types_and_unknown_fields_never_gets_a_5xx(
    client: TestClient, body: dict[str, Any]
) -> None:
    _post_json(client, body)


@FUZZ
@given(body=json_values)
def test_a_body_that_is_not_an_object_never_gets_a_5xx(client: TestClient, body: Any) -> None:
    _post_json(client, body)


@FUZZ
@given(
    raw=st.binary(max_size=2_000),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_arbitrary_bytes_never_get_a_5xx(client: TestClient, raw: bytes, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    _check(client.post(URL, content=raw, headers=headers))


@FUZZ
@given(key=st.binary(max_size=400).filter(lambda b: b"\r" not in b and b"\n" not in b))
def test_any_idempotency_key_never_gets_a_5xx(client: TestClient, key: bytes) -> None:
    body = {"name": "Li", "email": "li@example.com", "subject": "S", "description": "fuzz"}
    _post_json(client, body, {"Idempotency-Key": key})
