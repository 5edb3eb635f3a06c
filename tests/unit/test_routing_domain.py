"""Unit tests for services.routing.domain: SLA due times and agent candidates (triage: test_triage*)."""

from datetime import UTC, datetime, timedelta

import pytest

from services.routing.domain import AgentSkills, candidates, due_times
from shared.agents import Role
from shared.events import Priority

# ---- due_times ----------------------------------------------------------------------------

FIRST_RESPONSE = {"urgent": 30, "high": 60, "medium": 240, "low": 1440}
RESOLUTION = {"urgent": 120, "high": 480, "medium": 1440, "low": 4320}
START = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("priority", "first_response", "resolution"),
    [
        (Priority.URGENT, timedelta(minutes=30), timedelta(hours=2)),
        (Priority.HIGH, timedelta(hours=1), timedelta(hours=8)),
        (Priority.MEDIUM, timedelta(hours=4), timedelta(days=1)),
        (Priority.LOW, timedelta(days=1), timedelta(days=3)),
    ],
)
def test_due_times_add_the_targets_of_the_priority_to_the_start(
    priority: Priority, first_response: timedelta, resolution: timedelta
) -> None:
    due = due_times(
        priority, START, first_response_minutes=FIRST_RESPONSE, resolution_minutes=RESOLUTION
    )

    assert due == (START + first_response, START + resolution)


# ---- candidates ---------------------------------------------------------------------------


def _agent(
    agent_id: str,
    *,
    teams: tuple[str, ...] = ("tech_support",),
    languages: tuple[str, ...] = ("zh", "en"),
    role: Role = Role.AGENT,
) -> AgentSkills:
    return AgentSkills(
        agent_id=agent_id, role=role, teams=frozenset(teams), languages=frozenset(languages)
    )


def test_candidates_are_the_agents_of_the_team_who_speak_the_language_in_order() -> None:
    agents = [
        _agent("li", languages=("zh",)),
        _agent("smith", languages=("en",)),
        _agent("wang", languages=("zh", "en")),
        _agent("zhao", teams=("finance",), languages=("zh",)),
    ]

    assert candidates(agents, team="tech_support", language="zh") == ["li", "wang"]


def test_candidates_put_the_preferred_agent_first() -> None:
    agents = [_agent("li"), _agent("wang"), _agent("zhang")]

    assert candidates(agents, team="tech_support", language="zh", preferred="zhang") == [
        "zhang",
        "li",
        "wang",
    ]


def test_candidates_ignore_a_preferred_agent_who_lacks_the_skill() -> None:
    agents = [_agent("li"), _agent("zhao", teams=("finance",))]

    assert candidates(agents, team="tech_support", language="zh", preferred="zhao") == ["li"]


def test_candidates_for_a_supervisor_ticket_are_the_supervisors_and_admins_of_the_team() -> None:
    agents = [
        _agent("li"),
        _agent("chen", role=Role.SUPERVISOR),
        _agent("admin", role=Role.ADMIN),
        _agent("zhou", teams=("finance",), role=Role.SUPERVISOR),
    ]

    assert candidates(agents, team="tech_support", language="zh", supervisor=True) == [
        "chen",
        "admin",
    ]


def test_candidates_for_a_supervisor_ticket_fall_back_to_any_supervisor() -> None:
    agents = [
        _agent("li"),
        _agent("zhou", teams=("finance",), role=Role.SUPERVISOR),
    ]

    assert candidates(agents, team="tech_support", language="zh", supervisor=True) == ["zhou"]


def test_candidates_fall_back_to_the_team_when_nobody_speaks_the_language() -> None:
    agents = [
        _agent("li", languages=("zh",)),
        _agent("wang", languages=("zh",)),
        _agent("smith", teams=("finance",), languages=("en",)),
    ]

    assert candidates(agents, team="tech_support", language="en") == ["li", "wang"]


def test_candidates_are_empty_when_nobody_is_in_the_team() -> None:
    agents = [_agent("zhao", teams=("finance",))]

    assert candidates(agents, team="tech_support", language="zh") == []
