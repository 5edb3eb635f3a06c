"""desk's decisions: who may do what to a ticket, and what a learner's answer does."""

import hashlib
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.agents import Role
from shared.errors import PermanentError
from shared.events import Channel, Learner, TicketSubmitted


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


class NotAllowed(PermanentError):
    """The agent's role or assignment does not allow this."""


class Conflict(PermanentError):
    """The ticket is not in a state where this makes sense."""


class NotFound(PermanentError):
    """No such ticket, or no ticket behind this link."""


WORKABLE = frozenset({Status.ASSIGNED, Status.PENDING_LEARNER})
REOPENABLE = frozenset({Status.RESOLVED, Status.CLOSED})


def check_may_see(*, agent_id: str, role: Role, assignee_id: str | None) -> None:
    """Agents see their own tickets; supervisors and admins see all (R12.2)."""
    if role is Role.AGENT and assignee_id != agent_id:
        raise NotAllowed("this ticket is not assigned to you")


def check_may_work(*, agent_id: str, role: Role, assignee_id: str | None, status: Status) -> None:
    """Replying and resolving need the ticket assigned, and to you unless you supervise."""
    check_may_see(agent_id=agent_id, role=role, assignee_id=assignee_id)
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
