"""The event envelope and every v1 event: the single source of truth for what crosses Kafka.

Events are msgspec Structs: every consumer parses each record once, straight into typed
structures, in C. Constructing an event does not validate it (its producer built it from
values validated where they entered); decoding one does, against the same types and bounds,
so a malformed record from elsewhere is refused, naming the field. What people and other
systems submit (`Submission`, `InboundSubmission`) is validated at the edge with pydantic,
whose error messages the HTTP API returns.
"""

from __future__ import annotations

from collections.abc import Container
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, ClassVar, Generic, TypeVar, overload
from uuid import UUID

import msgspec
from msgspec import Meta, Struct
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator
from uuid6 import uuid7

from shared import topics
from shared.emails import EmailAddress
from shared.text import Line, Text

# The largest integer every JSON reader keeps exact (JavaScript's Number.MAX_SAFE_INTEGER).
MAX_SAFE_INTEGER = 2**53 - 1


class Channel(StrEnum):
    """Where a submission came from."""

    WEB = "web"
    APP = "app"
    EMAIL = "email"
    HOTLINE = "hotline"
    CHAT = "chat"
    WECHAT = "wechat"
    WEIBO = "weibo"
    SUGGESTION_BOX = "suggestion_box"
    SERVICE = "service"


class Category(StrEnum):
    """Triage categories (R3.1)."""

    TECHNICAL = "technical"
    COURSE_CONTENT = "course_content"
    PAYMENT_REFUND = "payment_refund"
    ACCOUNT_SECURITY = "account_security"
    COURSE_CHANGE = "course_change"
    LEARNING_GUIDANCE = "learning_guidance"
    EXAM_CERTIFICATE = "exam_certificate"
    COMPLAINT = "complaint"
    SUGGESTION = "suggestion"
    OTHER = "other"


class Priority(StrEnum):
    """Priorities (R3.2), most pressing first."""

    URGENT = "urgent"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ReopenReason(StrEnum):
    NOT_SOLVED = "not_solved"
    LOW_SCORE = "low_score"
    LEARNER_MESSAGE = "learner_message"


class EscalationReason(StrEnum):
    LOW_SCORE = "low_score"


class CloseReason(StrEnum):
    CONFIRMED = "confirmed"
    AUTO_CLOSED = "auto_closed"
    MERGED = "merged"  # a duplicate closed into the ticket that carries on its conversation


class NotificationKind(StrEnum):
    CONFIRMATION = "confirmation"
    REPLY = "reply"
    CONFIRM_REQUEST = "confirm_request"
    SURVEY = "survey"
    ASSIGNED = "assigned"  # progress: an agent has the ticket
    QUEUED = "queued"  # progress: waiting in a team's queue
    SLA_WARNING = "sla_warning"  # to the assignee: a target is near
    SLA_BREACHED = "sla_breached"  # to a supervisor (level 1) or management (level 2)
    SLA_AT_RISK = "sla_at_risk"  # to a supervisor: a queued ticket will likely breach
    CASE_OUTCOME = "case_outcome"  # a complaint case's finding and remedies
    MENTION = "mention"  # to an agent: a colleague's internal note mentions them
    MERGED = "merged"  # to the learner: their request continues under another ticket
    INCIDENT_NOTICE = "incident_notice"  # an incident's announcement or resolution notice


class _Struct(Struct, frozen=True, kw_only=True):
    """Immutable, keyword-only; unknown fields are ignored when decoding (a newer producer
    may add optional fields without a new version)."""


Name = Annotated[str, Meta(min_length=1, max_length=200)]
Email = Annotated[str, Meta(min_length=3, max_length=320)]
Phone = Annotated[str, Meta(max_length=40)]
Id = Annotated[str, Meta(max_length=100)]
Score = Annotated[int, Meta(ge=1, le=5)]


class Learner(_Struct, frozen=True, kw_only=True):
    """Who raised the ticket and how to reach them: every contact is optional, because each
    channel knows a different one (a caller's phone, a WeChat user's openid); an anonymous
    suggestion has none.

    The e-mail address was validated where it entered (intake's `Submission`); events carry
    it as a plain string so that no consumer pays for validating it again.
    """

    name: Name
    email: Email | None = None
    phone: Phone | None = None
    learner_id: Id | None = None
    wechat_openid: Id | None = None
    weibo_uid: Id | None = None


class LearnerCourse(_Struct, frozen=True, kw_only=True):
    course_id: Id
    title: Annotated[str, Meta(max_length=200)] | None = None
    progress_pct: Annotated[float, Meta(ge=0, le=100)] = 0
    next_class_at: datetime | None = None


class LearnerExam(_Struct, frozen=True, kw_only=True):
    exam_id: Id
    title: Annotated[str, Meta(max_length=200)] | None = None
    at: datetime


class LearnerContext(_Struct, frozen=True, kw_only=True):
    """What the LMS last said about the learner (careloop.learners.v1), as desk matched it to
    the ticket: what triage weighs (tier, classes and exams soon) and how to answer."""

    learner_id: Id
    locale: Annotated[str, Meta(pattern="^(zh|en)$")] = "zh"
    tier: Annotated[str, Meta(pattern="^(standard|vip)$")] = "standard"
    preferred_channel: Channel | None = None
    courses: tuple[LearnerCourse, ...] = ()
    exams: tuple[LearnerExam, ...] = ()
    updated_at: datetime


class Call(_Struct, frozen=True, kw_only=True):
    """A hotline call a ticket came from, as the call-centre system recorded it."""

    caller: Phone
    agent: Id | None = None
    started_at: datetime
    ended_at: datetime | None = None
    ivr_choice: Annotated[str, Meta(max_length=100)] | None = None
    recording_url: Annotated[str, Meta(max_length=2000)] | None = None


class Attachment(_Struct, frozen=True, kw_only=True):
    """Metadata of an attachment; the bytes live in object storage, not on Kafka."""

    name: Annotated[str, Meta(max_length=255)]
    content_type: Annotated[str, Meta(max_length=100)]
    size: Annotated[int, Meta(ge=0)]
    url: Annotated[str, Meta(max_length=2000)] | None = None  # None: metadata only (e-mail)


class SubmittedAttachment(BaseModel):
    """An attachment as a sender describes it, checked where it enters; unknown fields are
    refused, not dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: Line = Field(min_length=1, max_length=255)
    content_type: Line = Field(
        min_length=3,
        max_length=100,
        pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(;.*)?$",
        description="A media type, e.g. `image/png`.",
    )
    size: StrictInt = Field(ge=0, le=MAX_SAFE_INTEGER, description="Bytes.")
    url: Line = Field(
        max_length=2000, pattern=r"^https?://\S+$", description="Where the bytes are: http(s) only."
    )

    def as_event(self) -> Attachment:
        return Attachment(
            name=self.name, content_type=self.content_type, size=self.size, url=self.url
        )


class EventData(_Struct, frozen=True, kw_only=True):
    """Base of every event payload; `TYPE`, `VERSION` and `TOPIC` identify it on the wire.

    Every v1 event is about one ticket, and its id is the Kafka key: a ticket's events stay in
    order within a topic.
    """

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[str]

    ticket_id: UUID


# ---- careloop.intake.v1 -------------------------------------------------------------------


# The `source` of the ticket a low periodic-survey score opens (R9.2: "a low score is not filed
# away"): a follow-up that routing gives to a supervisor.
LOW_PERIODIC_SCORE = "periodic_survey_low_score"


class TicketSubmitted(EventData, frozen=True, kw_only=True):
    TYPE = "ticket.submitted"
    TOPIC = topics.INTAKE

    ticket_id: UUID
    channel: Channel
    source: str | None = None
    external_id: str | None = None
    learner: Learner
    subject: str
    description: str
    course_id: str | None = None
    order_id: str | None = None
    language: str
    attachments: tuple[Attachment, ...] = ()
    submitted_at: datetime
    # A learner message that may continue a ticket (see desk's `on_submitted`): its own id,
    # deterministic from the channel's message id, so a redelivery appends it once.
    message_id: UUID | None = None
    # A ticket number the message names (an e-mail subject's `[CL-000123]`).
    reply_to: Annotated[str, Meta(pattern=r"^CL-[0-9]{6,}$")] | None = None
    # Channels without threads (WeChat, Weibo, SMS): desk may attach the message to the same
    # learner's latest open ticket on this channel.
    by_contact: bool = False
    call: Call | None = None


# ---- careloop.tickets.v1 ------------------------------------------------------------------


class TicketCreated(EventData, frozen=True, kw_only=True):
    TYPE = "ticket.created"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    channel: Channel
    source: str | None = None
    learner: Learner
    subject: str
    description: str
    course_id: str | None = None
    language: str
    created_at: datetime
    learner_context: LearnerContext | None = None
    related_ticket_id: UUID | None = None  # the ticket this one came from (a stranger's reply)
    portal_url: str | None = None  # the learner's signed link to the ticket's page


class TicketMessageReceived(EventData, frozen=True, kw_only=True):
    """A learner wrote again on a ticket, on any channel (R1.5); `reopened` when that
    reopened a resolved ticket (desk then also emits `ticket.reopened`)."""

    TYPE = "ticket.message_received"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    message_id: UUID
    channel: Channel
    learner: Learner
    body: str
    attachments: tuple[Attachment, ...] = ()
    assignee_id: str | None = None
    reopened: bool = False
    portal_url: str | None = None
    received_at: datetime


class TicketReplied(EventData, frozen=True, kw_only=True):
    TYPE = "ticket.replied"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    reply_id: UUID
    agent_id: str
    body: str
    first_response: bool
    created_at: datetime
    replied_at: datetime
    portal_url: str | None = None


class TicketResolved(EventData, frozen=True, kw_only=True):
    TYPE = "ticket.resolved"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    agent_id: str
    resolution: str
    confirm_url: str
    created_at: datetime
    resolved_at: datetime
    portal_url: str | None = None
    # How it was resolved, when that is more than an agent's answer: "self_served" when the
    # learner said an offered article solved it (knowledge counts those as deflected).
    resolution_code: str | None = None


class TicketReopened(EventData, frozen=True, kw_only=True):
    TYPE = "ticket.reopened"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    reason: ReopenReason
    previous_agent_id: str | None
    needs_supervisor: bool
    reopened_at: datetime


class TicketClosed(EventData, frozen=True, kw_only=True):
    TYPE = "ticket.closed"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    reason: CloseReason
    created_at: datetime
    closed_at: datetime


class TicketRetriaged(EventData, frozen=True, kw_only=True):
    """A person corrected a ticket's triage (R3; audited in desk's history). Routing moves it
    to the new category's team when that differs, and its SLA clocks take the new priority."""

    TYPE = "ticket.retriaged"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    category: Category
    priority: Priority
    previous_category: Category | None = None
    previous_priority: Priority | None = None
    by: str  # the agent or supervisor who corrected it
    reason: str
    retriaged_at: datetime


class TicketEscalated(EventData, frozen=True, kw_only=True):
    """An open ticket (queued, assigned or reopened) must go to a supervisor.

    A resolved or closed ticket is reopened instead (`ticket.reopened` with
    `needs_supervisor`); this is for one that is still being worked, e.g. the learner said
    "not solved" and then gave a low score. Routing moves it from an ordinary agent (or the
    ordinary queue) to a supervisor; desk follows routing's `ticket.assigned` / `.queued`.
    """

    TYPE = "ticket.escalated"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    reason: EscalationReason
    assignee_id: str | None  # who holds the ticket now, as desk knows it
    escalated_at: datetime


# ---- careloop.routing.v1 ------------------------------------------------------------------


class TicketTriaged(EventData, frozen=True, kw_only=True):
    TYPE = "ticket.triaged"
    TOPIC = topics.ROUTING

    ticket_id: UUID
    channel: Channel
    category: Category
    priority: Priority
    team: str
    language: str
    matched: tuple[str, ...] = ()
    first_response_due_at: datetime
    resolution_due_at: datetime


class TicketRouted(EventData, frozen=True, kw_only=True):
    """A new ticket's triage and where it went, in one event: to `agent_id`, or queued for
    its `team` when nobody can take it now (`agent_id` is null).

    This replaces `ticket.triaged` followed by `ticket.assigned` / `ticket.queued` for a new
    ticket. Later placements (a reopened ticket, a queue drained, an escalation) still come
    as `ticket.assigned` and `ticket.queued`.
    """

    TYPE = "ticket.routed"
    TOPIC = topics.ROUTING

    ticket_id: UUID
    channel: Channel
    category: Category
    priority: Priority
    team: str
    language: str
    matched: tuple[str, ...] = ()
    first_response_due_at: datetime
    resolution_due_at: datetime
    agent_id: str | None = None
    routed_at: datetime
    # How sure triage was of the category (the model's top probability; None from routing
    # before the learned classifier), and whether that is below the review threshold.
    confidence: Annotated[float, Meta(ge=0, le=1)] | None = None
    needs_review: bool = False
    reason: str | None = None  # triage's one-line why
    collaborators: tuple[str, ...] = ()  # other teams the ticket needs too (R3.3)
    # A known problem: the open incident the ticket matched on arrival. It is held, neither
    # assigned nor queued (the incident's announcements answer it), and its confirmation
    # points to the incident's status page.
    incident_id: UUID | None = None
    incident_url: str | None = None


class TicketAssigned(EventData, frozen=True, kw_only=True):
    TYPE = "ticket.assigned"
    TOPIC = topics.ROUTING

    ticket_id: UUID
    agent_id: str
    team: str
    priority: Priority
    assigned_at: datetime


class TicketQueued(EventData, frozen=True, kw_only=True):
    TYPE = "ticket.queued"
    TOPIC = topics.ROUTING

    ticket_id: UUID
    team: str
    priority: Priority
    queued_at: datetime


# ---- careloop.notify.v1 -------------------------------------------------------------------


class NotificationSent(EventData, frozen=True, kw_only=True):
    TYPE = "notification.sent"
    TOPIC = topics.NOTIFY

    delivery_id: int
    ticket_id: UUID  # an incident notice to a learner without a ticket: the notice's id
    kind: NotificationKind
    channel: str = "email"
    sent_at: datetime


class NotificationFailed(EventData, frozen=True, kw_only=True):
    TYPE = "notification.failed"
    TOPIC = topics.NOTIFY

    delivery_id: int
    ticket_id: UUID  # as in notification.sent
    kind: NotificationKind
    channel: str = "email"
    attempts: int
    error: str
    failed_at: datetime


# ---- careloop.survey.v1 -------------------------------------------------------------------


class SurveyRequested(EventData, frozen=True, kw_only=True):
    TYPE = "survey.requested"
    TOPIC = topics.SURVEY

    survey_id: UUID
    ticket_id: UUID
    survey_url: str
    requested_at: datetime


class SurveyAnswered(EventData, frozen=True, kw_only=True):
    TYPE = "survey.answered"
    TOPIC = topics.SURVEY

    survey_id: UUID
    ticket_id: UUID
    overall: Score
    response_speed: Score
    problem_solving: Score
    attitude: Score
    comment: str | None = None
    answered_at: datetime


class SurveyLowScore(EventData, frozen=True, kw_only=True):
    TYPE = "survey.low_score"
    TOPIC = topics.SURVEY

    survey_id: UUID
    ticket_id: UUID
    overall: int
    answered_at: datetime


class SurveyPeriodicRequested(EventData, frozen=True, kw_only=True):
    """The follow-up programme's periodic survey for one active learner (R9.3, 002 §五.1): for
    notify to e-mail `survey_url` in the learner's locale. Once per (learner, period) and never
    within the learner's quiet period. Not about a ticket."""

    TYPE = "survey.periodic_requested"
    TOPIC = topics.SURVEY

    ticket_id: UUID | None = None  # type: ignore[assignment]
    survey_id: UUID
    learner: Learner
    locale: Annotated[str, Meta(pattern="^(zh|en)$")] = "zh"
    period: Annotated[str, Meta(max_length=20)]
    survey_url: str
    requested_at: datetime


class CourseScores(_Struct, frozen=True, kw_only=True):
    """A learner's course satisfaction for one enrolled course (002 §五.2)."""

    course_id: Id
    usefulness: Score
    difficulty: Score
    structure: Score


class SurveyPeriodicAnswered(EventData, frozen=True, kw_only=True):
    """A learner's answer to a periodic survey: the service dimensions, each enrolled course's
    usefulness, difficulty and structure, and the teaching (teacher level, method, attitude).
    metrics counts each as a `careloop_survey_score` dimension."""

    TYPE = "survey.periodic_answered"
    TOPIC = topics.SURVEY

    ticket_id: UUID | None = None  # type: ignore[assignment]
    survey_id: UUID
    learner_id: Id
    period: Annotated[str, Meta(max_length=20)]
    overall: Score
    response_speed: Score
    problem_solving: Score
    attitude: Score
    courses: tuple[CourseScores, ...] = ()
    teacher_level: Score
    teaching_method: Score
    teaching_attitude: Score
    comment: str | None = None
    answered_at: datetime


# ---- SLA ----------------------------------------------------------------------------------


class SlaTarget(StrEnum):
    """Which R5.1 target a clock watches."""

    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class SlaRecipient(_Struct, frozen=True, kw_only=True):
    """An agent an SLA event is for, and where notify e-mails them (None: no address known)."""

    agent_id: Id
    name: Annotated[str, Meta(max_length=200)] | None = None
    role: Annotated[str, Meta(max_length=20)]
    email: Email | None = None


class TicketPendingLearner(EventData, frozen=True, kw_only=True):
    """The agent waits on the learner (information, a test): the SLA clocks pause (R5.3)."""

    TYPE = "ticket.pending_learner"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    agent_id: str
    paused_at: datetime


class TicketResumed(EventData, frozen=True, kw_only=True):
    """The learner answered a ticket pending on them: it is the assignee's again, and the SLA
    clocks run on from where they paused."""

    TYPE = "ticket.resumed"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    message_id: UUID | None = None
    resumed_at: datetime


class SlaWarning(EventData, frozen=True, kw_only=True):
    """`share` of a target has passed (CARELOOP_ROUTING_SLA_WARN_SHARE): the assignee (or,
    while nobody holds the ticket, the team's supervisors) is told before it breaches."""

    TYPE = "sla.warning"
    TOPIC = topics.ROUTING

    ticket_id: UUID
    target: SlaTarget
    due_at: datetime
    priority: Priority
    team: str
    category: Category | None = None
    assignee_id: str | None = None
    recipients: tuple[SlaRecipient, ...] = ()
    share: float
    warned_at: datetime


class SlaBreached(EventData, frozen=True, kw_only=True):
    """A target passed: level 1 escalates to the team's supervisors; level 2 (urgent and
    complaint tickets, at CARELOOP_ROUTING_SLA_MANAGEMENT_SHARE of the target) to management."""

    TYPE = "sla.breached"
    TOPIC = topics.ROUTING

    ticket_id: UUID
    target: SlaTarget
    level: Annotated[int, Meta(ge=1, le=2)]
    due_at: datetime
    priority: Priority
    team: str
    category: Category | None = None
    assignee_id: str | None = None
    recipients: tuple[SlaRecipient, ...] = ()
    breached_at: datetime


class SlaAtRisk(EventData, frozen=True, kw_only=True):
    """A queued ticket's predicted first response (queue position over the team's recent
    throughput) falls after its due time; raised once, before the breach. `overflow_team`:
    the ticket moved to that team's queue (CARELOOP_ROUTING_SLA_OVERFLOW)."""

    TYPE = "sla.at_risk"
    TOPIC = topics.ROUTING

    ticket_id: UUID
    target: SlaTarget = SlaTarget.FIRST_RESPONSE
    due_at: datetime
    predicted_at: datetime | None  # None: the team assigned nothing lately
    queue_position: int
    priority: Priority
    team: str
    assignee_id: str | None = None
    recipients: tuple[SlaRecipient, ...] = ()
    overflow_team: str | None = None
    raised_at: datetime


# ---- careloop.knowledge.v1 ----------------------------------------------------------------


class SuggestedArticle(_Struct, frozen=True, kw_only=True):
    """A published article offered for a ticket: its learner-facing page and how well it fits
    (text match weighed by category and the learners' helpful / not helpful votes)."""

    article_id: UUID
    title: Annotated[str, Meta(max_length=200)]
    url: Annotated[str, Meta(max_length=2000)]
    score: Annotated[float, Meta(ge=0)]


class ArticlesSuggested(EventData, frozen=True, kw_only=True):
    """The articles that may answer a ticket, best first, so that the confirmation and the
    learner portal can offer them without asking knowledge, and the workspace can show them.
    Sent for every `ticket.created` (with no articles when none fits: a consumer waiting for it
    knows it is not coming), and again, ranked in the ticket's category, when triage decided it
    (`ticket.routed`) or a person corrected it (`ticket.retriaged`). A later `suggested_at`
    replaces an earlier list (desk); notify's confirmation keeps the first."""

    TYPE = "articles.suggested"
    TOPIC = topics.KNOWLEDGE

    ticket_id: UUID
    language: Annotated[str, Meta(pattern="^(zh|en)$")]
    articles: tuple[SuggestedArticle, ...] = ()
    suggested_at: datetime


class ArticlePublished(EventData, frozen=True, kw_only=True):
    """An article's version is live for learners: first published, or edited while published.

    Article events are about an article, not a ticket: their Kafka key is the article's id,
    and `ticket_id` is the ticket whose reply the article was written from, when it was.
    """

    TYPE = "article.published"
    TOPIC = topics.KNOWLEDGE

    ticket_id: UUID | None = None  # type: ignore[assignment]
    article_id: UUID
    version: Annotated[int, Meta(ge=1)]
    language: Annotated[str, Meta(pattern="^(zh|en)$")]
    category: Category
    tags: tuple[str, ...] = ()
    title: Annotated[str, Meta(max_length=200)]
    url: Annotated[str, Meta(max_length=2000)]
    by: str  # the editor who published it
    published_at: datetime


class ArticleArchived(EventData, frozen=True, kw_only=True):
    """An article is no longer offered or shown to learners (its page says so)."""

    TYPE = "article.archived"
    TOPIC = topics.KNOWLEDGE

    ticket_id: UUID | None = None  # type: ignore[assignment]
    article_id: UUID
    version: Annotated[int, Meta(ge=1)]
    by: str
    archived_at: datetime


# ---- careloop.incidents.v1 ----------------------------------------------------------------
# Alerts (careloop.alerts.v1) and incidents are about a problem, not a ticket: their Kafka key
# is the alert's or incident's id, and `ticket_id` is set only where one ticket is the subject.


class AlertKind(StrEnum):
    """What the incident service's early warning saw (R11.1)."""

    VOLUME = "volume"  # more tickets of one category, course or channel than the baseline
    COMPLAINT_RATE = "complaint_rate"  # complaints' share of recent tickets above its threshold
    FAULT_RATE = "fault_rate"  # technical faults' share of recent tickets above its threshold


class AlertDimension(StrEnum):
    CATEGORY = "category"
    COURSE = "course"
    CHANNEL = "channel"
    ALL = "all"  # the rates, over every ticket


class IncidentSeverity(StrEnum):
    """How bad it is (003 §四): sev1 a platform outage, sev2 a feature or course down for many,
    sev3 a limited problem."""

    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"


class IncidentStatus(StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class NoticeKind(StrEnum):
    ANNOUNCEMENT = "announcement"  # an incident's bulk notice to affected learners
    RESOLUTION = "resolution"  # the incident is resolved: one message per learner


class IncidentCriteria(_Struct, frozen=True, kw_only=True):
    """Which tickets belong to an incident (shared.incidents.matches): every criterion given
    must hold; keywords match when any one is in the ticket's subject or description."""

    category: Category | None = None
    courses: Annotated[tuple[Id, ...], Meta(max_length=50)] = ()
    channel: Channel | None = None
    keywords: Annotated[
        tuple[Annotated[str, Meta(min_length=1, max_length=50)], ...], Meta(max_length=20)
    ] = ()


class AlertRaised(EventData, frozen=True, kw_only=True):
    """The early warning fired: tickets of one category, course or channel far above their
    learned baseline for this hour of the week (`p_value` of the count under it), or a rate
    above its threshold. `title` and `keywords` name the problem from the tickets' text."""

    TYPE = "alert.raised"
    TOPIC = topics.ALERTS

    ticket_id: UUID | None = None  # type: ignore[assignment]
    alert_id: UUID
    kind: AlertKind
    dimension: AlertDimension
    value: Annotated[str, Meta(max_length=100)]
    observed: Annotated[float, Meta(ge=0)]
    expected: Annotated[float, Meta(ge=0)]
    p_value: Annotated[float, Meta(ge=0, le=1)] | None = None  # None: a rate threshold
    window_minutes: Annotated[int, Meta(ge=1)]
    title: Annotated[str, Meta(max_length=200)]
    keywords: tuple[str, ...] = ()
    sample_ticket_ids: tuple[UUID, ...] = ()
    raised_at: datetime


class IncidentOpened(EventData, frozen=True, kw_only=True):
    """An incident was opened, from an alert or by hand; its response group is being told."""

    TYPE = "incident.opened"
    TOPIC = topics.INCIDENTS

    ticket_id: UUID | None = None  # type: ignore[assignment]
    incident_id: UUID
    number: Annotated[str, Meta(pattern=r"^INC-[0-9]{4,}$")]
    title: Annotated[str, Meta(max_length=200)]
    severity: IncidentSeverity
    criteria: IncidentCriteria
    owner_id: str | None = None
    alert_id: UUID | None = None
    status_url: Annotated[str, Meta(max_length=2000)]
    by: str  # the agent who opened it, or "incident" for the early warning
    opened_at: datetime


class IncidentUpdated(EventData, frozen=True, kw_only=True):
    """A progress update: a status, severity, owner or criteria change, with what was said."""

    TYPE = "incident.updated"
    TOPIC = topics.INCIDENTS

    ticket_id: UUID | None = None  # type: ignore[assignment]
    incident_id: UUID
    status: IncidentStatus
    severity: IncidentSeverity
    criteria: IncidentCriteria
    owner_id: str | None = None
    message: Annotated[str, Meta(max_length=2000)] | None = None
    by: str
    updated_at: datetime


class IncidentTicketLinked(EventData, frozen=True, kw_only=True):
    """A ticket belongs to an open incident: routing does not give it an agent's capacity, and
    its confirmation says it is a known problem, pointing to `status_url`. `by` None: linked on
    arrival by the incident's criteria."""

    TYPE = "incident.ticket_linked"
    TOPIC = topics.INCIDENTS

    ticket_id: UUID
    incident_id: UUID
    number: str
    title: Annotated[str, Meta(max_length=200)]
    status_url: Annotated[str, Meta(max_length=2000)]
    by: str | None = None
    linked_at: datetime


class IncidentTicketUnlinked(EventData, frozen=True, kw_only=True):
    """An agent said the ticket is not part of the incident: it is an ordinary ticket again."""

    TYPE = "incident.ticket_unlinked"
    TOPIC = topics.INCIDENTS

    ticket_id: UUID
    incident_id: UUID
    by: str
    unlinked_at: datetime


class IncidentTicketResolved(EventData, frozen=True, kw_only=True):
    """The incident is resolved: desk resolves this linked ticket with `resolution` (its
    `ticket.resolved` carries resolution_code "incident"). The learner's one message is the
    incident's `incident.notice_requested` (kind resolution), not a per-ticket reply."""

    TYPE = "incident.ticket_resolved"
    TOPIC = topics.INCIDENTS

    ticket_id: UUID
    incident_id: UUID
    resolution: Annotated[str, Meta(max_length=2000)]
    by: str
    resolved_at: datetime


class IncidentResolved(EventData, frozen=True, kw_only=True):
    """One action resolved the incident; each of its `linked_tickets` follows as
    `incident.ticket_resolved`."""

    TYPE = "incident.resolved"
    TOPIC = topics.INCIDENTS

    ticket_id: UUID | None = None  # type: ignore[assignment]
    incident_id: UUID
    resolution: Annotated[str, Meta(max_length=2000)]
    linked_tickets: Annotated[int, Meta(ge=0)]
    by: str
    resolved_at: datetime


class IncidentNoticeRequested(EventData, frozen=True, kw_only=True):
    """One message for one learner about an incident, for notify to send on `channel` (one of
    notify's senders: the learner's preferred channel when `learner` has its contact, else
    e-mail, WeChat, then SMS to the phone). `notice_id` is the event's id too, the same however
    often it is relayed: notify delivers it once. Released per channel at the pace its
    provider allows (CARELOOP_INCIDENT_NOTICE_RATES)."""

    TYPE = "incident.notice_requested"
    TOPIC = topics.INCIDENTS

    ticket_id: UUID | None = None  # type: ignore[assignment]  # the learner's linked ticket
    notice_id: UUID
    incident_id: UUID
    kind: NoticeKind
    learner: Learner
    channel: Annotated[str, Meta(pattern="^(email|sms|wechat|weibo)$")]
    locale: Annotated[str, Meta(pattern="^(zh|en)$")] = "zh"
    title: Annotated[str, Meta(max_length=200)]
    body: Annotated[str, Meta(max_length=4000)]
    status_url: Annotated[str, Meta(max_length=2000)]
    requested_at: datetime


# ---- course changes (incident) ----


class ChangeKind(StrEnum):
    """What course operations changed about a course (R8.3, seed 002 §二.3)."""

    TEACHER = "teacher"
    SCHEDULE = "schedule"
    CANCELLATION = "cancellation"
    MODE = "mode"  # online / offline


ChangeText = Annotated[str, Meta(min_length=1, max_length=2000)]


class CourseChangeSubmitted(EventData, frozen=True, kw_only=True):
    """Course operations' system announces a change the company makes to a course; incident
    checks it as its API does (a bad one is dead-lettered with the reason) and tells every
    enrolled learner once. `change_ref` is the sender's id: the same ref twice is one change.
    Each text may come in English too (`*_en`); learners whose locale is en read that."""

    TYPE = "course_change.submitted"
    TOPIC = topics.COURSE_CHANGES

    ticket_id: UUID | None = None  # type: ignore[assignment]
    change_ref: Annotated[str, Meta(min_length=1, max_length=200)]
    course_id: Id
    course_title: Annotated[str, Meta(max_length=200)] | None = None
    kind: ChangeKind
    old: Annotated[str, Meta(max_length=200)] | None = None
    new: Annotated[str, Meta(max_length=200)] | None = None
    reason: ChangeText
    reason_en: ChangeText | None = None
    impact: ChangeText
    impact_en: ChangeText | None = None
    remedy: ChangeText
    remedy_en: ChangeText | None = None
    effective_at: datetime
    by: Id
    submitted_at: datetime


class CourseChangeNoticeRequested(EventData, frozen=True, kw_only=True):
    """One message for one learner about a course change (`kind` announcement: the change, its
    reason, impact and remedy, to everyone enrolled; `decision`: course operations' answer to
    the learner's own request, `ticket_id` that request), for notify to send on `channel`, as
    an incident notice is. `reply_url` is the learner's own page for answering it (a reply
    becomes a ticket linked to the change). `notice_id` is the event's id too."""

    TYPE = "course_change.notice_requested"
    TOPIC = topics.INCIDENTS

    ticket_id: UUID | None = None  # type: ignore[assignment]
    notice_id: UUID
    change_id: UUID | None = None
    kind: Annotated[str, Meta(pattern="^(announcement|decision)$")]
    learner: Learner
    channel: Annotated[str, Meta(pattern="^(email|sms|wechat|weibo)$")]
    locale: Annotated[str, Meta(pattern="^(zh|en)$")] = "zh"
    title: Annotated[str, Meta(max_length=200)]
    body: Annotated[str, Meta(max_length=4000)]
    reply_url: Annotated[str, Meta(max_length=2000)] | None = None
    requested_at: datetime


class CourseChangeTicketLinked(EventData, frozen=True, kw_only=True):
    """A learner answered a course change: their ticket belongs to it (desk notes it in the
    ticket's history, where agents see the change)."""

    TYPE = "course_change.ticket_linked"
    TOPIC = topics.INCIDENTS

    ticket_id: UUID
    change_id: UUID
    number: str  # the change's, CC-000123
    course_id: Id
    kind: ChangeKind
    linked_at: datetime


class CourseChangeDecided(EventData, frozen=True, kw_only=True):
    """Course operations approved or declined the change a learner asked for in `ticket_id`
    (audited in incident and in the ticket's history); the learner is told by a notice."""

    TYPE = "course_change.decided"
    TOPIC = topics.INCIDENTS

    ticket_id: UUID
    decision: Annotated[str, Meta(pattern="^(approved|declined)$")]
    note: Annotated[str, Meta(min_length=1, max_length=2000)]
    by: str
    decided_at: datetime


# ---- careloop.remedies.v1 ----


class CoinKind(StrEnum):
    """What a `coupon.issued` gives: a coupon worth an amount of money, or loyalty points."""

    COUPON = "coupon"
    POINTS = "points"


# Money as a decimal string ("199.00"): exact, and any JSON reader keeps it so.
Money = Annotated[str, Meta(pattern=r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$")]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$")]


class _RemedyEvent(EventData, frozen=True, kw_only=True):
    """An approved remedy of a complaint case, for the system that carries it out.

    `remedy_id` is the idempotency key: the event id is derived from it, so the remedy is one
    event however often it is relayed, and the acting system applies it once per remedy id and
    answers on careloop.remedies.acks.v1 with the same id.
    """

    ticket_id: UUID
    case_id: UUID
    remedy_id: UUID
    number: str  # the ticket's number, for people reading the other system's records
    learner_id: Id | None = None
    learner: Learner
    approved_by: tuple[str, ...] = ()
    approved_at: datetime


class RefundRequested(_RemedyEvent, frozen=True, kw_only=True):
    """Payments: refund `amount` in `currency` (of `order_id` when the case names one)."""

    TYPE = "refund.requested"
    TOPIC = topics.REMEDIES

    amount: Money
    currency: Currency
    order_id: Id | None = None


class ExtensionGranted(_RemedyEvent, frozen=True, kw_only=True):
    """The LMS: extend the learner's access to `course_id` by `days`."""

    TYPE = "extension.granted"
    TOPIC = topics.REMEDIES

    course_id: Id
    days: Annotated[int, Meta(ge=1, le=3650)]


class LessonsGranted(_RemedyEvent, frozen=True, kw_only=True):
    """The LMS: give the learner `lessons` supplementary lessons of `course_id`."""

    TYPE = "lessons.granted"
    TOPIC = topics.REMEDIES

    course_id: Id
    lessons: Annotated[int, Meta(ge=1, le=1000)]


class CouponIssued(_RemedyEvent, frozen=True, kw_only=True):
    """The shop: a coupon worth `value` `currency`, or `value` loyalty points (no currency)."""

    TYPE = "coupon.issued"
    TOPIC = topics.REMEDIES

    kind: CoinKind
    value: Money
    currency: Currency | None = None


# ---- careloop.remedies.acks.v1 ----


class RemedyAcknowledged(EventData, frozen=True, kw_only=True):
    """The acting system carried out the remedy (its own `reference`, e.g. a refund id)."""

    TYPE = "remedy.acknowledged"
    TOPIC = topics.REMEDY_ACKS

    ticket_id: UUID
    remedy_id: UUID
    system: Annotated[str, Meta(min_length=1, max_length=100)]
    reference: Annotated[str, Meta(max_length=200)] | None = None
    acknowledged_at: datetime


class RemedyRejected(EventData, frozen=True, kw_only=True):
    """The acting system will not carry out the remedy, and why (an agent takes it up)."""

    TYPE = "remedy.rejected"
    TOPIC = topics.REMEDY_ACKS

    ticket_id: UUID
    remedy_id: UUID
    system: Annotated[str, Meta(min_length=1, max_length=100)]
    reason: Annotated[str, Meta(min_length=1, max_length=2000)]
    rejected_at: datetime


class CaseRemedy(_Struct, frozen=True, kw_only=True):
    """One remedy of a concluded case, as the learner is told it."""

    remedy_id: UUID
    type: Annotated[str, Meta(max_length=30)]
    amount: Money | None = None
    currency: Currency | None = None
    days: Annotated[int, Meta(ge=1)] | None = None
    lessons: Annotated[int, Meta(ge=1)] | None = None
    points: Annotated[int, Meta(ge=1)] | None = None
    course_id: Id | None = None
    description: Annotated[str, Meta(max_length=2000)] | None = None


class CaseConcluded(EventData, frozen=True, kw_only=True):
    """A complaint case is closed: the learner is told the finding, the remedies approved for
    them and the agent's `outcome` on their channel (notify's `case_outcome` message). On
    careloop.tickets.v1: it is the ticket's story."""

    TYPE = "case.concluded"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    case_id: UUID
    finding: Annotated[str, Meta(pattern="^(upheld|partly_upheld|not_upheld)$")]
    outcome: Annotated[str, Meta(min_length=1, max_length=20_000)]
    remedies: tuple[CaseRemedy, ...] = ()
    portal_url: str | None = None
    concluded_at: datetime


class CallbackReason(StrEnum):
    """Why a learner is phoned back after their ticket closed (R9.3, 004 §三.3)."""

    SAMPLE = "sample"  # the ticket fell in CARELOOP_DESK_CALLBACK_SAMPLE
    COMPLAINT = "complaint"  # every closed complaint ticket without a case
    CASE = "case"  # a closed complaint case's call-back


class CallbackRecorded(EventData, frozen=True, kw_only=True):
    """An agent phoned the learner back after their ticket or complaint case closed: whether
    they were reached, their 1-5 satisfaction (when reached and they gave one) and the agent's
    note. metrics counts it beside the surveys' scores (dimension `callback`). On
    careloop.tickets.v1: it is the ticket's story."""

    TYPE = "callback.recorded"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    reason: CallbackReason
    reached: bool
    score: Annotated[int, Meta(ge=1, le=5)] | None = None
    note: Annotated[str, Meta(max_length=20_000)] = ""
    by: Annotated[str, Meta(min_length=1, max_length=100)]
    recorded_at: datetime


# ---- careloop.people.v1 -------------------------------------------------------------------


class PersonChanged(EventData, frozen=True, kw_only=True):
    """A person who works tickets as desk now has them: created, edited, disabled, a token
    added or revoked. Key = agent id; the newest wins, so a consumer keeps one row per person.

    `api_token_sha256` lists the SHA-256 of each of the person's unrevoked API tokens, so that
    another service can authenticate their bearer tokens without asking desk.
    """

    TYPE = "person.changed"
    TOPIC = topics.PEOPLE

    ticket_id: UUID | None = None  # type: ignore[assignment]
    agent_id: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{1,49}$")]
    name: Name
    email: Email | None = None
    role: Annotated[str, Meta(pattern="^(agent|supervisor|admin)$")]
    teams: tuple[str, ...] = ()
    language: Annotated[str, Meta(pattern="^(zh|en)$")] = "zh"
    active: bool
    api_token_sha256: tuple[Annotated[str, Meta(pattern="^[0-9a-f]{64}$")], ...] = ()
    changed_at: datetime


# ---- careloop.tickets.v1: desk ops (notes, transfers, merges) ----


class Mentioned(_Struct, frozen=True, kw_only=True):
    """An agent an internal note mentions, and where notify e-mails them (None: no address)."""

    agent_id: Id
    name: Annotated[str, Meta(max_length=200)] | None = None
    email: Email | None = None


class TicketNoteAdded(EventData, frozen=True, kw_only=True):
    """An agent wrote an internal note on a ticket (never shown to the learner); each agent it
    `@mentions` is told (notify's `mention` e-mail)."""

    TYPE = "ticket.note_added"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    note_id: UUID
    agent_id: str
    body: str
    mentions: tuple[Mentioned, ...] = ()
    added_at: datetime


class TicketTransferred(EventData, frozen=True, kw_only=True):
    """A ticket is handed to another agent or team with a reason (R6.2); the new holder sees
    the whole conversation and the reason in desk. To an agent (`to_agent_id`): desk shows it
    assigned to them at once and routing moves the load. To a team (`to_agent_id` null): it
    waits in `to_team`'s queue and routing places it as it places any queued ticket."""

    TYPE = "ticket.transferred"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    from_agent_id: str | None
    from_team: str | None
    to_agent_id: str | None
    to_team: str
    priority: Priority | None = None
    reason: str
    by: str
    transferred_at: datetime


class TicketMerged(EventData, frozen=True, kw_only=True):
    """A duplicate ticket was merged into another (R6.3): its messages, replies and notes moved
    there and it closed (`ticket.closed`, reason merged). The learner is told the number their
    request continues under (notify's `merged` message)."""

    TYPE = "ticket.merged"
    TOPIC = topics.TICKETS

    ticket_id: UUID
    number: str
    into_ticket_id: UUID
    into_number: str
    by: str
    moved: Annotated[int, Meta(ge=0)]
    portal_url: str | None = None  # the learner's page of the ticket it continues under
    merged_at: datetime


# ---- careloop.routing.v1 / careloop.people.v1: agents' presence (the supervisor board) ----

AgentId = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{1,49}$")]


class WeeklyHours(Struct, frozen=True, kw_only=True):
    """An agent's weekly schedule: per weekday (mon..sun) [start, end) spans of local time in
    `timezone`, "HH:MM" ("24:00" is midnight); a day left out is a day off."""

    timezone: str
    weekly: dict[str, tuple[tuple[str, str], ...]]


class AgentSkills(Struct, frozen=True, kw_only=True):
    """What routing gives an agent, besides their teams (validated by routing's admin rules,
    shared.agents.Skills): empty lists mean any; `schedule` None means always on shift."""

    languages: tuple[str, ...]
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    course_lines: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    vip: bool = False
    senior: bool = False
    schedule: WeeklyHours | None = None


class AgentStatus(EventData, frozen=True, kw_only=True):
    """routing's view of one agent: presence and live load against capacity, when it changed
    and every ~30 s. Key = agent id; the newest `at` wins, so a consumer keeps one row each.

    `online` is the agent's own switch, `on_shift` their schedule now, `available` whether
    routing may give them tickets (online, seen within the presence TTL, on shift).
    `capacity` and `used` are in capacity units (`used` weighs each ticket by its channel),
    `load` counts the tickets held.
    """

    TYPE = "agent.status"
    TOPIC = topics.ROUTING

    ticket_id: UUID | None = None  # type: ignore[assignment]
    agent_id: AgentId
    online: bool
    available: bool
    on_shift: bool
    active: bool = True
    capacity: Annotated[int, Meta(ge=0)]
    used: Annotated[float, Meta(ge=0)]
    load: Annotated[int, Meta(ge=0)]
    last_seen_at: datetime
    teams: tuple[str, ...] = ()
    skills: AgentSkills | None = None  # None: a routing that did not say yet
    at: datetime


class AgentSeen(EventData, frozen=True, kw_only=True):
    """desk saw the agent use the workspace (a page or its open live feed), at most once a
    minute each: routing keeps their presence alive with it. Key = agent id; idempotent (the
    latest `at` wins)."""

    TYPE = "agent.seen"
    TOPIC = topics.PEOPLE

    ticket_id: UUID | None = None  # type: ignore[assignment]
    agent_id: AgentId
    at: datetime


class AgentChangeRequested(EventData, frozen=True, kw_only=True):
    """A supervisor, on desk's board, sets an agent online or offline or changes their
    capacity; an admin also their skills and weekly schedule (as routing's admin API allows).
    routing applies it and audits it as `by`. Key = agent id (in order per agent); a field left
    out stays as it is; `schedule: null` means always on shift."""

    TYPE = "agent.change_requested"
    TOPIC = topics.PEOPLE

    ticket_id: UUID | None = None  # type: ignore[assignment]
    agent_id: AgentId
    online: bool | None = None
    capacity: Annotated[int, Meta(ge=0, le=1000)] | None = None
    languages: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    course_lines: tuple[str, ...] | None = None
    priorities: tuple[str, ...] | None = None
    vip: bool | None = None
    senior: bool | None = None
    schedule: WeeklyHours | msgspec.UnsetType | None = msgspec.UNSET
    by: AgentId
    requested_at: datetime


# ---- careloop.tickets.v1 / careloop.knowledge.v1: an article from an agent's reply ----


class ArticleDraftRequested(EventData, frozen=True, kw_only=True):
    """An agent, on a ticket's page, makes a draft article of one of its replies (001 §三.1):
    knowledge writes it as `by`'s draft, as its POST /v1/articles/from-reply does, under
    desk's `article_id` (one per reply and agent: asked twice, it is one draft), and answers
    `article.drafted`. Key = ticket id."""

    TYPE = "article.draft_requested"
    TOPIC = topics.TICKETS

    article_id: UUID
    reply: Annotated[str, Meta(min_length=1, max_length=20_000)]
    category: Category
    language: Annotated[str, Meta(pattern="^(zh|en)$")] | None = None
    by: AgentId
    requested_at: datetime


class ArticleDrafted(EventData, frozen=True, kw_only=True):
    """knowledge made the draft a ticket's reply was to become (`article.draft_requested`):
    desk notes it in the ticket's history with the article's page (live once an editor
    publishes it). Key = ticket id."""

    TYPE = "article.drafted"
    TOPIC = topics.KNOWLEDGE

    article_id: UUID
    title: Annotated[str, Meta(max_length=200)]
    url: Annotated[str, Meta(max_length=2000)]
    by: AgentId
    drafted_at: datetime


EVENT_TYPES: dict[tuple[str, int], type[EventData]] = {
    (cls.TYPE, cls.VERSION): cls
    for cls in (
        TicketSubmitted,
        TicketCreated,
        TicketMessageReceived,
        TicketReplied,
        TicketResolved,
        TicketReopened,
        TicketClosed,
        TicketEscalated,
        TicketRetriaged,
        TicketTriaged,
        TicketRouted,
        TicketAssigned,
        TicketQueued,
        NotificationSent,
        NotificationFailed,
        SurveyRequested,
        SurveyAnswered,
        SurveyLowScore,
        SurveyPeriodicRequested,
        SurveyPeriodicAnswered,
        # ---- SLA ----
        TicketPendingLearner,
        TicketResumed,
        SlaWarning,
        SlaBreached,
        SlaAtRisk,
        # ---- knowledge ----
        ArticlesSuggested,
        ArticlePublished,
        ArticleArchived,
        # ---- incident ----
        AlertRaised,
        IncidentOpened,
        IncidentUpdated,
        IncidentTicketLinked,
        IncidentTicketUnlinked,
        IncidentTicketResolved,
        IncidentResolved,
        IncidentNoticeRequested,
        # ---- course changes ----
        CourseChangeSubmitted,
        CourseChangeNoticeRequested,
        CourseChangeTicketLinked,
        CourseChangeDecided,
        # ---- cases ----
        RefundRequested,
        ExtensionGranted,
        LessonsGranted,
        CouponIssued,
        RemedyAcknowledged,
        RemedyRejected,
        CaseConcluded,
        CallbackRecorded,
        # ---- people ----
        PersonChanged,
        # ---- desk ops ----
        TicketNoteAdded,
        TicketTransferred,
        TicketMerged,
        # ---- presence ----
        AgentStatus,
        AgentSeen,
        AgentChangeRequested,
        # ---- articles from replies ----
        ArticleDraftRequested,
        ArticleDrafted,
    )
}

D = TypeVar("D", bound=EventData)


class EnvelopeHead(_Struct, frozen=True, kw_only=True):
    """The envelope without its payload: enough to route, de-duplicate and dead-letter."""

    event_id: UUID
    type: str
    version: int
    occurred_at: datetime
    producer: str
    correlation_id: UUID
    causation_id: UUID | None = None
    key: str


class Envelope(EnvelopeHead, Generic[D], frozen=True, kw_only=True):
    """One message on any careloop topic: metadata plus a typed payload."""

    data: D

    @property
    def topic(self) -> str:
        return type(self.data).TOPIC

    def to_json(self) -> bytes:
        return _ENCODER.encode(self)


_ENCODER = msgspec.json.Encoder()


def now() -> datetime:
    """The current UTC time; the one clock every event uses."""
    return datetime.now(UTC)


def new_event(
    data: D,
    *,
    producer: str,
    cause: EnvelopeHead | None = None,
    correlation_id: UUID | None = None,
) -> Envelope[D]:
    """Wrap `data` in an envelope; a caused event inherits its cause's correlation id."""
    event_id = uuid7()
    return Envelope(
        event_id=event_id,
        type=data.TYPE,
        version=data.VERSION,
        occurred_at=now(),
        producer=producer,
        correlation_id=correlation_id or (cause.correlation_id if cause else event_id),
        causation_id=cause.event_id if cause else None,
        key=str(data.ticket_id),
        data=data,
    )


class UnknownEventType(Exception):
    """The envelope is sound but its type or version is not one this code knows."""


class _Kind(Struct):
    """Just what picks the decoder; msgspec skips the rest of the record without building it."""

    type: str | None = None
    version: int | None = None


_KIND = msgspec.json.Decoder(_Kind)
_HEAD = msgspec.json.Decoder(EnvelopeHead)


@cache
def _decoder(model: type[EventData]) -> msgspec.json.Decoder[Envelope[Any]]:
    return msgspec.json.Decoder(Envelope[model])  # type: ignore[valid-type]


@overload
def decode(raw: bytes | str, *, only: None = None) -> Envelope[Any]: ...
@overload
def decode(raw: bytes | str, *, only: Container[str]) -> Envelope[Any] | None: ...
def decode(raw: bytes | str, *, only: Container[str] | None = None) -> Envelope[Any] | None:
    """Parse a wire message into a typed envelope; raises msgspec.ValidationError (a field
    out of bounds, naming it), msgspec.DecodeError (not JSON) or UnknownEventType.

    The type and version pick the model that decodes it. With `only`, an event of another
    type is not decoded at all and None comes back: consumers read whole topics and care
    about a few types.
    """
    kind = _KIND.decode(raw)
    if only is not None and kind.type not in only:
        return None
    model = EVENT_TYPES.get((kind.type, kind.version))  # type: ignore[arg-type]
    if model is None:
        _HEAD.decode(raw)  # a malformed head says what is wrong with it
        raise UnknownEventType(f"{kind.type} v{kind.version}")
    return _decoder(model).decode(raw)


def to_builtins(value: Any) -> Any:
    """`value` (an event, its payload or any part) as JSON-ready dicts, lists and strings."""
    return msgspec.to_builtins(value)


# ---- public inputs ------------------------------------------------------------------------

_PHONE_PATTERN = r"^\+?[0-9][0-9 ()-]{5,30}$"


class Submission(BaseModel):
    """What a learner submits on the web form (and, with `source`, what other services publish).

    Every text is a `Line` or `Text` (shared.text): a value desk could not store, such as a NUL
    character, a lone surrogate or a control character, is refused here, naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: Line = Field(min_length=1, max_length=200, description="The learner's name.")
    email: EmailAddress = Field(max_length=320, description="Where confirmations and replies go.")
    phone: str | None = Field(None, pattern=_PHONE_PATTERN, description="Optional phone number.")
    learner_id: Line | None = Field(None, max_length=100, description="The learner's id, if known.")
    subject: Line = Field(min_length=1, max_length=200)
    description: Text = Field(min_length=1, max_length=20_000)
    course_id: Line | None = Field(None, max_length=100)
    order_id: Line | None = Field(None, max_length=100)
    external_id: Line | None = Field(
        None,
        max_length=200,
        description="The sender's own id for this submission; the same id twice is one ticket.",
    )
    language: str | None = Field(None, pattern=r"^(zh|en)$", description="Detected when absent.")
    attachments: tuple[SubmittedAttachment, ...] = Field((), max_length=10)


class InboundSubmission(Submission):
    """One message on careloop.inbound.v1: a submission from another service (LMS, payments…).

    The e-mail is optional here when another way to reach the learner is given; `channel` is
    where the relaying service received the request, `received_at` when (both optional: older
    messages stay valid).
    """

    email: EmailAddress | None = Field(  # type: ignore[assignment]
        None,
        max_length=320,
        description="Required unless `phone`, `learner_id` or `wechat_openid` is given.",
    )
    wechat_openid: Line | None = Field(None, max_length=100)
    channel: Channel | None = Field(
        None, description="The channel the relaying service received it on; `service` when absent."
    )
    received_at: datetime | None = Field(
        None,
        description="When the relaying service received it (with a time zone); now when absent.",
    )

    source: str = Field(
        pattern=r"^[a-z][a-z0-9_-]{1,49}$", description="The publishing service, e.g. `lms`."
    )
    external_id: Line = Field(
        min_length=1,
        max_length=200,
        description="Required here: Kafka redelivers, and this id makes that harmless.",
    )

    @model_validator(mode="after")
    def _reachable(self) -> InboundSubmission:
        if not (self.email or self.phone or self.learner_id or self.wechat_openid):
            raise ValueError("give at least one of email, phone, learner_id or wechat_openid")
        if self.received_at is not None and self.received_at.tzinfo is None:
            raise ValueError("received_at: give a time zone (e.g. 2026-11-30T12:00:00+08:00)")
        return self


# ---- careloop.learners.v1 -----------------------------------------------------------------


class LearnerSnapshot(_Struct, frozen=True, kw_only=True):
    """One message on careloop.learners.v1: what the LMS knows about a learner now (bare JSON,
    key = learner_id). A newer `updated_at` replaces what careloop holds; an older one is
    ignored. Decoded with `decode_snapshot`, which names the field that is wrong."""

    learner_id: Annotated[str, Meta(min_length=1, max_length=100)]
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    email: Email | None = None
    phone: Phone | None = None
    wechat_openid: Id | None = None
    locale: Annotated[str, Meta(pattern="^(zh|en)$")] = "zh"
    tier: Annotated[str, Meta(pattern="^(standard|vip)$")] = "standard"
    preferred_channel: Channel | None = None
    courses: Annotated[tuple[LearnerCourse, ...], Meta(max_length=500)] = ()
    exams: Annotated[tuple[LearnerExam, ...], Meta(max_length=500)] = ()
    updated_at: datetime

    def context(self) -> LearnerContext:
        return LearnerContext(
            learner_id=self.learner_id,
            locale=self.locale,
            tier=self.tier,
            preferred_channel=self.preferred_channel,
            courses=self.courses,
            exams=self.exams,
            updated_at=self.updated_at,
        )


_SNAPSHOT = msgspec.json.Decoder(LearnerSnapshot)


def decode_snapshot(raw: bytes | str) -> LearnerSnapshot:
    """Parse a learner snapshot; raises msgspec.ValidationError naming the field."""
    snapshot = _SNAPSHOT.decode(raw)
    if snapshot.updated_at.tzinfo is None:
        raise msgspec.ValidationError("updated_at: give a time zone - at `$.updated_at`")
    return snapshot
