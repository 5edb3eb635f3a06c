"""The follow-up programme's pure parts (R9.3): whose survey it is, the quiet period, the
periodic programme's periods and answers, and how metrics counts them."""

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from services.metrics.handlers import on_periodic_answered
from services.survey.domain import (
    PeriodicAnswerIn,
    WrongCourses,
    check_courses,
    learner_key,
    low_periodic_follow_up,
    outside_quiet_period,
    period_of,
)
from shared.events import (
    LOW_PERIODIC_SCORE,
    Channel,
    CourseScores,
    Learner,
    SurveyPeriodicAnswered,
    decode,
    new_event,
)

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


def test_periods_are_counted_from_january_and_named_by_their_first_month() -> None:
    assert period_of(datetime(2026, 11, 30, tzinfo=UTC), 3) == "2026-10+3m"
    assert period_of(datetime(2026, 1, 1, tzinfo=UTC), 3) == "2026-01+3m"
    assert period_of(datetime(2026, 12, 31, tzinfo=UTC), 6) == "2026-07+6m"
    assert period_of(datetime(2027, 2, 1, tzinfo=UTC), 12) == "2027-01+12m"
    # A period need not divide the year: five months from year 0 cross New Year's Day.
    assert period_of(datetime(2026, 1, 15, tzinfo=UTC), 5) == "2025-11+5m"
    assert period_of(datetime(2026, 4, 1, tzinfo=UTC), 5) == "2026-04+5m"


PERIODIC_FORM = {
    "overall": "4",
    "response_speed": "4",
    "problem_solving": "5",
    "attitude": "5",
    "teacher_level": "5",
    "teaching_method": "3",
    "teaching_attitude": "4",
    "course_0_usefulness": "5",
    "course_0_difficulty": "2",
    "course_0_structure": "4",
    "comment": " 口语课的练习太少 ",
}


def test_the_periodic_form_numbers_its_courses_in_the_surveys_order() -> None:
    answer = PeriodicAnswerIn.from_periodic_form(PERIODIC_FORM, ["IELTS-7"])
    assert [c.model_dump() for c in answer.courses] == [
        {"course_id": "IELTS-7", "usefulness": 5, "difficulty": 2, "structure": 4}
    ]
    assert (answer.teaching_method, answer.comment) == (3, "口语课的练习太少")
    check_courses(answer, ["IELTS-7"])


def test_a_periodic_answer_must_rate_each_of_the_surveys_courses() -> None:
    with pytest.raises(ValidationError, match=r"courses\.1\.usefulness"):
        PeriodicAnswerIn.from_periodic_form(PERIODIC_FORM, ["IELTS-7", "PY-101"])
    answer = PeriodicAnswerIn.from_periodic_form(PERIODIC_FORM, ["IELTS-7"])
    with pytest.raises(WrongCourses, match="PY-101"):
        check_courses(answer, ["PY-101"])
    with pytest.raises(WrongCourses):
        check_courses(answer, ["IELTS-7", "IELTS-7"])


async def test_metrics_counts_a_periodic_answer_under_its_own_dimensions() -> None:
    def count(dimension: str) -> float:
        return (
            REGISTRY.get_sample_value("careloop_survey_score_count", {"dimension": dimension})
            or 0.0
        )

    before = {d: count(d) for d in ("periodic_overall", "teacher_level", "course_structure")}
    event = new_event(
        SurveyPeriodicAnswered(
            survey_id=uuid.uuid4(),
            learner_id="L-1",
            period="2026-10+3m",
            overall=4,
            response_speed=4,
            problem_solving=4,
            attitude=5,
            courses=(
                CourseScores(course_id="A", usefulness=5, difficulty=3, structure=4),
                CourseScores(course_id="B", usefulness=2, difficulty=4, structure=3),
            ),
            teacher_level=5,
            teaching_method=4,
            teaching_attitude=5,
            answered_at=NOW,
        ),
        producer="survey",
    )
    observe = await on_periodic_answered(None, [event])  # the handler reads no database
    observe()
    assert count("periodic_overall") == before["periodic_overall"] + 1
    assert count("teacher_level") == before["teacher_level"] + 1
    assert count("course_structure") == before["course_structure"] + 2


def low_answer(comment: str | None) -> PeriodicAnswerIn:
    return PeriodicAnswerIn(
        overall=1,
        response_speed=2,
        problem_solving=1,
        attitude=3,
        teacher_level=2,
        teaching_method=1,
        teaching_attitude=4,
        courses=[{"course_id": "IELTS-7", "usefulness": 2, "difficulty": 5, "structure": 1}],
        comment=comment,
    )


def test_a_low_periodic_answer_opens_one_follow_up_with_every_score_in_the_learners_language() -> (
    None
):
    survey_id = uuid.uuid4()
    learner = Learner(name="王芳", learner_id="L-1", email="w@x.cn")

    zh = low_periodic_follow_up(
        survey_id,
        learner=learner,
        locale="zh",
        period="2026-10+3m",
        answer=low_answer("老师经常迟到"),
        at=NOW,
    )
    en = low_periodic_follow_up(
        survey_id,
        learner=learner,
        locale="en",
        period="2026-10+3m",
        answer=low_answer(None),
        at=NOW,
    )

    assert zh.ticket_id == en.ticket_id != survey_id  # one follow-up per answer
    assert (zh.source, zh.channel, zh.learner, zh.language) == (
        LOW_PERIODIC_SCORE,
        Channel.SERVICE,
        learner,
        "zh",
    )
    assert zh.subject == "定期满意度调查低分（总体 1/5）"
    assert zh.description.splitlines() == [
        "学员在2026年10–12月的定期满意度调查中给了低分，请主管回访。",
        "总体满意度 1/5 · 响应速度 2/5 · 解决问题能力 1/5 · 服务态度 3/5",
        "老师水平 2/5 · 教学方法 1/5 · 教学态度 4/5",
        "课程 IELTS-7：课程实用性 2/5 · 难度是否合适 5/5 · 课程结构 1/5",
        "学员留言：老师经常迟到",
    ]
    assert en.subject == "Low periodic survey score (overall 1/5)"
    assert en.description.splitlines() == [
        "The learner gave a low score in the periodic satisfaction survey of 2026-10 to "
        "2026-12; a supervisor should follow up.",
        "Overall 1/5 · Response speed 2/5 · Problem solving 1/5 · Attitude 3/5",
        "Teacher's level 2/5 · Teaching method 1/5 · Teaching attitude 4/5",
        "Course IELTS-7: Usefulness 2/5 · Right difficulty 5/5 · Structure 1/5",
    ]
    # what consumers decode is what was built: every field within the event's limits
    assert decode(msgspec.json.encode(new_event(zh, producer="survey"))).data == zh


@pytest.mark.parametrize(
    ("period", "zh", "en"),
    [
        ("2026-10+3m", "2026年10–12月", "2026-10 to 2026-12"),
        ("2026-11+3m", "2026年11月–2027年1月", "2026-11 to 2027-01"),
        ("2026-05+1m", "2026年5月", "survey of 2026-05;"),
    ],
)
def test_a_period_reads_as_its_months(period: str, zh: str, en: str) -> None:
    answer = low_answer(None)
    for locale, words in (("zh", zh), ("en", en)):
        made = low_periodic_follow_up(
            uuid.uuid4(),
            learner=Learner(name="王芳"),
            locale=locale,
            period=period,
            answer=answer,
            at=NOW,
        )
        assert words in made.description.splitlines()[0]
