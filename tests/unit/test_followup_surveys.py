"""The follow-up programme's pure parts: whose survey it is, and the quiet period (R9.3)."""

import uuid
from datetime import UTC, datetime, timedelta

from services.survey.domain import learner_key, outside_quiet_period
from shared.events import Learner

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_learner_is_known_by_the_lms_id_else_by_the_folded_email() -> None:
    assert learner_key(Learner(name="王芳", learner_id="L-1", email="w@x.cn")) == "id:L-1"
    assert learner_key(Learner(name="王芳", email="Wang.Fang@Example.com")) == (
        "email:wang.fang@example.com"
    )
    assert learner_key(Learner(name="来电学员", phone="+8613800000000")) is None


def test_a_survey_inside_the_quiet_period_is_held_back_and_one_outside_goes() -> None:
    recent, old, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    last = {"id:L-1": NOW - timedelta(days=29), "id:L-2": NOW - timedelta(days=31)}
    send, quiet = outside_quiet_period(
        [(recent, "id:L-1"), (old, "id:L-2"), (unknown, None)], last, NOW, 30
    )
    assert (send, quiet) == ([old, unknown], [recent])


def test_two_due_surveys_of_one_learner_in_a_batch_send_only_the_first() -> None:
    first, second, caller = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    due = [(first, "email:a@b.cn"), (second, "email:a@b.cn"), (caller, None), (caller, None)]
    assert outside_quiet_period(due, {}, NOW, 30) == ([first, caller, caller], [second])


def test_zero_days_turns_the_quiet_period_off() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    due = [(a, "id:L-1"), (b, "id:L-1")]
    assert outside_quiet_period(due, {"id:L-1": NOW}, NOW, 0) == ([a, b], [])
