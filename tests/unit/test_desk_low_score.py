"""A low survey score always reaches a supervisor, whatever state its ticket is in."""

import pytest

from services.desk.domain import LowScore, Status, low_score_outcome


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.CLOSED])
def test_a_low_score_reopens_a_resolved_or_closed_ticket(status: Status) -> None:
    assert low_score_outcome(status, needs_supervisor=False) is LowScore.REOPEN


@pytest.mark.parametrize("status", [Status.REOPENED, Status.QUEUED, Status.ASSIGNED, Status.NEW])
def test_a_low_score_escalates_a_ticket_still_being_worked(status: Status) -> None:
    assert low_score_outcome(status, needs_supervisor=False) is LowScore.ESCALATE


@pytest.mark.parametrize("status", [Status.REOPENED, Status.QUEUED, Status.ASSIGNED])
def test_a_low_score_on_a_ticket_already_with_a_supervisor_is_only_noted(status: Status) -> None:
    assert low_score_outcome(status, needs_supervisor=True) is LowScore.NOTED


def test_a_low_score_reopens_a_closed_ticket_even_after_an_earlier_escalation() -> None:
    assert low_score_outcome(Status.CLOSED, needs_supervisor=True) is LowScore.REOPEN
