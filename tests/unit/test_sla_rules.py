"""routing's SLA decisions: the threshold table, pauses and resumptions, re-targeting, reopen
and breach prediction."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.routing.sla_rules import (
    Clock,
    Policy,
    Threshold,
    at_risk,
    calendar_for,
    due,
    fire_times,
    pause,
    predicted_first_response,
    resume,
    retarget,
    start,
    thresholds,
)
from shared.business_hours import always, parse_calendar
from shared.events import Category, Priority

SH = ZoneInfo("Asia/Shanghai")
OFFICE = parse_calendar({"week": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}})
POLICY = Policy()


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("priority", "category", "expected"),
    [
        (Priority.LOW, Category.TECHNICAL, [("warning", 0.75), ("breach", 1.0)]),
        (Priority.HIGH, Category.PAYMENT_REFUND, [("warning", 0.75), ("breach", 1.0)]),
        (
            Priority.URGENT,
            Category.ACCOUNT_SECURITY,
            [("warning", 0.75), ("breach", 1.0), ("management", 1.5)],
        ),
        (
            Priority.MEDIUM,
            Category.COMPLAINT,
            [("warning", 0.75), ("breach", 1.0), ("management", 1.5)],
        ),
        (Priority.MEDIUM, None, [("warning", 0.75), ("breach", 1.0)]),
    ],
)
def test_threshold_table(
    priority: Priority, category: Category | None, expected: list[tuple[str, float]]
) -> None:
    assert [(t.value, s) for t, s in thresholds(priority, category, POLICY)] == expected


def test_thresholds_follow_the_configured_shares() -> None:
    policy = Policy(warn_share=0.5, management_share=2.0)
    table = dict(thresholds(Priority.URGENT, None, policy))
    assert table == {Threshold.WARNING: 0.5, Threshold.BREACH: 1.0, Threshold.MANAGEMENT: 2.0}


def test_urgent_tickets_run_24x7_whatever_their_team() -> None:
    calendars = {"default": OFFICE}
    night = always()
    assert calendar_for(Priority.URGENT, "finance", calendars, night) is night
    assert calendar_for(Priority.HIGH, "finance", calendars, night) is OFFICE


def test_a_team_calendar_wins_over_the_default() -> None:
    weekend = parse_calendar({"week": {"sat": ["10:00-16:00"]}})
    calendars = {"default": OFFICE, "learning_advisors": weekend}
    assert calendar_for(Priority.LOW, "learning_advisors", calendars, always()) is weekend


def test_fire_times_in_business_hours() -> None:
    clock = start(120, sh(2026, 11, 30, 17, 0))  # Monday 17:00, a 2 h target
    times = fire_times(clock, thresholds(Priority.HIGH, None, POLICY), OFFICE)
    assert times == {
        Threshold.WARNING: sh(2026, 12, 1, 9, 30),
        Threshold.BREACH: sh(2026, 12, 1, 10, 0),
    }


def test_a_paused_clock_has_no_due_time_and_no_timers() -> None:
    clock = pause(start(60, sh(2026, 11, 30, 9, 0)), sh(2026, 11, 30, 9, 40), OFFICE)
    assert clock.consumed_minutes == 40
    assert due(clock, OFFICE) is None
    assert fire_times(clock, thresholds(Priority.HIGH, None, POLICY), OFFICE) == {}


def test_the_wait_on_the_learner_is_not_counted() -> None:
    clock = start(60, sh(2026, 11, 30, 9, 0))
    clock = pause(clock, sh(2026, 11, 30, 9, 40), OFFICE)  # 40 min used
    clock = resume(clock, sh(2026, 11, 30, 15, 0))  # the learner answered at 15:00
    assert due(clock, OFFICE) == sh(2026, 11, 30, 15, 20)


def test_a_threshold_passed_before_the_pause_falls_due_at_resumption() -> None:
    clock = pause(start(60, sh(2026, 11, 30, 9, 0)), sh(2026, 11, 30, 9, 50), OFFICE)
    clock = resume(clock, sh(2026, 12, 1, 11, 0))
    times = fire_times(clock, thresholds(Priority.HIGH, None, POLICY), OFFICE)
    assert times[Threshold.WARNING] == sh(2026, 12, 1, 11, 0)
    assert times[Threshold.BREACH] == sh(2026, 12, 1, 11, 10)


def test_pausing_twice_or_resuming_a_running_clock_changes_nothing() -> None:
    running = start(60, sh(2026, 11, 30, 9, 0))
    assert resume(running, sh(2026, 11, 30, 10, 0)) == running
    paused = pause(running, sh(2026, 11, 30, 9, 30), OFFICE)
    assert pause(paused, sh(2026, 11, 30, 11, 0), OFFICE) == paused


def test_a_pause_overnight_counts_only_open_time_before_it() -> None:
    clock = pause(start(120, sh(2026, 11, 30, 17, 0)), sh(2026, 12, 1, 8, 0), OFFICE)
    assert clock.consumed_minutes == 60


def test_a_new_priority_keeps_the_time_used() -> None:
    clock = start(480, sh(2026, 11, 30, 9, 0))
    clock = pause(clock, sh(2026, 11, 30, 10, 0), OFFICE)
    clock = resume(retarget(clock, 120), sh(2026, 11, 30, 10, 0))
    assert due(clock, OFFICE) == sh(2026, 11, 30, 11, 0)


def test_a_reopened_ticket_starts_afresh() -> None:
    reopened = start(240, sh(2026, 12, 2, 16, 0))
    assert reopened == Clock(240, 0.0, sh(2026, 12, 2, 16, 0))
    assert due(reopened, OFFICE) == sh(2026, 12, 3, 11, 0)


def test_prediction_from_queue_position_and_throughput() -> None:
    at = sh(2026, 11, 30, 10, 0)
    # 30 assignments in 30 minutes: one a minute; 4 ahead, so the fifth minute.
    predicted = predicted_first_response(at=at, position=4, assigned_recently=30, window_minutes=30)
    assert predicted == at + timedelta(minutes=5)


def test_no_recent_throughput_predicts_nothing() -> None:
    at = sh(2026, 11, 30, 10, 0)
    assert (
        predicted_first_response(at=at, position=0, assigned_recently=0, window_minutes=30) is None
    )


def test_at_risk_when_the_prediction_passes_the_due_time() -> None:
    due_at = sh(2026, 11, 30, 10, 30)
    assert at_risk(predicted=due_at + timedelta(minutes=1), due_at=due_at)
    assert not at_risk(predicted=due_at - timedelta(minutes=1), due_at=due_at)
    assert at_risk(predicted=None, due_at=due_at)
