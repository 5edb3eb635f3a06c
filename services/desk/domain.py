"""desk's decisions: who may do what to a ticket, and what a learner's answer does."""

import hashlib
import re
from enum import StrEnum
from typing import Any
from uuid import UUID

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from pydantic import BaseModel, ConfigDict

from shared.agents import Role
from shared.errors import PermanentError
from shared.events import Channel, Learner, TicketSubmitted
from shared.phones import normal_phone
from shared.retention import EMAIL


class Status(StrEnum):
    NEW = "new"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"
    PENDING_LEARNER = "pending_learner"  # waiting on the learner: the SLA clocks pause (R5.3)


class Answer(StrEnum):
    SOLVED = "solved"
    NOT_SOLVED = "not_solved"


class Caller(BaseModel):
    """Who a bearer token belongs to."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    name: str
    role: Role
    teams: tuple[str, ...] = ()

    @property
    def supervises(self) -> bool:
        return self.role is not Role.AGENT


class NotAllowed(PermanentError):
    """The agent's role or assignment does not allow this."""


class Conflict(PermanentError):
    """The ticket is not in a state where this makes sense."""


class NotFound(PermanentError):
    """No such ticket, or no ticket behind this link."""


class Invalid(PermanentError):
    """The request names something that does not exist or cannot be used (an unknown agent or
    team, a macro that does not render)."""


WORKABLE = frozenset({Status.ASSIGNED, Status.PENDING_LEARNER})
REOPENABLE = frozenset({Status.RESOLVED, Status.CLOSED})


def check_may_see(
    *,
    agent_id: str,
    role: Role,
    assignee_id: str | None,
    teams: tuple[str, ...] = (),
    team: str | None = None,
) -> None:
    """Agents see their own tickets and their teams'; supervisors and admins see all (R12.2).
    Any other ticket is answered as if it did not exist, so ids cannot be probed."""
    if role is Role.AGENT and assignee_id != agent_id and (team is None or team not in teams):
        raise NotFound("no such ticket")


def check_may_work(
    *,
    agent_id: str,
    role: Role,
    assignee_id: str | None,
    status: Status,
    teams: tuple[str, ...] = (),
    team: str | None = None,
) -> None:
    """Replying and resolving need the ticket assigned, and to you unless you supervise."""
    check_may_see(agent_id=agent_id, role=role, assignee_id=assignee_id, teams=teams, team=team)
    if role is Role.AGENT and assignee_id != agent_id:
        raise NotAllowed("this ticket is not assigned to you")
    if status not in WORKABLE:
        raise Conflict(f"a ticket that is {status} cannot be worked on")


class LowScore(StrEnum):
    """What a low survey score does to its ticket."""

    REOPEN = "reopen"  # resolved or closed: reopened for a supervisor
    ESCALATE = "escalate"  # still open (the learner said "not solved" first): to a supervisor
    NOTED = "noted"  # already with a supervisor: recorded in its history


def low_score_outcome(status: Status, *, needs_supervisor: bool) -> LowScore:
    """A low score always reaches a supervisor, whatever the ticket's state (R9.2)."""
    if status in REOPENABLE:
        return LowScore.REOPEN
    if needs_supervisor:
        return LowScore.NOTED
    return LowScore.ESCALATE


def answer_outcome(status: Status, answer: Answer) -> Status:
    """The learner's confirmation of a resolved ticket closes or reopens it."""
    if status is not Status.RESOLVED:
        raise Conflict(f"the ticket is {status}; it was already answered")
    return Status.CLOSED if answer is Answer.SOLVED else Status.REOPENED


# ---- where a learner's message goes ------------------------------------------------------


def content_key(t: TicketSubmitted) -> str | None:
    """Who and what, for a submission its sender gave no key for: the same learner's same
    text, whatever the channel. None for an anonymous one (nobody to tell apart)."""
    who = (
        t.learner.learner_id
        or t.learner.email
        or t.learner.phone
        or t.learner.wechat_openid
        or t.learner.weibo_uid
    )
    if t.external_id is not None or who is None:
        return None
    text = " ".join(t.description.split())
    return hashlib.sha256(f"{who}\x00{text}".encode()).hexdigest()[:32]


def thread_contact(t: TicketSubmitted) -> str | None:
    """The contact a channel without threads continues a ticket by."""
    if not t.by_contact:
        return None
    learner = t.learner
    if t.channel is Channel.WECHAT:
        return learner.wechat_openid
    if t.channel is Channel.WEIBO:
        return learner.weibo_uid
    return learner.phone or learner.email


def same_learner(ticket_learner: dict[str, Any], sender: Learner) -> bool:
    """Whether a follow-up comes from the ticket's learner: one contact in common."""
    mine = {
        ("learner_id", ticket_learner.get("learner_id")),
        ("email", (ticket_learner.get("email") or "").lower() or None),
        ("phone", ticket_learner.get("phone")),
        ("wechat_openid", ticket_learner.get("wechat_openid")),
        ("weibo_uid", ticket_learner.get("weibo_uid")),
    }
    theirs = {
        ("learner_id", sender.learner_id),
        ("email", sender.email.lower() if sender.email else None),
        ("phone", sender.phone),
        ("wechat_openid", sender.wechat_openid),
        ("weibo_uid", sender.weibo_uid),
    }
    return any(value is not None for _, value in mine & theirs)


# ---- what agents do to a ticket: notes, macros, transfers, merges, resolutions ------------


class ResolutionCode(StrEnum):
    """How a ticket was resolved, for reports and for the knowledge base's deflection rate."""

    ANSWERED = "answered"  # the learner's question is answered
    FIXED = "fixed"  # a fault was fixed
    REFUNDED = "refunded"
    CHANGED_AS_ASKED = "changed_as_asked"  # a course, class or account change made
    WORKAROUND = "workaround"
    DUPLICATE = "duplicate"
    NO_RESPONSE = "no_response"  # the learner stopped answering
    NOT_REPRODUCIBLE = "not_reproducible"
    OUT_OF_SCOPE = "out_of_scope"
    SELF_SERVED = "self_served"  # an offered article solved it: set by the learner, not agents
    INCIDENT = "incident"  # its incident was resolved (the incident service), not by an agent


# What an agent may pick when resolving: self_served is the learner's own answer, incident the
# incident service's.
RESOLUTION_CODES = tuple(
    c for c in ResolutionCode if c not in (ResolutionCode.SELF_SERVED, ResolutionCode.INCIDENT)
)

OPEN = frozenset(Status) - {Status.RESOLVED, Status.CLOSED}
_MENTION = re.compile(r"(?<![\w@.])@([a-z][a-z0-9_-]{1,49})\b")


def mentioned(body: str) -> list[str]:
    """The agent ids a note mentions (`@alice`), in order, once each; an e-mail address's
    `@` is not a mention."""
    return list(dict.fromkeys(_MENTION.findall(body)))


def check_transfer(
    *,
    status: Status,
    team: str | None,
    assignee_id: str | None,
    to_agent_id: str | None,
    to_team: str,
) -> None:
    """A hand-off goes somewhere else, and only for a ticket routing has placed and that is
    still being worked. One waiting on the learner goes to a person, who keeps waiting: in a
    queue its paused clocks would have nobody to resume them for."""
    if status not in OPEN or status is Status.NEW:
        raise Conflict(f"a ticket that is {status} cannot be transferred")
    if status is Status.PENDING_LEARNER and to_agent_id is None:
        raise Conflict("the ticket waits on the learner: hand it to an agent, not a queue")
    if to_agent_id is not None and to_agent_id == assignee_id:
        raise Conflict(f"the ticket is already with {to_agent_id}")
    if to_agent_id is None and to_team == team and assignee_id is None:
        raise Conflict(f"the ticket already waits in {to_team}'s queue")


def team_for(agent_teams: tuple[str, ...], *, current: str | None) -> str:
    """The team a ticket handed to an agent belongs to: its own if the agent is in it, else
    the agent's first team."""
    if current is not None and current in agent_teams:
        return current
    if not agent_teams:
        raise Invalid("that agent is in no team and cannot take tickets")
    return agent_teams[0]


def check_merge(*, ticket_id: UUID, status: Status, into_id: UUID, into_status: Status) -> None:
    """A duplicate merges into another ticket that is still open (R6.3)."""
    if ticket_id == into_id:
        raise Conflict("a ticket cannot be merged into itself")
    if status is Status.CLOSED:
        raise Conflict("the ticket is closed: there is nothing left to merge")
    if into_status is Status.CLOSED:
        raise Conflict("the ticket to merge into is closed; reopen it or pick another")


# ---- macros ------------------------------------------------------------------------------


_MACROS = SandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=lambda value: "" if value is None else value,  # a learner without an e-mail
)
# A sample of every variable a macro may use, to refuse at save time one that would not render.
_SAMPLE: dict[str, dict[str, str | None]] = {
    "learner": {"name": "Li Lei", "email": "lilei@example.com"},
    "ticket": {"number": "CL-000001", "subject": "Cannot log in", "category": "technical"},
    "agent": {"name": "Alice Chen"},
}
# What a macro is made of: text and `{{ a.b }}` variables. Nothing else (no arithmetic,
# filters, loops or calls), so no macro can make a huge string or number, or run long.
_MACRO_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Getattr)


def _known() -> str:
    return ", ".join(f"{k}.{f}" for k, fields in _SAMPLE.items() for f in fields)


def check_macro(body: str) -> None:
    """A macro must render with the variables careloop gives it: Invalid names the problem."""
    render_macro(body, _SAMPLE)


def render_macro(body: str, values: dict[str, dict[str, str | None]]) -> str:
    """The macro's text for one ticket: plain text, escaped wherever it is shown like any reply.
    The sandbox keeps a template from reaching anything but the values it is given."""
    try:
        parsed = _MACROS.parse(body)
        if any(not isinstance(n, _MACRO_NODES) for n in parsed.find_all(nodes.Node)):
            raise Invalid(
                "a macro holds text and variables only, such as {{ learner.name }} "
                f"(known: {_known()})"
            )
        return _MACROS.from_string(parsed).render(values)
    except TemplateSyntaxError as exc:
        raise Invalid(
            f"the macro's template is not valid: {exc.message} (line {exc.lineno})"
        ) from exc
    except UndefinedError as exc:
        raise Invalid(
            f"the macro uses an unknown variable: {exc.message} (known: {_known()})"
        ) from exc
    except SecurityError as exc:
        raise Invalid(f"the macro may not do this: {exc}") from exc


# ---- search --------------------------------------------------------------------------------


def phone_digits(phone: str) -> str:
    """A phone number as search stores and looks it up: the digits of its normal form, so
    `138 0013 8000` finds `+86 13800138000`."""
    return re.sub(r"\D", "", normal_phone(phone) or "")


class SearchKind(StrEnum):
    NUMBER = "number"
    EMAIL = "email"
    PHONE = "phone"
    TEXT = "text"


_NUMBER = re.compile(r"^(?:CL-?)?0*([0-9]{1,18})$", re.IGNORECASE)


def search_kind(q: str) -> tuple[SearchKind, str]:
    """What a search box's text is: a ticket number (`CL-000123`, `123`), an e-mail, a phone
    number, or words; with the value to look up."""
    q = q.strip()
    if (number := _NUMBER.match(q)) and (q.upper().startswith("CL") or len(q) < 7):
        return SearchKind.NUMBER, "CL-" + number.group(1).zfill(6)
    if EMAIL.fullmatch(q):
        return SearchKind.EMAIL, q.lower()
    if re.fullmatch(r"\+?[0-9][0-9 ()-]{5,30}", q):
        return SearchKind.PHONE, phone_digits(q)
    return SearchKind.TEXT, q
