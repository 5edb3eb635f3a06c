"""Business-hours arithmetic: due times and elapsed open minutes across nights, weekends,
holidays and pauses."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.business_hours import (
    CalendarError,
    always,
    due_at,
    due_times,
    elapsed_business_minutes,
    parse_calendar,
)

SH = ZoneInfo("Asia/Shanghai")
# Mondays to Fridays 09:00-18:00 with a lunch break, Saturday mornings; National Day off.
OFFICE = parse_calendar(
    {
        "timezone": "Asia/Shanghai",
        "week": {
            **{d: ["09:00-12:00", "13:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            "sat": ["09:00-12:00"],
        },
        "holidays": ["2026-10-01", "2026-10-02"],
    }
)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


def test_due_within_the_same_morning() -> None:
    assert due_at(sh(2026, 11, 30, 9, 30), 60, OFFICE) == sh(2026, 11, 30, 10, 30)


def test_due_skips_the_lunch_break() -> None:
    assert due_at(sh(2026, 11, 30, 11, 30), 60, OFFICE) == sh(2026, 11, 30, 13, 30)


def test_due_across_the_night() -> None:
    # Monday 17:30 + 2 h: 30 min on Monday, 90 min on Tuesday from 09:00.
    assert due_at(sh(2026, 11, 30, 17, 30), 120, OFFICE) == sh(2026, 12, 1, 10, 30)


def test_a_ticket_raised_at_night_counts_from_opening() -> None:
    assert due_at(sh(2026, 11, 30, 23, 0), 30, OFFICE) == sh(2026, 12, 1, 9, 30)


def test_due_across_the_weekend() -> None:
    # Saturday 11:00 + 2 h: 1 h on Saturday, none on Sunday, 1 h on Monday.
    assert due_at(sh(2026, 12, 5, 11, 0), 120, OFFICE) == sh(2026, 12, 7, 10, 0)


def test_due_skips_holidays() -> None:
    # Wednesday 30 Sep 17:00 + 2 h: 1 h that day, 1 Oct and 2 Oct are holidays,
    # Saturday 3 Oct opens 09:00.
    assert due_at(sh(2026, 9, 30, 17, 0), 120, OFFICE) == sh(2026, 10, 3, 10, 0)


def test_several_due_times_in_one_walk_in_any_order() -> None:
    # Friday 27 Nov 17:00: 1 h left that day, Saturday 09:00-12:00, Monday from 09:00.
    start = sh(2026, 11, 27, 17, 0)
    assert due_times(start, [600, 30, 0, 120, 240, 30], OFFICE) == [
        sh(2026, 11, 30, 16, 0),  # 60 + 180 + 180 on Monday morning + 180 after lunch
        sh(2026, 11, 27, 17, 30),
        start,
        sh(2026, 11, 28, 10, 0),
        sh(2026, 11, 28, 12, 0),  # used up as Saturday closes, not when Monday opens
        sh(2026, 11, 27, 17, 30),
    ]
    for minutes in (600, 30, 0, 120, 240):
        assert due_at(start, minutes, OFFICE) == due_times(start, [minutes], OFFICE)[0]


def test_zero_minutes_is_due_at_once() -> None:
    start = sh(2026, 11, 29, 3, 0)  # a Sunday night: closed
    assert due_at(start, 0, OFFICE) == start


def test_urgent_runs_around_the_clock() -> None:
    assert due_at(sh(2026, 12, 5, 23, 50), 30, always()) == sh(2026, 12, 6, 0, 20)


def test_due_is_the_same_instant_in_any_time_zone() -> None:
    start = sh(2026, 11, 30, 17, 30)
    assert due_at(start.astimezone(UTC), 120, OFFICE) == sh(2026, 12, 1, 10, 30)


def test_elapsed_counts_only_open_minutes() -> None:
    # Friday 17:00 to Monday 10:00: 60 + 180 (Saturday) + 60.
    assert elapsed_business_minutes(sh(2026, 12, 4, 17, 0), sh(2026, 12, 7, 10, 0), OFFICE) == 300


def test_elapsed_leaves_out_pauses() -> None:
    start, end = sh(2026, 11, 30, 9, 0), sh(2026, 11, 30, 12, 0)
    pauses = [(sh(2026, 11, 30, 10, 0), sh(2026, 11, 30, 11, 0))]
    assert elapsed_business_minutes(start, end, OFFICE, pauses) == 120


def test_overlapping_and_outlying_pauses_count_once() -> None:
    start, end = sh(2026, 11, 30, 9, 0), sh(2026, 11, 30, 12, 0)
    pauses = [
        (sh(2026, 11, 30, 8, 0), sh(2026, 11, 30, 9, 30)),
        (sh(2026, 11, 30, 9, 15), sh(2026, 11, 30, 10, 0)),
        (sh(2026, 11, 30, 11, 45), sh(2026, 11, 30, 14, 0)),
    ]
    assert elapsed_business_minutes(start, end, OFFICE, pauses) == 105


def test_a_pause_at_night_changes_nothing() -> None:
    start, end = sh(2026, 11, 30, 17, 0), sh(2026, 12, 1, 10, 0)
    night = [(sh(2026, 11, 30, 20, 0), sh(2026, 12, 1, 8, 0))]
    assert elapsed_business_minutes(start, end, OFFICE, night) == 120


def test_due_and_elapsed_agree() -> None:
    start = sh(2026, 12, 4, 16, 10)
    for minutes in (1, 50, 170, 600, 2000):
        end = due_at(start, minutes, OFFICE)
        assert elapsed_business_minutes(start, end, OFFICE) == pytest.approx(minutes)


def test_elapsed_of_an_empty_or_backward_span_is_zero() -> None:
    at = sh(2026, 11, 30, 10, 0)
    assert elapsed_business_minutes(at, at - timedelta(hours=1), OFFICE) == 0


def test_a_long_target_is_counted_in_open_days() -> None:
    # 5 open days of 8 h from Monday 09:00 end on Friday at closing; 3 h more take Saturday.
    assert due_at(sh(2026, 11, 30, 9, 0), 5 * 8 * 60, OFFICE) == sh(2026, 12, 4, 18, 0)
    assert due_at(sh(2026, 11, 30, 9, 0), 5 * 8 * 60 + 180, OFFICE) == sh(2026, 12, 5, 12, 0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"week": {}}, "at least one weekday"),
        ({"week": {"mon": ["18:00-09:00"]}}, "closes before it opens"),
        ({"week": {"mon": ["9-18"]}}, "is not 'HH:MM-HH:MM'"),
        ({"week": {"funday": ["09:00-18:00"]}}, "unknown weekday"),
        ({"week": {"mon": ["09:00-12:00", "11:00-18:00"]}}, "overlap"),
        ({"timezone": "Mars/Olympus", "week": {"mon": ["09:00-18:00"]}}, "unknown time zone"),
        ({"week": {"mon": ["09:00-18:00"]}, "holidays": ["2026-13-01"]}, "holidays"),
        ({"week": {"mon": ["09:00-18:00"]}, "hours": 1}, "unknown calendar fields: hours"),
        ("always", "24x7"),
    ],
)
def test_bad_calendars_are_refused_naming_the_problem(spec: object, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        parse_calendar(spec)  # type: ignore[arg-type]


def test_a_day_can_run_to_midnight() -> None:
    late = parse_calendar({"week": {"mon": ["20:00-00:00"]}})
    assert due_at(sh(2026, 11, 30, 23, 0), 90, late) == sh(2026, 12, 7, 20, 30)
