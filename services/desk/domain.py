"""desk's decisions: who may do what to a ticket, and what a learner's answer does."""

from enum import StrEnum

from shared.agents import Role
from shared.errors import PermanentError


class Status(StrEnum):
    NEW = "new"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


class Answer(StrEnum):
    SOLVED = "solved"
    NOT_SOLVED = "not_solved"


class NotAllowed(PermanentError):
    """The agent's role or assignment does not allow this."""


class Conflict(PermanentError):
    """The ticket is not in a state where this makes sense."""


WORKABLE = frozenset({Status.ASSIGNED})
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


def answer_outcome(status: Status, answer: Answer) -> Status:
    """The learner's confirmation of a resolved ticket closes or reopens it."""
    if status is not Status.RESOLVED:
        raise Conflict(f"the ticket is {status}; it was already answered")
    return Status.CLOSED if answer is Answer.SOLVED else Status.REOPENED
