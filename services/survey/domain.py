"""survey's decisions: what a valid answer is, which answers go to a supervisor, and when a
survey can be answered."""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import PermanentError
from shared.events import LOW_PERIODIC_SCORE, Channel, Learner, TicketSubmitted
from shared.text import Text

DIMENSIONS = (
    ("overall", "总体满意度 · Overall"),
    ("response_speed", "响应速度 · Response speed"),
    ("problem_solving", "解决问题能力 · Problem solving"),
    ("attitude", "服务态度 · Attitude"),
)


# Strict: JSON gives a number, and "5" or true is a client's mistake worth naming. The
# HTML form sends strings; `from_form` parses those leniently.
Score = Annotated[int, Field(ge=1, le=5, strict=True)]


class AnswerIn(BaseModel):
    """A learner's answer: four scores from 1 to 5 and an optional comment (R9.1)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    overall: Score
    response_speed: Score
    problem_solving: Score
    attitude: Score
    comment: Text | None = Field(None, max_length=2000)

    @classmethod
    def from_form(cls, fields: dict[str, Any]) -> "AnswerIn":
        """The same answer from the HTML form, whose scores arrive as strings."""
        return cls.model_validate(fields, strict=False)


COURSE_DIMENSIONS = (
    ("usefulness", "课程实用性 · Usefulness"),
    ("difficulty", "难度是否合适 · Right difficulty"),
    ("structure", "课程结构 · Structure"),
)
TEACHING_DIMENSIONS = (
    ("teacher_level", "老师水平 · Teacher's level"),
    ("teaching_method", "教学方法 · Teaching method"),
    ("teaching_attitude", "教学态度 · Teaching attitude"),
)


class CourseAnswer(BaseModel):
    """One enrolled course's satisfaction in a periodic survey (002 §五.2)."""

    model_config = ConfigDict(extra="forbid")

    course_id: str = Field(min_length=1, max_length=100)
    usefulness: Score
    difficulty: Score
    structure: Score


class PeriodicAnswerIn(AnswerIn):
    """A periodic survey's answer: the service scores, each enrolled course's, and the
    teaching's (R9.3)."""

    courses: list[CourseAnswer] = Field(default_factory=list, max_length=500)
    teacher_level: Score
    teaching_method: Score
    teaching_attitude: Score

    @classmethod
    def from_periodic_form(
        cls, fields: dict[str, str], course_ids: Sequence[str]
    ) -> "PeriodicAnswerIn":
        """The answer from the periodic form, whose course fields are numbered in the order of
        the survey's courses (`course_<n>_<dimension>`), scores as strings."""
        courses: list[dict[str, str | None]] = [
            {
                "course_id": course_id,
                **{d: fields.get(f"course_{n}_{d}") for d, _ in COURSE_DIMENSIONS},
            }
            for n, course_id in enumerate(course_ids)
        ]
        own = {k: v for k, v in fields.items() if not k.startswith("course_")}
        return cls.model_validate({**own, "courses": courses}, strict=False)


def check_courses(answer: PeriodicAnswerIn, course_ids: Sequence[str]) -> None:
    """A periodic answer rates exactly the courses its survey asked about, each once."""
    given = [c.course_id for c in answer.courses]
    if sorted(given) != sorted(course_ids):
        raise WrongCourses(
            f"courses: rate exactly the survey's courses {sorted(course_ids)}, got {given}"
        )


def period_of(at: datetime, months: int) -> str:
    """The programme's period `at` falls in: periods of `months` months counted from January
    (with 3: Jan-Mar, Apr-Jun, ...), named by their first month and length ('2026-10+3m')."""
    start = (at.year * 12 + at.month - 1) // months * months
    return f"{start // 12}-{start % 12 + 1:02d}+{months}m"


def is_low(answer: AnswerIn, threshold: int) -> bool:
    """A low overall score is not filed away: it goes to a supervisor (R9.2)."""
    return answer.overall <= threshold


def due_at(resolved_at: datetime, delay_seconds: float) -> datetime:
    return resolved_at + timedelta(seconds=delay_seconds)


def learner_key(learner: Learner) -> str | None:
    """Who a survey goes to, for the quiet period: the LMS's learner id, else the e-mail
    address (case folded); None for a learner careloop cannot tell apart (a caller, a chat
    user), whom the quiet period cannot follow."""
    if learner.learner_id:
        return f"id:{learner.learner_id}"
    if learner.email:
        return f"email:{learner.email.casefold()}"
    return None


def outside_quiet_period(
    due: Sequence[tuple[UUID, str | None]],
    last_sent: Mapping[str, datetime],
    now: datetime,
    quiet_days: float,
) -> tuple[list[UUID], list[UUID]]:
    """Split due surveys (survey_id, learner key) into those to send and those that fall in the
    learner's quiet period: sent one within `quiet_days`, or an earlier one in this same batch
    (R9.3). A survey whose learner is unknown is always sent; 0 days turns the rule off."""
    send: list[UUID] = []
    quiet: list[UUID] = []
    sent = dict(last_sent)
    since = now - timedelta(days=quiet_days)
    for survey_id, key in due:
        if quiet_days > 0 and key is not None and key in sent and sent[key] > since:
            quiet.append(survey_id)
            continue
        send.append(survey_id)
        if key is not None:
            sent[key] = now
    return send, quiet


class UnknownSurvey(PermanentError):
    """No survey was sent with this link."""


class WrongCourses(PermanentError):
    """A periodic answer's courses are not the ones its survey asked about."""


class NotOpen(PermanentError):
    """The survey was answered already (or withdrawn)."""


def check_open(status: str) -> None:
    """Only a survey that was sent and not yet answered takes an answer."""
    if status == "answered":
        raise NotOpen("this survey was already answered")
    if status != "requested":
        raise UnknownSurvey(f"this survey is {status}")


_FOLLOW_UP = {
    "zh": (
        "定期满意度调查低分（总体 {overall}/5）",
        "学员在{period}的定期满意度调查中给了低分，请主管回访。",
        "学员留言：",
        "课程 {course}：",
    ),
    "en": (
        "Low periodic survey score (overall {overall}/5)",
        "The learner gave a low score in the periodic satisfaction survey of {period}; a "
        "supervisor should follow up.",
        "The learner wrote: ",
        "Course {course}: ",
    ),
}


def _period_words(period: str, zh: bool) -> str:
    """A period as people say it: '2026-10+3m' is "2026年10–12月" / "2026-10 to 2026-12"."""
    first, _, length = period.partition("+")
    year, month = (int(p) for p in first.split("-"))
    last = year * 12 + month - 1 + int(length.removesuffix("m")) - 1
    last_year, last_month = divmod(last, 12)
    last_month += 1
    if (last_year, last_month) == (year, month):
        return f"{year}年{month}月" if zh else first
    if not zh:
        return f"{first} to {last_year}-{last_month:02d}"
    if last_year == year:
        return f"{year}年{month}–{last_month}月"
    return f"{year}年{month}月–{last_year}年{last_month}月"


def _scored(dimensions: Sequence[tuple[str, str]], values: Mapping[str, Any], zh: bool) -> str:
    """ "总体满意度 2/5 · 响应速度 3/5" in the learner's language."""
    names = (label.split(" · ")[0 if zh else 1] for _, label in dimensions)
    return " · ".join(f"{n} {values[k]}/5" for n, (k, _) in zip(names, dimensions, strict=True))


def low_periodic_follow_up(
    survey_id: UUID,
    *,
    learner: Learner,
    locale: str,
    period: str,
    answer: PeriodicAnswerIn,
    at: datetime,
) -> TicketSubmitted:
    """The follow-up ticket a low periodic answer opens for a supervisor (R9.2), with every
    score and the comment, in the learner's language. Its id is the survey's: one per answer."""
    zh = locale != "en"
    subject, opening, wrote, course = _FOLLOW_UP["zh" if zh else "en"]
    scores = answer.model_dump()
    lines = [
        opening.format(period=_period_words(period, zh)),
        _scored(DIMENSIONS, scores, zh),
        _scored(TEACHING_DIMENSIONS, scores, zh),
        *(
            course.format(course=c.course_id) + _scored(COURSE_DIMENSIONS, c.model_dump(), zh)
            for c in answer.courses
        ),
    ]
    if answer.comment:
        lines.append(wrote + answer.comment)
    return TicketSubmitted(
        ticket_id=uuid5(survey_id, LOW_PERIODIC_SCORE),
        channel=Channel.SERVICE,
        source=LOW_PERIODIC_SCORE,
        external_id=f"{LOW_PERIODIC_SCORE}:{survey_id}",
        learner=learner,
        subject=subject.format(overall=answer.overall),
        description="\n".join(lines),
        language="zh" if zh else "en",
        submitted_at=at,
    )
