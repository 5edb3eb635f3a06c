"""routing's decisions: what a triage says, SLA due times, who may take a ticket (the triage
itself is services.routing.triage)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from shared import business_hours
from shared.agents import Role
from shared.business_hours import Calendar
from shared.events import Category, Priority

T = TypeVar("T")

TEAM_OF: Mapping[Category, str] = {
    Category.TECHNICAL: "tech_support",
    Category.ACCOUNT_SECURITY: "tech_support",
    Category.COURSE_CONTENT: "course_ops",
    Category.COURSE_CHANGE: "course_ops",
    Category.PAYMENT_REFUND: "finance",
    Category.LEARNING_GUIDANCE: "learning_advisors",
    Category.EXAM_CERTIFICATE: "customer_service",
    Category.COMPLAINT: "complaints",
    Category.SUGGESTION: "customer_service",
    Category.OTHER: "customer_service",
}

PRIORITY_RANK: Mapping[Priority, int] = {
    Priority.URGENT: 0,
    Priority.HIGH: 1,
    Priority.MEDIUM: 2,
    Priority.LOW: 3,
}


@dataclass(frozen=True, slots=True)
class Triage:
    """A ticket's triage: its category and how sure the model is of it, its priority and
    the rule that set it, the team that handles the category."""

    category: Category
    priority: Priority
    team: str
    matched: tuple[str, ...]  # the text's time phrase the priority rules used, if any
    confidence: float  # the category model's top probability, 0..1
    reason: str  # one line: the category's probability and the priority rule
    # Other teams the ticket needs too (R3.3): a second category's team, when the model gives
    # that category nearly as much weight.
    collaborators: tuple[str, ...] = ()


def as_follow_up(triage: Triage) -> Triage:
    """The follow-up of a low periodic-survey score (R9.2): a dissatisfied learner, as urgent
    to the desk as a complaint (at least high), for a supervisor (the route says so)."""
    if PRIORITY_RANK[triage.priority] <= PRIORITY_RANK[Priority.HIGH]:
        return triage
    reason = f"{triage.reason}; a low periodic survey score: high"
    return replace(triage, priority=Priority.HIGH, reason=reason)


def due_times(
    priority: Priority,
    start: datetime,
    *,
    first_response_minutes: Mapping[str, float],
    resolution_minutes: Mapping[str, float],
    calendar: Calendar,
) -> tuple[datetime, datetime]:
    """First-response and resolution deadlines from the per-priority targets (R5.1), counted
    in the team's business hours as the SLA clocks count them, so what the learner is
    promised is what is enforced."""
    first, resolution = business_hours.due_times(
        start, [first_response_minutes[priority], resolution_minutes[priority]], calendar
    )
    return first, resolution


def held_by_ordinary_agents(held: Mapping[T, str], roles: Mapping[str, Role]) -> list[T]:
    """Of the tickets `held` (ticket -> agent), those an escalation must move to a supervisor:
    held by an agent, or by someone routing no longer knows."""
    return [t for t, agent in held.items() if roles.get(agent, Role.AGENT) is Role.AGENT]


Pair = tuple[str, str]  # (ticket, agent)


@dataclass(frozen=True, slots=True)
class Drift:
    """What a reconciliation changes in Redis, and what it only notes for next time."""

    free: list[Pair]  # slots Redis holds that no committed assignment holds, seen twice
    restore: list[Pair]  # committed assignments Redis does not count
    suspects: dict[Pair, int]  # slots held without a committed assignment, seen once (claim)


def drift(
    *,
    counted: Iterable[Pair],
    indexed: Mapping[str, str],
    claims: Mapping[str, int],
    committed: Iterable[Pair],
    suspects: Mapping[Pair, int],
    rebuild: bool,
) -> Drift:
    """Compare Redis (`counted` in load sets, `indexed` by ticket) with committed Postgres.

    Taken while no routing transaction is in flight (see capacity.py), a committed assignment
    Redis does not count can only be a loss: it is restored at once, since an undercount could
    let an agent take more than capacity. A slot Redis holds without a committed assignment may
    still be the release of a transaction that just committed, about to free it: it is freed
    only when seen with the same claim by the previous reconciliation too. A rebuild (Redis
    came back empty) trusts Postgres alone.
    """
    truth = set(committed)
    counted = set(counted)
    held = counted | {(t, a) for t, a in indexed.items()}
    restore = sorted(p for p in truth if p not in counted or indexed.get(p[0]) != p[1])
    extra = {p: claims.get(p[0], 0) for p in held - truth}
    if rebuild:
        return Drift(free=sorted(extra), restore=restore, suspects={})
    free = sorted(p for p, c in extra.items() if suspects.get(p) == c)
    return Drift(
        free=free, restore=restore, suspects={p: c for p, c in extra.items() if p not in free}
    )


def over_capacity(
    committed: Iterable[Pair],
    capacity: Mapping[str, int],
    weights: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Agents whose committed assignments take more than their capacity, with how many
    tickets they hold; `weights` gives each ticket's share in thousandths (1 unit when absent)."""
    held: dict[str, int] = {}
    used: dict[str, int] = {}
    for ticket, agent in committed:
        held[agent] = held.get(agent, 0) + 1
        used[agent] = used.get(agent, 0) + (weights or {}).get(ticket, 1000)
    return {a: n for a, n in held.items() if used[a] > capacity.get(a, 0) * 1000}
