"""survey's decisions: what a valid answer is, which answers go to a supervisor, and when a
survey can be answered."""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import PermanentError
from shared.events import Learner
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


class NotOpen(PermanentError):
    """The survey was answered already (or withdrawn)."""


def check_open(status: str) -> None:
    """Only a survey that was sent and not yet answered takes an answer."""
    if status == "answered":
        raise NotOpen("this survey was already answered")
    if status != "requested":
        raise UnknownSurvey(f"this survey is {status}")
