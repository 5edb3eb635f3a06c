"""The complaint cases' decisions: who may open and work a case, how many approvals a remedy
needs, who may give them, and when an unanswered remedy is overdue. No I/O."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from services.desk.cases.settings import CaseSettings
from services.desk.domain import Conflict, NotAllowed
from shared.agents import Role
from shared.errors import PermanentError
from shared.events import Category


class Finding(StrEnum):
    UPHELD = "upheld"
    PARTLY_UPHELD = "partly_upheld"
    NOT_UPHELD = "not_upheld"


class CaseStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # archived: nothing about it changes any more


class RemedyType(StrEnum):
    APOLOGY = "apology"
    REFUND = "refund"
    EXTENSION = "extension"
    LESSONS = "lessons"
    COUPON = "coupon"
    POINTS = "points"
    REPLACEMENT = "replacement"


class RemedyStatus(StrEnum):
    PROPOSED = "proposed"  # waiting for its approvals
    DECLINED = "declined"  # an approver refused it
    REQUESTED = "requested"  # approved; the acting system was asked and has not answered
    ACKNOWLEDGED = "acknowledged"  # the acting system carried it out
    REJECTED = "rejected"  # the acting system refused it
    DONE = "done"  # approved, and carried out by desk's people (an apology, a replacement)


# Remedies another system carries out, on careloop.remedies.v1; the rest are the agents' own.
EXTERNAL = frozenset({RemedyType.REFUND, RemedyType.EXTENSION, RemedyType.LESSONS,
                      RemedyType.COUPON, RemedyType.POINTS})  # fmt: skip
UNDECIDED = frozenset({RemedyStatus.PROPOSED})
# Refunds that paid or may still pay money out of the order: all but the declined ones and
# those the payment system refused.
REFUNDING = frozenset({RemedyStatus.PROPOSED, RemedyStatus.REQUESTED, RemedyStatus.ACKNOWLEDGED})
APPROVERS = frozenset({Role.SUPERVISOR, Role.ADMIN})


class Invalid(PermanentError):
    """A request that is well-formed but wrong about one field: 422 naming it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Remedy:
    """A remedy line as proposed: its type and the quantity that type has."""

    type: RemedyType
    amount: Decimal | None = None
    currency: str | None = None
    days: int | None = None
    lessons: int | None = None
    points: int | None = None


def approvals_needed(remedy: Remedy, settings: CaseSettings) -> int:
    """0, 1 or 2: above its threshold a remedy needs a supervisor's approval, and a refund above
    the higher threshold a second, different approver's too. An apology needs none."""
    match remedy.type:
        case RemedyType.REFUND:
            amount = remedy.amount or Decimal(0)
            if amount > settings.refund_second_approval_above:
                return 2
            return 1 if amount > settings.refund_approval_above else 0
        case RemedyType.COUPON:
            return int((remedy.amount or Decimal(0)) > settings.coupon_approval_above)
        case RemedyType.POINTS:
            return int((remedy.points or 0) > settings.points_approval_above)
        case RemedyType.EXTENSION:
            return int((remedy.days or 0) > settings.extension_approval_above_days)
        case RemedyType.LESSONS:
            return int((remedy.lessons or 0) > settings.lessons_approval_above)
        case RemedyType.REPLACEMENT:
            return int(settings.replacement_needs_approval)
        case RemedyType.APOLOGY:
            return 0


def check_remedy(
    remedy: Remedy,
    *,
    currency: str,
    order_value: Decimal | None,
    refunded: Decimal,
    course_id: str | None,
) -> None:
    """What the request's own validation cannot see: the deployment's currency, the order's
    value against every refund on the case (`refunded`: the others still paying out, see
    REFUNDING) and a course to extend; Invalid naming the field. A refund needs the order's
    value: without it nothing bounds it. A coupon is not bounded by the order: it is spent on a
    later purchase, and its approval threshold limits it."""
    if remedy.currency is not None and remedy.currency != currency:
        raise Invalid("currency", f"remedies are in {currency}, not {remedy.currency}")
    if remedy.type is RemedyType.REFUND and remedy.amount is not None:
        if order_value is None:
            raise Invalid(
                "order_value", "set the case's order_value first: a refund is checked against it"
            )
        total = refunded + remedy.amount
        if total > order_value:
            already = f" with the case's {refunded:.2f} already refunded" if refunded else ""
            raise Invalid(
                "amount",
                f"a refund of {remedy.amount:.2f}{already} comes to {total:.2f}, above the "
                f"order's {order_value:.2f}",
            )
    if remedy.type in (RemedyType.EXTENSION, RemedyType.LESSONS) and course_id is None:
        raise Invalid("course_id", "name the course (the case names none)")


def check_order_value(order_value: Decimal | None, *, refunded: Decimal) -> None:
    """A changed order value still covers the case's refunds (REFUNDING)."""
    if not refunded:
        return
    if order_value is None:
        raise Invalid(
            "order_value",
            f"the case's refunds come to {refunded:.2f}: its order value cannot be removed",
        )
    if order_value < refunded:
        raise Invalid(
            "order_value",
            f"the case's refunds come to {refunded:.2f}, above an order value of {order_value:.2f}",
        )


def may_open_case(*, category: str | None, role: Role) -> None:
    """A complaint ticket gets a case from whoever works it; any other ticket only when a
    supervisor decides it is one (R8)."""
    if category != Category.COMPLAINT and role not in APPROVERS:
        raise NotAllowed("only a supervisor opens a case on a ticket that is not a complaint")


def check_open(status: CaseStatus) -> None:
    if status is CaseStatus.CLOSED:
        raise Conflict("the case is closed and archived; it no longer changes")


def check_may_decide(
    *,
    approver: str,
    role: Role,
    proposer: str,
    status: RemedyStatus,
    decided_by: frozenset[str],
) -> None:
    """A supervisor (or admin) decides a proposed remedy once, and never one they proposed."""
    if role not in APPROVERS:
        raise NotAllowed("only a supervisor approves or declines a remedy")
    if status not in UNDECIDED:
        raise Conflict(f"the remedy is already {status}")
    if approver == proposer:
        raise Conflict("the remedy's proposer cannot approve or decline it")
    if approver in decided_by:
        raise Conflict("you already approved this remedy; it needs a different approver")


def after_approval(*, needed: int, approvals: int, remedy_type: RemedyType) -> RemedyStatus:
    """The remedy's status once it has `approvals` of the `needed`: still proposed, or sent
    to the system that carries it out, or done by the agents themselves."""
    if approvals < needed:
        return RemedyStatus.PROPOSED
    return RemedyStatus.REQUESTED if remedy_type in EXTERNAL else RemedyStatus.DONE


def check_may_close(*, finding: Finding | None, undecided: int) -> None:
    """A case closes with a finding and every remedy decided (the learner hears it all)."""
    if finding is None:
        raise Conflict("set the case's finding before closing it")
    if undecided:
        raise Conflict(f"{undecided} remedies still wait for approval")


def overdue_since(requested_at: datetime, settings: CaseSettings) -> datetime:
    """When a requested remedy the acting system has not answered becomes overdue."""
    return requested_at + timedelta(hours=settings.ack_overdue_hours)


def check_answer(status: RemedyStatus) -> None:
    """An acknowledgement answers a requested remedy once; a repeat of the same answer is
    harmless (handled before this), another answer to an answered one is a bad message."""
    if status is not RemedyStatus.REQUESTED:
        raise Invalid("remedy_id", f"the remedy is {status}, not waiting for an answer")
