"""Complaint cases' rules: how many approvals a remedy needs, who may give them, what a case
needs to close, and what the API refuses before anything is stored."""

from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from services.desk.cases.api import RemedyIn
from services.desk.cases.domain import (
    Finding,
    Invalid,
    Remedy,
    RemedyStatus,
    RemedyType,
    after_approval,
    approvals_needed,
    check_answer,
    check_may_close,
    check_may_decide,
    check_order_value,
    check_remedy,
    may_open_case,
)
from services.desk.cases.settings import CaseSettings
from services.desk.domain import Conflict, NotAllowed
from shared.agents import Role

SETTINGS = CaseSettings(
    refund_approval_above=Decimal(200),
    refund_second_approval_above=Decimal(1000),
    coupon_approval_above=Decimal(100),
    points_approval_above=1000,
    extension_approval_above_days=14,
    lessons_approval_above=2,
    replacement_needs_approval=True,
)


@pytest.mark.parametrize(
    ("remedy", "needed"),
    [
        (Remedy(RemedyType.APOLOGY), 0),
        (Remedy(RemedyType.REFUND, amount=Decimal("199.99")), 0),
        (Remedy(RemedyType.REFUND, amount=Decimal(200)), 0),  # at the threshold: no approval
        (Remedy(RemedyType.REFUND, amount=Decimal("200.01")), 1),
        (Remedy(RemedyType.REFUND, amount=Decimal(1000)), 1),
        (Remedy(RemedyType.REFUND, amount=Decimal("1000.01")), 2),
        (Remedy(RemedyType.COUPON, amount=Decimal(100)), 0),
        (Remedy(RemedyType.COUPON, amount=Decimal(101)), 1),
        (Remedy(RemedyType.POINTS, points=1000), 0),
        (Remedy(RemedyType.POINTS, points=1001), 1),
        (Remedy(RemedyType.EXTENSION, days=14), 0),
        (Remedy(RemedyType.EXTENSION, days=15), 1),
        (Remedy(RemedyType.LESSONS, lessons=2), 0),
        (Remedy(RemedyType.LESSONS, lessons=3), 1),
        (Remedy(RemedyType.REPLACEMENT), 1),
    ],
)
def test_approvals_needed_follow_the_thresholds(remedy: Remedy, needed: int) -> None:
    assert approvals_needed(remedy, SETTINGS) == needed


def test_a_replacement_needs_no_approval_when_so_configured() -> None:
    settings = SETTINGS.model_copy(update={"replacement_needs_approval": False})
    assert approvals_needed(Remedy(RemedyType.REPLACEMENT), settings) == 0


def _decide(**overrides: Any) -> None:
    args: dict[str, Any] = {
        "approver": "sue",
        "role": Role.SUPERVISOR,
        "proposer": "ana",
        "status": RemedyStatus.PROPOSED,
        "decided_by": frozenset(),
    }
    check_may_decide(**{**args, **overrides})


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        ({}, None),
        ({"role": Role.ADMIN, "approver": "ada"}, None),
        ({"decided_by": frozenset({"ada"})}, None),  # the second, different approver
        ({"role": Role.AGENT, "approver": "ben"}, NotAllowed),
        ({"approver": "ana", "proposer": "ana"}, Conflict),  # one's own proposal
        ({"decided_by": frozenset({"sue"})}, Conflict),  # approving twice
        ({"status": RemedyStatus.REQUESTED}, Conflict),  # already approved and sent
        ({"status": RemedyStatus.DECLINED}, Conflict),
    ],
)
def test_who_may_decide_a_remedy(
    overrides: dict[str, Any], refusal: type[Exception] | None
) -> None:
    if refusal is None:
        _decide(**overrides)
    else:
        with pytest.raises(refusal):
            _decide(**overrides)


@pytest.mark.parametrize(
    ("needed", "approvals", "kind", "status"),
    [
        (0, 0, RemedyType.REFUND, RemedyStatus.REQUESTED),
        (1, 0, RemedyType.REFUND, RemedyStatus.PROPOSED),
        (2, 1, RemedyType.REFUND, RemedyStatus.PROPOSED),
        (2, 2, RemedyType.REFUND, RemedyStatus.REQUESTED),
        (1, 1, RemedyType.POINTS, RemedyStatus.REQUESTED),
        (0, 0, RemedyType.APOLOGY, RemedyStatus.DONE),
        (1, 1, RemedyType.REPLACEMENT, RemedyStatus.DONE),
    ],
)
def test_the_last_approval_sends_the_remedy_on(
    needed: int, approvals: int, kind: RemedyType, status: RemedyStatus
) -> None:
    assert after_approval(needed=needed, approvals=approvals, remedy_type=kind) is status


def test_a_refund_above_the_order_value_names_the_amount() -> None:
    with pytest.raises(Invalid) as refused:
        check_remedy(
            Remedy(RemedyType.REFUND, amount=Decimal("300.00"), currency="CNY"),
            currency="CNY",
            order_value=Decimal("299.00"),
            refunded=Decimal(0),
            course_id=None,
        )
    assert refused.value.field == "amount"
    assert str(refused.value) == "a refund of 300.00 comes to 300.00, above the order's 299.00"


def refund(amount: str, *, order_value: str | None, refunded: str) -> None:
    check_remedy(
        Remedy(RemedyType.REFUND, amount=Decimal(amount), currency="CNY"),
        currency="CNY",
        order_value=None if order_value is None else Decimal(order_value),
        refunded=Decimal(refunded),
        course_id=None,
    )


def test_refunds_on_a_case_are_summed_against_the_order_value() -> None:
    """Two refunds of 1,500 on a 2,000 order: the second is refused, naming all three
    amounts; 500 more exactly reaches the order's value and passes."""
    refund("500", order_value="2000.00", refunded="1500.00")
    with pytest.raises(Invalid) as refused:
        refund("1500", order_value="2000.00", refunded="1500.00")
    assert refused.value.field == "amount"
    assert str(refused.value) == (
        "a refund of 1500.00 with the case's 1500.00 already refunded comes to 3000.00, "
        "above the order's 2000.00"
    )


def test_a_refund_on_a_case_without_its_order_value_names_the_order_value() -> None:
    with pytest.raises(Invalid) as refused:
        refund("10", order_value=None, refunded="0")
    assert refused.value.field == "order_value"
    assert "set the case's order_value first" in str(refused.value)


@pytest.mark.parametrize(
    ("order_value", "refunded", "reason"),
    [
        (
            "1000.00",
            "1500.00",
            "the case's refunds come to 1500.00, above an order value of 1000.00",
        ),
        (None, "200.00", "the case's refunds come to 200.00: its order value cannot be removed"),
        ("1500.00", "1500.00", None),
        (None, "0", None),
        ("1.00", "0", None),
    ],
)
def test_a_changed_order_value_must_still_cover_the_refunds(
    order_value: str | None, refunded: str, reason: str | None
) -> None:
    value = None if order_value is None else Decimal(order_value)
    if reason is None:
        check_order_value(value, refunded=Decimal(refunded))
        return
    with pytest.raises(Invalid) as refused:
        check_order_value(value, refunded=Decimal(refunded))
    assert (refused.value.field, str(refused.value)) == ("order_value", reason)


def test_a_remedy_in_another_currency_names_the_currency() -> None:
    with pytest.raises(Invalid) as refused:
        check_remedy(
            Remedy(RemedyType.COUPON, amount=Decimal(10), currency="USD"),
            currency="CNY",
            order_value=None,
            refunded=Decimal(0),
            course_id=None,
        )
    assert refused.value.field == "currency"


def test_an_extension_without_a_course_names_the_course() -> None:
    with pytest.raises(Invalid) as refused:
        check_remedy(
            Remedy(RemedyType.EXTENSION, days=7),
            currency="CNY",
            order_value=None,
            refunded=Decimal(0),
            course_id=None,
        )
    assert refused.value.field == "course_id"


def test_only_a_supervisor_opens_a_case_on_a_ticket_that_is_not_a_complaint() -> None:
    may_open_case(category="complaint", role=Role.AGENT)
    may_open_case(category="technical", role=Role.SUPERVISOR)
    with pytest.raises(NotAllowed):
        may_open_case(category="technical", role=Role.AGENT)


@pytest.mark.parametrize(
    ("finding", "undecided", "refused"),
    [(Finding.UPHELD, 0, False), (None, 0, True), (Finding.NOT_UPHELD, 1, True)],
)
def test_a_case_closes_with_a_finding_and_every_remedy_decided(
    finding: Finding | None, undecided: int, refused: bool
) -> None:
    if refused:
        with pytest.raises(Conflict):
            check_may_close(finding=finding, undecided=undecided)
    else:
        check_may_close(finding=finding, undecided=undecided)


def test_only_a_requested_remedy_takes_an_answer() -> None:
    check_answer(RemedyStatus.REQUESTED)
    with pytest.raises(Invalid):
        check_answer(RemedyStatus.PROPOSED)


REMEDY = TypeAdapter(RemedyIn)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "refund", "amount": "-5"}, "amount"),
        ({"type": "refund", "amount": "0"}, "amount"),
        ({"type": "refund", "amount": "10.005"}, "amount"),
        ({"type": "extension", "days": -3}, "days"),
        ({"type": "lessons", "lessons": 0}, "lessons"),
        ({"type": "points", "points": 1.5}, "points"),
        ({"type": "refund", "amount": "10", "currency": "yuan"}, "currency"),
        ({"type": "apology", "description": ""}, "description"),
    ],
)
def test_the_api_refuses_a_bad_remedy_naming_its_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        REMEDY.validate_python(body)
    assert [e["loc"][-1] for e in refused.value.errors()] == [field]


def test_an_unknown_remedy_type_is_named() -> None:
    with pytest.raises(ValidationError) as refused:
        REMEDY.validate_python({"type": "cash", "amount": "10"})
    (error,) = refused.value.errors()
    assert error["type"] == "union_tag_invalid"
    assert "'cash'" in error["msg"] and "'type'" in error["msg"]
