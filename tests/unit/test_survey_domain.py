"""Unit tests for services.survey.domain: valid answers, low scores and when to ask."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.survey.domain import AnswerIn, due_at, is_low


def _scores(**overrides: Any) -> dict[str, Any]:
    scores: dict[str, Any] = {
        "overall": 4,
        "response_speed": 4,
        "problem_solving": 4,
        "attitude": 4,
    }
    scores.update(overrides)
    return scores


def _error_fields(error: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {str(e["loc"][0]) for e in error.value.errors()}


# ---- AnswerIn -----------------------------------------------------------------------------

DIMENSIONS = ("overall", "response_speed", "problem_solving", "attitude")


@pytest.mark.parametrize("dimension", DIMENSIONS)
@pytest.mark.parametrize("score", [1, 5])
def test_answer_accepts_scores_from_one_to_five(dimension: str, score: int) -> None:
    answer = AnswerIn(**_scores(**{dimension: score}))

    assert getattr(answer, dimension) == score


@pytest.mark.parametrize("dimension", DIMENSIONS)
@pytest.mark.parametrize("score", [0, 6])
def test_answer_rejects_scores_outside_one_to_five(dimension: str, score: int) -> None:
    with pytest.raises(ValidationError) as error:
        AnswerIn(**_scores(**{dimension: score}))

    assert _error_fields(error) == {dimension}


def test_answer_rejects_a_missing_dimension() -> None:
    scores = _scores()
    del scores["attitude"]

    with pytest.raises(ValidationError) as error:
        AnswerIn(**scores)

    assert _error_fields(error) == {"attitude"}


def test_answer_rejects_extra_fields() -> None:
    with pytest.raises(ValidationError) as error:
        AnswerIn(**_scores(ticket_id="0190a3b2-7c1d-7e2f-8a3b-1234567890ab"))

    assert _error_fields(error) == {"ticket_id"}


def test_answer_comment_is_optional() -> None:
    assert AnswerIn(**_scores()).comment is None


def test_answer_strips_whitespace_around_the_comment() -> None:
    assert AnswerIn(**_scores(comment="  很满意  ")).comment == "很满意"


def test_answer_rejects_a_comment_over_2000_characters() -> None:
    with pytest.raises(ValidationError) as error:
        AnswerIn(**_scores(comment="x" * 2001))

    assert _error_fields(error) == {"comment"}


# ---- is_low -------------------------------------------------------------------------------


def test_an_overall_score_below_the_threshold_is_low() -> None:
    assert is_low(AnswerIn(**_scores(overall=1)), threshold=2)


def test_an_overall_score_at_the_threshold_is_low() -> None:
    assert is_low(AnswerIn(**_scores(overall=2)), threshold=2)


def test_an_overall_score_above_the_threshold_is_not_low() -> None:
    assert not is_low(AnswerIn(**_scores(overall=3)), threshold=2)


def test_low_scores_in_other_dimensions_do_not_make_the_answer_low() -> None:
    answer = AnswerIn(overall=5, response_speed=1, problem_solving=1, attitude=1)

    assert not is_low(answer, threshold=2)


# ---- due_at -------------------------------------------------------------------------------


def test_due_at_is_the_resolve_time_plus_the_delay() -> None:
    resolved_at = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)

    assert due_at(resolved_at, 3600) == resolved_at + timedelta(hours=1)


def test_due_at_accepts_fractional_seconds() -> None:
    resolved_at = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)

    assert due_at(resolved_at, 0.5) == resolved_at + timedelta(milliseconds=500)


def test_links_use_the_public_url_when_one_is_set_and_base_and_port_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.desk.settings import DeskSettings
    from services.survey.settings import SurveySettings

    for name in (
        "CARELOOP_PUBLIC_BASE_URL",
        "CARELOOP_SURVEY_HTTP_PORT",
        "CARELOOP_SURVEY_PUBLIC_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    assert SurveySettings().public_url == "http://127.0.0.1:18085"
    monkeypatch.setenv("CARELOOP_SURVEY_PUBLIC_URL", "https://survey.example.com")
    monkeypatch.setenv("CARELOOP_DESK_PUBLIC_URL", "https://help.example.com")
    assert SurveySettings().public_url == "https://survey.example.com"
    assert DeskSettings().public_url == "https://help.example.com"


# ---- strict scores, and the form's strings ------------------------------------------------


@pytest.mark.parametrize("score", ["4", 4.0, True])
def test_answer_takes_scores_only_as_integers(score: object) -> None:
    with pytest.raises(ValidationError) as error:
        AnswerIn(**_scores(overall=score))

    assert _error_fields(error) == {"overall"}


def test_the_form_s_scores_arrive_as_strings_and_still_count() -> None:
    answer = AnswerIn.from_form({k: str(v) for k, v in _scores(overall=2).items()})

    assert (answer.overall, answer.attitude) == (2, 4)


@pytest.mark.parametrize("comment", ["a\x00b", "a\ud800b", "\x1b[31m"])
def test_answer_refuses_a_comment_it_cannot_keep(comment: str) -> None:
    with pytest.raises(ValidationError) as error:
        AnswerIn(**_scores(comment=comment))

    assert _error_fields(error) == {"comment"}
