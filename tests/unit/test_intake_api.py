"""intake's HTTP edge refuses bad input before anything is published (no broker needed)."""

import json

import httpx
import pytest
from fastapi.testclient import TestClient

from services.intake.app import create_app
from services.intake.settings import IntakeSettings

# Without `with`, TestClient does not run the lifespan: nothing connects anywhere, so any
# request that got past validation would fail loudly instead of passing by accident.
client = TestClient(create_app(IntakeSettings()), raise_server_exceptions=False)
VALID = {"name": "Li Lei", "email": "lilei@example.com", "subject": "Help", "description": "Video"}


def test_an_oversize_body_is_refused_with_413() -> None:
    body = {**VALID, "description": "x" * 300_000}
    assert client.post("/v1/tickets", json=body).status_code == 413


def test_a_bad_submission_gets_422_naming_each_field_and_its_problem() -> None:
    r = client.post("/v1/tickets", json={**VALID, "email": "nope", "phone": "call me"})
    assert r.status_code == 422
    problems = {e["loc"][-1]: e["msg"] for e in r.json()["detail"]}
    assert set(problems) == {"email", "phone"}
    assert "@-sign" in problems["email"]


def test_an_unknown_field_is_refused_rather_than_dropped() -> None:
    r = client.post("/v1/tickets", json={**VALID, "priority": "urgent"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == "priority"


def test_a_missing_contact_is_refused() -> None:
    body = {k: v for k, v in VALID.items() if k != "email"}
    r = client.post("/v1/tickets", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "email"


def _post_raw(body: bytes, **headers: str) -> httpx.Response:
    return client.post(
        "/v1/tickets", content=body, headers={"content-type": "application/json", **headers}
    )


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("description", "a\x00b", "NUL character"),
        ("subject", "bell\x07", "control character (U+0007)"),
        ("name", "Li\nLei", "line break"),
        ("course_id", "PY\x00101", "NUL character"),
        ("external_id", "id\x1b[31m", "control character (U+001B)"),
    ],
)
def test_a_value_desk_could_not_store_is_refused_naming_the_field(
    field: str, value: str, reason: str
) -> None:
    r = client.post("/v1/tickets", json={**VALID, field: value})
    assert r.status_code == 422
    [problem] = r.json()["detail"]
    assert problem["loc"] == ["body", field]
    assert reason in problem["msg"]


def test_a_lone_surrogate_escape_is_refused_naming_the_field() -> None:
    body = json.dumps({**VALID, "subject": "x"}).replace('"x"', '"\\ud800"').encode()
    r = _post_raw(body)
    assert r.status_code == 422
    assert [p["loc"] for p in r.json()["detail"]] == [["body", "subject"]]


def test_a_lone_surrogate_in_an_unknown_field_name_gets_422_not_500() -> None:
    r = _post_raw(b'{"\\udc80": 1}')
    assert r.status_code == 422


def test_a_refusal_does_not_echo_the_input_back() -> None:
    r = client.post("/v1/tickets", json={**VALID, "email": "secret-address"})
    assert r.status_code == 422
    assert "secret-address" not in r.text
    assert set(r.json()["detail"][0]) == {"loc", "msg", "type"}


def test_a_body_that_is_not_utf8_gets_400_naming_the_byte_and_where() -> None:
    body = json.dumps({**VALID, "name": "x"}).encode().replace(b'"x"', b'"\xff"')
    r = _post_raw(body)
    where = body.index(b"\xff")
    assert r.status_code == 400
    assert r.json()["detail"] == f"the body is not UTF-8: byte 0xFF at position {where}"


def test_a_body_that_is_not_json_gets_422_saying_so() -> None:
    r = _post_raw(b'{"name": ')
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


def test_an_oversize_body_declared_in_content_length_gets_413_as_json() -> None:
    r = _post_raw(b" " * 300_000)
    assert r.status_code == 413
    assert r.json() == {"detail": "the body is larger than 262144 bytes"}


def test_an_oversize_body_without_a_declared_length_gets_413_as_json() -> None:
    r = client.post(
        "/v1/tickets",
        content=(b" " * 10_000 for _ in range(30)),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize("key", ["a\x01b", "\x7f", "x" * 201, "ключ"])
def test_an_idempotency_key_that_is_not_printable_ascii_up_to_200_is_refused(key: str) -> None:
    r = client.post("/v1/tickets", json=VALID, headers={"Idempotency-Key": key.encode()})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


@pytest.mark.parametrize("size", ["5", 5.0, True, -1, 2**53])
def test_an_attachment_size_must_be_a_json_integer_in_range(size: object) -> None:
    attachment = {"name": "a.png", "content_type": "image/png", "size": size, "url": "https://x/a"}
    r = client.post("/v1/tickets", json={**VALID, "attachments": [attachment]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "attachments", 0, "size"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "javascript://%0aalert(1)", "ftp://x/a"])
def test_an_attachment_url_must_be_http_or_https(url: str) -> None:
    attachment = {"name": "a.png", "content_type": "image/png", "size": 1, "url": url}
    r = client.post("/v1/tickets", json={**VALID, "attachments": [attachment]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "attachments", 0, "url"]


def test_an_unknown_attachment_field_is_refused_rather_than_dropped() -> None:
    attachment = {"name": "a", "content_type": "image/png", "size": 1, "url": "https://x", "x": 1}
    r = client.post("/v1/tickets", json={**VALID, "attachments": [attachment]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "attachments", 0, "x"]


@pytest.mark.parametrize("code", ["400", "413", "422", "429", "503"])
def test_openapi_documents_every_refusal_of_the_submission_route_with_a_json_model(
    code: str,
) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/v1/tickets"]["post"]["responses"]
    assert "$ref" in responses[code]["content"]["application/json"]["schema"]


def test_openapi_says_a_503_outcome_is_unknown_and_a_retry_is_safe() -> None:
    doc = client.get("/openapi.json").json()
    description = doc["paths"]["/v1/tickets"]["post"]["responses"]["503"]["description"]
    assert "outcome is unknown" in description and "is safe" in description
    assert "Retry-After" in doc["paths"]["/v1/tickets"]["post"]["responses"]["503"]["headers"]
