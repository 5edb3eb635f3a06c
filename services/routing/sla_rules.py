"""routing's SLA decisions (R5): which thresholds a clock has, when each falls due, what a pause,
a resumption or a new priority does to a clock, and whether a queued ticket is at risk.

Pure: no I/O. services.routing.sla applies them to Postgres; shared.business_hours counts time.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.business_hours import (
    Calendar,
    always,
    due_at,
    due_times,
    elapsed_business_minutes,
    parse_calendar,
)
from shared.events import Category, Priority


class Threshold(StrEnum):
    """A moment a clock acts; each fires at most once per clock cycle."""

    WARNING = "warning"  # to the assignee
    BREACH = "breach"  # level 1: the team's supervisors
    MANAGEMENT = "management"  # level 2: admins, for urgent and complaint tickets
    AT_RISK = "at_risk"  # raised by prediction, not by time; recorded so it is raised once


@dataclass(frozen=True, slots=True)
class Policy:
    """The shares of a target at which each threshold fires, and who gets a second level."""

    warn_share: float = 0.75
    management_share: float = 1.5
    management_priorities: frozenset[Priority] = frozenset({Priority.URGENT})
    management_categories: frozenset[Category] = frozenset({Category.COMPLAINT})


def thresholds(
    priority: Priority, category: Category | None, policy: Policy
) -> list[tuple[Threshold, float]]:
    """The timed thresholds of a clock and their share of the target, in firing order: a
    warning, the breach, and for major tickets (002 §三.4) the escalation to management."""
    table = [(Threshold.WARNING, policy.warn_share), (Threshold.BREACH, 1.0)]
    if priority in policy.management_priorities or category in policy.management_categories:
        table.append((Threshold.MANAGEMENT, policy.management_share))
    return table


def calendar_for(
    priority: Priority, team: str, calendars: Mapping[str, Calendar], around_the_clock: Calendar
) -> Calendar:
    """Urgent tickets run 24x7; the rest on their team's hours, else the default calendar."""
    if priority is Priority.URGENT:
        return around_the_clock
    return calendars.get(team) or calendars["default"]


@dataclass(frozen=True, slots=True)
class Hours:
    """Every team's business hours, as the settings give them (a bad calendar raises
    CalendarError naming it, so routing does not start with it)."""

    calendars: Mapping[str, Calendar]
    around_the_clock: Calendar

    @classmethod
    def of(cls, specs: Mapping[str, Any]) -> "Hours":
        calendars = {team: parse_calendar(spec) for team, spec in specs.items()}
        return cls(calendars, always(calendars["default"].tz.key))

    def calendar(self, priority: Priority, team: str) -> Calendar:
        return calendar_for(priority, team, self.calendars, self.around_the_clock)


@dataclass(frozen=True, slots=True)
class Clock:
    """One target's clock: `consumed` open minutes before the current run, which started at
    `running_since` (None: paused, waiting on the learner)."""

    target_minutes: float
    consumed_minutes: float
    running_since: datetime | None

    @property
    def running(self) -> bool:
        return self.running_since is not None


def start(target_minutes: float, at: datetime) -> Clock:
    return Clock(target_minutes, 0.0, at)


def due(clock: Clock, calendar: Calendar) -> datetime | None:
    """When the target is reached if the clock keeps running (None while paused)."""
    if clock.running_since is None:
        return None
    return due_at(clock.running_since, clock.target_minutes - clock.consumed_minutes, calendar)


def fire_times(
    clock: Clock, table: Sequence[tuple[Threshold, float]], calendar: Calendar
) -> dict[Threshold, datetime]:
    """When each threshold of `table` falls due on a running clock (a share already used up
    falls due at once); a paused clock has none."""
    if clock.running_since is None:
        return {}
    left = [max(0.0, share * clock.target_minutes - clock.consumed_minutes) for _, share in table]
    times = due_times(clock.running_since, left, calendar)
    return {threshold: at for (threshold, _), at in zip(table, times, strict=True)}


def pause(clock: Clock, at: datetime, calendar: Calendar) -> Clock:
    """Stop counting at `at`: the open time run so far is kept, the wait is not counted."""
    if clock.running_since is None:
        return clock
    used = elapsed_business_minutes(clock.running_since, at, calendar)
    return Clock(clock.target_minutes, clock.consumed_minutes + used, None)


def resume(clock: Clock, at: datetime) -> Clock:
    """Count again from `at`, on top of what was used before the pause."""
    if clock.running_since is not None:
        return clock
    return replace(clock, running_since=at)


def retarget(clock: Clock, target_minutes: float) -> Clock:
    """A new priority's target; the time used so far still counts against it."""
    return replace(clock, target_minutes=target_minutes)


def predicted_first_response(
    *, at: datetime, position: int, assigned_recently: int, window_minutes: float
) -> datetime | None:
    """When a ticket `position` places from the head of its queue (0: next) should be taken,
    at the team's recent pace; None when the team took nothing in the window (no pace)."""
    if assigned_recently <= 0:
        return None
    per_minute = assigned_recently / window_minutes
    return at + timedelta(minutes=(position + 1) / per_minute)


def at_risk(*, predicted: datetime | None, due_at: datetime) -> bool:
    """Whether a queued ticket is likely to breach its first response: its predicted pick-up
    is after the due time, or its team took nobody in the window (no pace: nothing predicts
    it will be taken at all)."""
    return predicted is None or predicted > due_at
