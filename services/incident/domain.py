"""incident's pure decisions: what the API accepts, who a notice goes to and on which channel,
what the response group reads (e-mail and WeCom / DingTalk robot), and which changes an
incident allows."""

import base64
import hashlib
import hmac
import urllib.parse
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events import (
    AlertDimension,
    Category,
    Channel,
    IncidentCriteria,
    IncidentSeverity,
    IncidentStatus,
)
from shared.text import Line, Text


class NotFound(Exception):
    """No such incident, alert or link (404)."""


class Conflict(Exception):
    """The incident is not in a state where this makes sense (409)."""


class Forbidden(Exception):
    """The caller's role does not allow this (403)."""


class Audience(StrEnum):
    LINKED = "linked"  # the learners of the incident's linked tickets
    ENROLLED = "enrolled"  # everyone enrolled in the incident's courses


Keyword = Annotated[Line, Field(min_length=1, max_length=50)]
CourseId = Annotated[Line, Field(min_length=1, max_length=100)]


class CriteriaIn(BaseModel):
    """Which tickets belong to the incident: every criterion given must hold (at least one)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    category: Category | None = None
    courses: tuple[CourseId, ...] = Field((), max_length=50)
    channel: Channel | None = None
    keywords: tuple[Keyword, ...] = Field(
        (), max_length=20, description="Any one in the subject or description matches."
    )

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not (self.category or self.courses or self.channel or self.keywords):
            raise ValueError("give at least one of category, courses, channel or keywords")
        return self

    def as_event(self) -> IncidentCriteria:
        return IncidentCriteria(
            category=self.category,
            courses=self.courses,
            channel=self.channel,
            keywords=self.keywords,
        )


class IncidentIn(BaseModel):
    """An incident opened by hand, or from an alert (`alert_id`: its criteria and title are
    the alert's unless given)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    title: Line | None = Field(None, min_length=1, max_length=200)
    title_en: Line | None = Field(None, min_length=1, max_length=200)
    severity: IncidentSeverity = IncidentSeverity.SEV2
    criteria: CriteriaIn | None = None
    owner_id: Line | None = Field(None, min_length=1, max_length=100)
    alert_id: UUID | None = None

    @model_validator(mode="after")
    def _described(self) -> Self:
        if self.alert_id is None and (self.title is None or self.criteria is None):
            raise ValueError("give a title and criteria, or the alert_id to open it from")
        return self


class UpdateIn(BaseModel):
    """A progress update: what changed and what to tell (`public`: on the status page)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    status: Literal["investigating", "identified", "monitoring"] | None = None
    severity: IncidentSeverity | None = None
    owner_id: Line | None = Field(None, min_length=1, max_length=100)
    criteria: CriteriaIn | None = None
    message: Text | None = Field(None, min_length=1, max_length=2000)
    message_en: Text | None = Field(None, min_length=1, max_length=2000)
    public: bool = True

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not (self.status or self.severity or self.owner_id or self.criteria or self.message):
            raise ValueError("give a status, severity, owner_id, criteria or message")
        return self


class AnnouncementIn(BaseModel):
    """A bulk notice to the affected learners, also shown on the status page."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    audience: Audience
    message: Text = Field(min_length=1, max_length=2000)
    message_en: Text | None = Field(None, min_length=1, max_length=2000)


class ResolveIn(BaseModel):
    """What fixed it: the status page's last word, each linked ticket's resolution and the
    one message each learner gets."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    resolution: Text = Field(min_length=1, max_length=2000)
    resolution_en: Text | None = Field(None, min_length=1, max_length=2000)


class CompensationIn(BaseModel):
    """A compensation batch for the incident's affected learners (the linked tickets'): a
    coupon worth `amount` `currency`, `points`, or `days` more of `course_id` (the incident's
    course when it names one). Issued only once a second supervisor approves it."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    kind: Literal["coupon", "points", "extension"]
    amount: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$")] | None = None
    currency: Annotated[str, Field(pattern="^[A-Z]{3}$")] = "CNY"
    points: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    days: Annotated[int, Field(ge=1, le=3650)] | None = None
    course_id: CourseId | None = None
    reason: Text = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _one_remedy(self) -> Self:
        wanted = {"coupon": "amount", "points": "points", "extension": "days"}[self.kind]
        given = [f for f in ("amount", "points", "days") if getattr(self, f) is not None]
        if given != [wanted]:
            raise ValueError(f"a {self.kind} gives {wanted}, and only {wanted}")
        if self.kind == "coupon" and self.amount is not None and float(self.amount) <= 0:
            raise ValueError("a coupon's amount is more than 0")
        if self.course_id is not None and self.kind != "extension":
            raise ValueError("course_id is for an extension")
        return self


def check_approver(requested_by: str, approver: str, approved_by: str | None) -> None:
    if approved_by is not None:
        raise Conflict(f"the batch was approved by {approved_by} already")
    if approver == requested_by:
        raise Forbidden("the batch's requester cannot approve it: a second supervisor does")


def extension_course(given: str | None, courses: tuple[str, ...]) -> str:
    """The course an extension extends: the one given, else the incident's only course."""
    if given is not None:
        return given
    if len(courses) != 1:
        raise Conflict("the incident names no single course: give the extension's course_id")
    return courses[0]


def check_open(status: str) -> None:
    if status == IncidentStatus.RESOLVED:
        raise Conflict("the incident is resolved")


def criteria_from_alert(dimension: str, value: str, keywords: list[str]) -> IncidentCriteria:
    """An alert's key, narrowed by its problem's words when it has some: a spike on the app
    channel is about the tickets saying what the spike's tickets said, not every app ticket."""
    words = tuple(keywords[:3])
    if dimension == AlertDimension.CATEGORY:
        return IncidentCriteria(category=Category(value), keywords=words)
    if dimension == AlertDimension.COURSE:
        return IncidentCriteria(courses=(value,), keywords=words)
    if dimension == AlertDimension.CHANNEL:
        return IncidentCriteria(channel=Channel(value), keywords=words)
    return IncidentCriteria(category=Category(value), keywords=words)


# ---- learners ---------------------------------------------------------------------------------

NOTIFY_CHANNELS = ("email", "wechat", "weibo")


def learner_key(learner: dict[str, Any]) -> str | None:
    """Who a learner is across their tickets: their LMS id, else a contact; None when there is
    no way to tell (an anonymous suggestion), and no way to reach them either."""
    for field, prefix in (
        ("learner_id", "id"),
        ("email", "email"),
        ("wechat_openid", "wechat"),
        ("phone", "phone"),
        ("weibo_uid", "weibo"),
    ):
        if learner.get(field):
            return f"{prefix}:{str(learner[field]).lower()}"
    return None


def notice_channel(learner: dict[str, Any], preferred: str | None) -> str | None:
    """notify's sender for a learner: their preferred channel when it is one notify sends on
    and the learner has its contact, else e-mail, WeChat, Weibo, then SMS to the phone."""
    contact = {
        "email": learner.get("email"),
        "wechat": learner.get("wechat_openid"),
        "weibo": learner.get("weibo_uid"),
        "sms": learner.get("phone"),
    }
    if preferred in NOTIFY_CHANNELS and contact[preferred]:
        return preferred
    return next((c for c, has in contact.items() if has), None)


NOTICE_TITLES = {
    ("announcement", "zh"): "【服务公告】{title}",
    ("announcement", "en"): "[Service notice] {title}",
    ("resolution", "zh"): "【已恢复】{title}",
    ("resolution", "en"): "[Resolved] {title}",
}
NOTICE_FOOTERS = {
    "zh": "最新进展请看：{url}",
    "en": "Follow the progress at {url}",
}


@dataclass(frozen=True, slots=True)
class Wording:
    """The same words in Chinese and, when given, English (else the Chinese)."""

    zh: str
    en: str | None = None

    def of(self, locale: str) -> str:
        return self.en if locale == "en" and self.en else self.zh


def notice_text(
    *, kind: str, locale: str, title: Wording, message: Wording, status_url: str
) -> tuple[str, str]:
    """A learner notice's title and body in their language, ending with the status page."""
    lang = "en" if locale == "en" else "zh"
    heading = NOTICE_TITLES[(kind, lang)].format(title=title.of(lang))[:200]
    body = f"{message.of(lang)}\n\n{NOTICE_FOOTERS[lang].format(url=status_url)}"
    return heading, body[:4000]


# ---- the response group -----------------------------------------------------------------------

SEVERITY_WORDS = {"sev1": "P1 严重", "sev2": "P2 重大", "sev3": "P3 一般"}


def page_text(
    *, what: str, number: str, title: str, severity: str, status: str, message: str, url: str
) -> tuple[str, str]:
    """The response group's message (e-mail subject and body; the robot's markdown)."""
    subject = f"[{number}] {SEVERITY_WORDS[severity]} · {what}: {title}"[:200]
    body = "\n".join(
        [
            f"### {number} {title}",
            f"- 级别 Severity: {SEVERITY_WORDS[severity]}",
            f"- 状态 Status: {status}",
            f"- {message}",
            f"- 状态页 Status page: {url}",
        ]
    )
    return subject, body


def webhook_payload(
    fmt: Literal["wecom", "dingtalk"], *, subject: str, body: str, urgent: bool
) -> dict[str, Any]:
    """The robot's markdown message: WeCom group robot (`markdown.content`, at most 4096
    bytes) or DingTalk custom robot (`markdown.title` + `text`; a P1 notifies everyone)."""
    if fmt == "wecom":
        content = body.encode()[:4096].decode(errors="ignore")
        return {"msgtype": "markdown", "markdown": {"content": content}}
    return {
        "msgtype": "markdown",
        "markdown": {"title": subject, "text": body},
        "at": {"isAtAll": urgent},
    }


def dingtalk_signed(url: str, secret: str, *, timestamp_ms: int) -> str:
    """DingTalk's signed robot URL: `timestamp` and `sign` = base64(HMAC-SHA256 of
    "timestamp\\nsecret" keyed by the secret), URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    sign = urllib.parse.quote_plus(base64.b64encode(digest.digest()).decode())
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}timestamp={timestamp_ms}&sign={sign}"


def robot_refusal(fmt: str, answer: dict[str, Any]) -> str | None:
    """Both robots answer HTTP 200 with `errcode` 0 when they took the message; anything else
    is the reason they did not."""
    if answer.get("errcode") == 0:
        return None
    return f"{fmt} robot refused: {answer.get('errcode')} {answer.get('errmsg')}"
