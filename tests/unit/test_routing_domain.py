"""Unit tests for services.routing.domain: SLA due times (who may take a ticket:
test_routing_skills; triage: test_triage*)."""

from datetime import UTC, datetime, timedelta

import pytest

from services.routing.domain import due_times
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
