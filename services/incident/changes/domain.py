"""The pure parts of course changes: what course operations may announce, what a learner
reads about it in their language, and what a decision on a learner's own request says."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.incident.domain import CourseId, Wording
from shared.events import ChangeKind
from shared.text import Line, Text

NUMBER_PATTERN = r"CC-[0-9]{6,}"
COURSE_OPS = "course_ops"


class ChangeIn(BaseModel):
    """A change the company makes to a course: what changes (old → new), why, what it means for
    the learner and what the company offers for it, and when it takes effect."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    course_id: CourseId
    course_title: Line | None = Field(None, min_length=1, max_length=200)
    kind: ChangeKind
    old: Line | None = Field(None, min_length=1, max_length=200)
    new: Line | None = Field(None, min_length=1, max_length=200)
    reason: Text = Field(min_length=1, max_length=2000)
    reason_en: Text | None = Field(None, min_length=1, max_length=2000)
    impact: Text = Field(min_length=1, max_length=2000)
    impact_en: Text | None = Field(None, min_length=1, max_length=2000)
    remedy: Text = Field(min_length=1, max_length=2000)
    remedy_en: Text | None = Field(None, min_length=1, max_length=2000)
    effective_at: AwareDatetime

    def check_at(self, at: datetime) -> Self:
        """A new teacher, time or mode needs the new value; a schedule cannot move to a time
        already past (`at` is now)."""
        if self.kind != ChangeKind.CANCELLATION and self.new is None:
            raise ValueError(f"new: a {self.kind.value} change says what it changes to")
        if self.kind == ChangeKind.SCHEDULE and self.effective_at < at:
            raise ValueError(
                f"effective_at: a schedule change cannot take effect in the past "
                f"({self.effective_at.isoformat()})"
            )
        return self


class DecisionIn(BaseModel):
    """Course operations' answer to a learner's own change request, as the learner reads it."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    decision: Literal["approved", "declined"]
    note: Text = Field(min_length=1, max_length=2000)
    note_en: Text | None = Field(None, min_length=1, max_length=2000)


KIND_WORDS = {
    "zh": {
        "teacher": "更换老师",
        "schedule": "上课时间调整",
        "cancellation": "课程取消",
        "mode": "上课方式调整",
    },
    "en": {
        "teacher": "new teacher",
        "schedule": "new schedule",
        "cancellation": "cancelled",
        "mode": "new class mode",
    },
}
LABELS = {
    "zh": {
        "title": "【课程变更】{course}：{kind}",
        "change": "变更：{old} → {new}",
        "effective": "生效时间：{at}",
        "reason": "原因：{text}",
        "impact": "对您的影响：{text}",
        "remedy": "我们的补救：{text}",
        "reply": "有疑问或需要调整，请在此回复：{url}",
    },
    "en": {
        "title": "[Course change] {course}: {kind}",
        "change": "Change: {old} → {new}",
        "effective": "Takes effect: {at}",
        "reason": "Why: {text}",
        "impact": "What it means for you: {text}",
        "remedy": "What we offer: {text}",
        "reply": "Questions, or need another arrangement? Reply here: {url}",
    },
}
DECISION_TITLES = {
    ("approved", "zh"): "【课程调整申请已批准】工单 {number}",
    ("approved", "en"): "[Change request approved] {number}",
    ("declined", "zh"): "【课程调整申请未获批准】工单 {number}",
    ("declined", "en"): "[Change request declined] {number}",
}


@dataclass(frozen=True, slots=True)
class ChangeWords:
    """A change as stored, for the learner's notice."""

    number: str
    course: str
    kind: str
    old: str | None
    new: str | None
    effective_at: datetime
    reason: Wording
    impact: Wording
    remedy: Wording


def change_notice(words: ChangeWords, *, locale: str, reply_url: str) -> tuple[str, str]:
    """A learner's notice of a change in their language: title, then the change, when it takes
    effect, the reason, the impact and the remedy, and the reply link last."""
    lang = "en" if locale == "en" else "zh"
    label = LABELS[lang]
    title = label["title"].format(course=words.course, kind=KIND_WORDS[lang][words.kind])
    lines = []
    if words.new is not None:
        lines.append(label["change"].format(old=words.old or "—", new=words.new))
    lines += [
        label["effective"].format(at=words.effective_at.strftime("%Y-%m-%d %H:%M")),
        label["reason"].format(text=words.reason.of(lang)),
        label["impact"].format(text=words.impact.of(lang)),
        label["remedy"].format(text=words.remedy.of(lang)),
    ]
    body = "\n".join(lines)[: 4000 - 200 - len(reply_url)]
    return f"{title} ({words.number})"[:200], f"{body}\n\n{label['reply'].format(url=reply_url)}"


def decision_notice(decision: str, *, number: str, note: Wording, locale: str) -> tuple[str, str]:
    """Course operations' answer to the learner's request `number`."""
    lang = "en" if locale == "en" else "zh"
    return DECISION_TITLES[(decision, lang)].format(number=number), note.of(lang)[:4000]
