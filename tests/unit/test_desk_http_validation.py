"""desk's public edges refuse what they cannot keep with a 4xx naming the field (no database).

Without `with`, TestClient does not run the lifespan: nothing connects anywhere, so a request
that got past validation to the database would fail loudly (500) instead of passing.
"""

import pytest
from fastapi.testclient import TestClient

from services.desk.app import create_app
from services.desk.settings import DeskSettings

client = TestClient(create_app(DeskSettings()), raise_server_exceptions=False)
TOKEN = "A" * 32
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    "token", ["%00" + "a" * 31, "%ED%A0%80" * 8, "%FF" * 20, "short", "a.b" * 8]
)
def test_a_confirmation_token_that_careloop_cannot_have_sent_is_404_json(token: str) -> None:
    r = client.post(f"/v1/confirmations/{token}", json={"answer": "solved"})
    assert (r.status_code, r.json()) == (404, {"detail": "this link is no longer valid"})


@pytest.mark.parametrize("token", ["%00" + "a" * 31, "%ED%A0%80" * 8, "x"])
def test_a_confirmation_page_for_an_impossible_token_is_a_404_page(token: str) -> None:
    r = client.get(f"/confirm/{token}")
    assert r.status_code == 404
    assert "text/html" in r.headers["content-type"] and "This link is not valid" in r.text


def test_an_answer_that_is_neither_solved_nor_not_solved_is_a_422_page() -> None:
    r = client.post(f"/confirm/{TOKEN}", content=b"answer=maybe%00", headers=FORM)
    assert r.status_code == 422
    assert "text/html" in r.headers["content-type"] and "answer:" in r.text


def test_a_form_that_is_not_utf8_is_a_400_page() -> None:
    r = client.post(f"/confirm/{TOKEN}", content=b"answer=%ff%fe", headers=FORM)
    assert r.status_code == 400 and "not URL-encoded UTF-8" in r.text


def test_a_form_posted_as_json_is_a_415_page() -> None:
    r = client.post(f"/confirm/{TOKEN}", json={"answer": "solved"})
    assert r.status_code == 415 and "application/x-www-form-urlencoded" in r.text


@pytest.mark.parametrize("answer", ["maybe", 1, None, True])
def test_the_confirmation_api_names_the_answer_field_when_it_is_wrong(answer: object) -> None:
    r = client.post(f"/v1/confirmations/{TOKEN}", json={"answer": answer})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "answer"]]


def test_the_confirmation_api_refuses_unknown_fields() -> None:
    r = client.post(f"/v1/confirmations/{TOKEN}", json={"answer": "solved", "extra": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "extra"]


def test_a_json_body_that_is_not_utf8_is_400() -> None:
    r = client.post(
        f"/v1/confirmations/{TOKEN}",
        content=b'{"answer": "solved\xff"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "not UTF-8" in r.json()["detail"]


def test_an_oversize_body_is_413_as_json() -> None:
    r = client.post(f"/v1/confirmations/{TOKEN}", json={"answer": "x" * 300_000})
    assert r.status_code == 413 and "larger than" in r.json()["detail"]


def _responses(path: str, method: str) -> set[str]:
    return set(client.get("/openapi.json").json()["paths"][path][method]["responses"])


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        ("/v1/agent/me", "get", {"200", "401", "503"}),
        ("/v1/agent/tickets", "get", {"200", "401", "403", "422", "503"}),
        ("/v1/tickets/{ticket_id}", "get", {"200", "401", "403", "404", "422", "503"}),
        (
            "/v1/tickets/{ticket_id}/replies",
            "post",
            {"201", "400", "401", "403", "404", "409", "413", "422", "503"},
        ),
        (
            "/v1/tickets/{ticket_id}/resolve",
            "post",
            {"200", "400", "401", "403", "404", "409", "413", "422", "503"},
        ),
        ("/v1/confirmations/{token}", "post", {"200", "400", "404", "409", "413", "422", "503"}),
        ("/confirm/{token}", "post", {"200", "400", "404", "409", "413", "415", "422", "503"}),
    ],
)
def test_openapi_lists_every_answer_a_route_can_give(
    path: str, method: str, codes: set[str]
) -> None:
    assert codes <= _responses(path, method)


def test_openapi_types_everyone_as_a_boolean_and_limit_as_a_bounded_integer() -> None:
    params = {
        p["name"]: p["schema"]
        for p in client.get("/openapi.json").json()["paths"]["/v1/agent/tickets"]["get"][
            "parameters"
        ]
    }
    assert params["everyone"]["type"] == "boolean"
    assert (params["limit"]["type"], params["limit"]["minimum"], params["limit"]["maximum"]) == (
        "integer",
        1,
        500,
    )
