"""Unit tests for services.routing.domain: SLA due times (who may take a ticket:
test_routing_skills; triage: test_triage*)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.routing.domain import Triage, as_follow_up, due_times
from shared.business_hours import always, parse_calendar
from shared.events import Category, Priority

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
        priority,
        START,
        first_response_minutes=FIRST_RESPONSE,
        resolution_minutes=RESOLUTION,
        calendar=always(),
    )

    assert due == (START + first_response, START + resolution)


def test_due_times_count_only_the_teams_business_hours() -> None:
    office = parse_calendar(
        {"timezone": "Asia/Shanghai", "week": {d: ["09:00-18:00"] for d in ("mon", "tue")}}
    )
    friday_evening = datetime(2026, 11, 27, 17, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

    first, _ = due_times(
        Priority.HIGH,
        friday_evening,
        first_response_minutes=FIRST_RESPONSE,
        resolution_minutes=RESOLUTION,
        calendar=office,
    )

    # 60 minutes, but Friday is closed in this calendar: Monday 09:00 + 60 minutes
    assert first == datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


# ---- the follow-up of a low periodic-survey score ------------------------------------------


def triaged(priority: Priority) -> Triage:
    return Triage(Category.OTHER, priority, "customer_service", (), 0.4, "other at 40%; low: text")


def test_a_low_score_follow_up_is_at_least_high_and_says_why() -> None:
    raised = as_follow_up(triaged(Priority.LOW))
    assert (raised.priority, raised.reason) == (
        Priority.HIGH,
        "other at 40%; low: text; a low periodic survey score: high",
    )
    assert as_follow_up(triaged(Priority.MEDIUM)).priority is Priority.HIGH
    for kept in (Priority.HIGH, Priority.URGENT):
        assert as_follow_up(triaged(kept)) == triaged(kept)
