"""survey's decisions: what a valid answer is, and which answers reopen the case."""

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

DIMENSIONS = (
    ("overall", "总体满意度 · Overall"),
    ("response_speed", "响应速度 · Response speed"),
    ("problem_solving", "解决问题能力 · Problem solving"),
    ("attitude", "服务态度 · Attitude"),
)


class AnswerIn(BaseModel):
    """A learner's answer: four scores from 1 to 5 and an optional comment (R9.1)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    overall: int = Field(ge=1, le=5)
    response_speed: int = Field(ge=1, le=5)
    problem_solving: int = Field(ge=1, le=5)
    attitude: int = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=2000)


def is_low(answer: AnswerIn, threshold: int) -> bool:
    """A low overall score is not filed away: it reopens the case (R9.2)."""
    return answer.overall <= threshold


def due_at(resolved_at: datetime, delay_seconds: float) -> datetime:
    return resolved_at + timedelta(seconds=delay_seconds)
