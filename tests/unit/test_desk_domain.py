"""Unit tests for services.desk.domain: who may see and work a ticket, and learner answers."""

import pytest

from services.desk.domain import (
    Answer,
    Conflict,
    NotAllowed,
    NotFound,
    Status,
    answer_outcome,
    check_may_see,
    check_may_work,
)
from shared.agents import Role
from shared.errors import PermanentError, is_transient

# ---- check_may_see ------------------------------------------------------------------------


def test_an_agent_may_see_a_ticket_assigned_to_them() -> None:
    check_may_see(agent_id="li", role=Role.AGENT, assignee_id="li")


def test_an_agent_may_not_see_a_ticket_assigned_to_someone_else() -> None:
    with pytest.raises(NotFound):
        check_may_see(agent_id="li", role=Role.AGENT, assignee_id="wang")


def test_an_agent_may_not_see_an_unassigned_ticket() -> None:
    with pytest.raises(NotFound):
        check_may_see(agent_id="li", role=Role.AGENT, assignee_id=None)


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.ADMIN])
@pytest.mark.parametrize("assignee_id", ["wang", None])
def test_supervisors_and_admins_may_see_any_ticket(role: Role, assignee_id: str | None) -> None:
    check_may_see(agent_id="chen", role=role, assignee_id=assignee_id)


def test_not_allowed_is_a_permanent_error() -> None:
    error = NotAllowed("this ticket is not assigned to you")

    assert isinstance(error, PermanentError)
    assert not is_transient(error)


# ---- check_may_work -----------------------------------------------------------------------


def test_an_agent_may_work_an_assigned_ticket_of_their_own() -> None:
    check_may_work(agent_id="li", role=Role.AGENT, assignee_id="li", status=Status.ASSIGNED)


def test_an_agent_may_not_work_a_ticket_assigned_to_someone_else() -> None:
    with pytest.raises(NotAllowed):
        check_may_work(
            agent_id="li",
            role=Role.AGENT,
            assignee_id="wang",
            status=Status.ASSIGNED,
            teams=("tech_support",),
            team="tech_support",
        )


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.ADMIN])
def test_supervisors_and_admins_may_work_a_ticket_assigned_to_someone_else(role: Role) -> None:
    check_may_work(agent_id="chen", role=role, assignee_id="li", status=Status.ASSIGNED)


@pytest.mark.parametrize(
    "status",
    [Status.NEW, Status.QUEUED, Status.RESOLVED, Status.CLOSED, Status.REOPENED],
)
def test_a_ticket_that_is_not_assigned_cannot_be_worked(status: Status) -> None:
    with pytest.raises(Conflict, match=str(status)):
        check_may_work(agent_id="li", role=Role.AGENT, assignee_id="li", status=status)


def test_a_supervisor_may_not_work_a_ticket_that_is_not_assigned() -> None:
    with pytest.raises(Conflict):
        check_may_work(
            agent_id="chen", role=Role.SUPERVISOR, assignee_id=None, status=Status.QUEUED
        )


def test_working_someone_elses_closed_ticket_is_refused_as_not_allowed_first() -> None:
    with pytest.raises(NotAllowed):
        check_may_work(
            agent_id="li",
            role=Role.AGENT,
            assignee_id="wang",
            status=Status.CLOSED,
            teams=("tech_support",),
            team="tech_support",
        )


# ---- answer_outcome -----------------------------------------------------------------------


def test_a_solved_answer_closes_a_resolved_ticket() -> None:
    assert answer_outcome(Status.RESOLVED, Answer.SOLVED) is Status.CLOSED


def test_a_not_solved_answer_reopens_a_resolved_ticket() -> None:
    assert answer_outcome(Status.RESOLVED, Answer.NOT_SOLVED) is Status.REOPENED


@pytest.mark.parametrize(
    "status",
    [Status.NEW, Status.QUEUED, Status.ASSIGNED, Status.CLOSED, Status.REOPENED],
)
@pytest.mark.parametrize("answer", [Answer.SOLVED, Answer.NOT_SOLVED])
def test_an_answer_to_a_ticket_that_is_not_resolved_is_a_conflict(
    status: Status, answer: Answer
) -> None:
    with pytest.raises(Conflict, match=str(status)):
        answer_outcome(status, answer)
