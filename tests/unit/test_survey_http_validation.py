"""survey's public edges refuse what they cannot keep with a 4xx naming the field (no database).

Without `with`, TestClient does not run the lifespan: a request that got past validation to
the database would fail loudly (500) instead of passing.
"""

import pytest
from fastapi.testclient import TestClient

from services.survey.app import create_app
from services.survey.settings import SurveySettings

client = TestClient(create_app(SurveySettings()), raise_server_exceptions=False)
TOKEN = "A" * 32
FORM = {"content-type": "application/x-www-form-urlencoded"}
SCORES = {"overall": 4, "response_speed": 4, "problem_solving": 4, "attitude": 4}


@pytest.mark.parametrize("token", ["%00" + "a" * 31, "%ED%A0%80" * 8, "%FF" * 20, "short"])
def test_a_survey_token_that_careloop_cannot_have_sent_is_404_json(token: str) -> None:
    r = client.post(f"/v1/surveys/{token}", json=SCORES)
    assert (r.status_code, r.json()) == (404, {"detail": "no such survey"})


@pytest.mark.parametrize("token", ["%00" + "a" * 31, "%ED%A0%80" * 8])
def test_a_survey_page_for_an_impossible_token_is_a_404_page(token: str) -> None:
    for r in (client.get(f"/s/{token}"), client.post(f"/s/{token}", data={"overall": "1"})):
        assert r.status_code == 404 and "This link is not valid" in r.text


@pytest.mark.parametrize(
    ("field", "value"), [("overall", "5"), ("attitude", 4.0), ("response_speed", True)]
)
def test_the_api_takes_scores_only_as_json_integers(field: str, value: object) -> None:
    r = client.post(f"/v1/surveys/{TOKEN}", json={**SCORES, field: value})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", field]]


@pytest.mark.parametrize("comment", ["a\x00b", "a\ud800b", "bell\x07"])
def test_the_api_names_a_comment_it_cannot_keep(comment: str) -> None:
    body = '{"overall": 4, "response_speed": 4, "problem_solving": 4, "attitude": 4, "comment": '
    raw = body + '"' + comment.encode("unicode_escape").decode().replace("\\x", "\\u00") + '"}'
    r = client.post(
        f"/v1/surveys/{TOKEN}", content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "comment"]]


def test_the_form_names_a_comment_it_cannot_keep_on_a_422_page() -> None:
    body = b"overall=2&response_speed=4&problem_solving=1&attitude=3&comment=x%00y"
    r = client.post(f"/s/{TOKEN}", content=body, headers=FORM)
    assert r.status_code == 422
    assert "text/html" in r.headers["content-type"] and "comment:" in r.text


def test_the_form_names_a_missing_score_on_a_422_page() -> None:
    r = client.post(f"/s/{TOKEN}", content=b"overall=2&response_speed=4", headers=FORM)
    assert r.status_code == 422
    assert "problem_solving: Field required" in r.text and "attitude: Field required" in r.text


def test_a_form_that_is_not_utf8_is_a_400_page() -> None:
    r = client.post(f"/s/{TOKEN}", content=b"overall=2&comment=%ed%a0%80", headers=FORM)
    assert r.status_code == 400 and 'name="overall"' in r.text


def test_openapi_lists_every_answer_the_survey_api_can_give() -> None:
    spec = client.get("/openapi.json").json()["paths"]
    assert {"200", "400", "404", "409", "413", "422", "503"} <= set(
        spec["/v1/surveys/{token}"]["post"]["responses"]
    )
    assert {"200", "400", "404", "409", "413", "415", "422", "503"} <= set(
        spec["/s/{token}"]["post"]["responses"]
    )


def test_openapi_types_the_scores_as_integers_from_one_to_five() -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["AnswerIn"]
    assert schema["properties"]["overall"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5,
        "title": "Overall",
    }
