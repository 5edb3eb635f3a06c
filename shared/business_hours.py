"""Business-hours arithmetic for SLA clocks: when a target falls due, and how much of it is used.

A team answers within its opening hours (a weekly schedule in its time zone, less holidays);
an SLA target in minutes counts only those hours (R5.1), and never the time a ticket waited
on the learner (R5.3). Pure functions on aware datetimes: no I/O, no clock of their own.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS = "24x7"
# No schedule has a gap longer than this many days (a long holiday, a weekend): a search for
# open hours that finds none in that span has a calendar that never opens.
_LONGEST_CLOSURE_DAYS = 400

Span = tuple[datetime, datetime]  # [start, end) in any time zone


class CalendarError(ValueError):
    """A calendar that cannot be: a bad time zone, weekday, hour range or date, or no hours."""


@dataclass(frozen=True, slots=True)
class Calendar:
    """When a team works: per weekday (0 = Monday) its open [start, end) hours in `tz`, except
    on `holidays` (local dates). `always` is a 24x7 calendar (urgent tickets, on-call teams)."""

    tz: ZoneInfo
    week: Mapping[int, tuple[tuple[time, time], ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    always: bool = False

    def __post_init__(self) -> None:
        if not self.always and not any(self.week.get(d) for d in range(7)):
            raise CalendarError("a calendar needs open hours on at least one weekday")

    def open_spans(self, start: datetime) -> Iterator[Span]:
        """The open spans from `start` on, in order, each clipped to begin no earlier."""
        if self.always:
            yield start, datetime.max.replace(tzinfo=start.tzinfo)
            return
        local = start.astimezone(self.tz)
        day = local.date()
        for _ in range(_LONGEST_CLOSURE_DAYS * 10):
            if day not in self.holidays:
                for opens, closes in self.week.get(day.weekday(), ()):
                    a = datetime.combine(day, opens, self.tz)
                    b = (
                        datetime.combine(day + timedelta(days=1), time(0), self.tz)
                        if closes == time(0)
                        else datetime.combine(day, closes, self.tz)
                    )
                    if b > start:
                        yield max(a, start), b
            day += timedelta(days=1)
        raise CalendarError("the calendar has no open hours in the years ahead")


def always(tz: str = "Asia/Shanghai") -> Calendar:
    return Calendar(tz=ZoneInfo(tz), always=True)


def due_at(start: datetime, minutes: float, calendar: Calendar) -> datetime:
    """When `minutes` of open time have passed since `start` (`start` itself when zero)."""
    return due_times(start, [minutes], calendar)[0]


def due_times(start: datetime, minutes: Sequence[float], calendar: Calendar) -> list[datetime]:
    """`due_at` of each of `minutes` from one `start`, walking the open hours once: a clock's
    thresholds and a ticket's two deadlines are placed on every new ticket, and each walk
    builds a few datetimes per day it crosses."""
    due = [start] * len(minutes)
    spans = calendar.open_spans(start)
    used = timedelta()  # open time in the spans walked past
    span: Span | None = None
    for i in sorted(range(len(minutes)), key=minutes.__getitem__):
        target = timedelta(minutes=minutes[i])
        if target <= timedelta():
            continue
        while True:
            a, b = span = span or next(spans)
            if used + (b - a) >= target:
                due[i] = a + (target - used)
                break
            used += b - a
            span = None
    return due


def elapsed_business_minutes(
    start: datetime, end: datetime, calendar: Calendar, pauses: Sequence[Span] = ()
) -> float:
    """Open minutes between `start` and `end`, not counting the `pauses` (time waiting on the
    learner; they may overlap each other or stick out of [start, end))."""
    if end <= start:
        return 0.0
    total = timedelta()
    for a, b in calendar.open_spans(start):
        if a >= end:
            break
        total += _minus(min(b, end) - a, a, min(b, end), pauses)
    return total.total_seconds() / 60


def _minus(length: timedelta, a: datetime, b: datetime, pauses: Sequence[Span]) -> timedelta:
    """`length` (= b - a) less the part of [a, b) the union of `pauses` covers."""
    covered = timedelta()
    cursor = a
    for pa, pb in sorted(pauses):
        lo, hi = max(pa, cursor), min(pb, b)
        if hi > lo:
            covered += hi - lo
            cursor = hi
    return length - covered


def parse_calendar(spec: str | Mapping[str, object]) -> Calendar:
    """A calendar from its settings form: "24x7", or {"timezone": "Asia/Shanghai",
    "week": {"mon": ["09:00-18:00"], ...}, "holidays": ["2026-10-01", ...]}; CalendarError
    names what is wrong."""
    if spec == ALWAYS:
        return always()
    if not isinstance(spec, Mapping):
        raise CalendarError(f'a calendar is "{ALWAYS}" or an object, not {spec!r}')
    unknown = set(spec) - {"timezone", "week", "holidays"}
    if unknown:
        raise CalendarError(f"unknown calendar fields: {', '.join(sorted(unknown))}")
    name = spec.get("timezone", "Asia/Shanghai")
    try:
        tz = ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"unknown time zone {name!r}") from None
    week_spec = spec.get("week", {})
    if not isinstance(week_spec, Mapping):
        raise CalendarError("week: an object of weekday -> list of 'HH:MM-HH:MM'")
    week: dict[int, tuple[tuple[time, time], ...]] = {}
    for day, ranges in week_spec.items():
        if day not in WEEKDAYS:
            raise CalendarError(f"week: unknown weekday {day!r} (use {', '.join(WEEKDAYS)})")
        if not isinstance(ranges, list):
            raise CalendarError(f"week.{day}: a list of 'HH:MM-HH:MM'")
        hours = sorted(_hours(day, r) for r in ranges)
        for (_, closes), (opens, _) in pairwise(hours):
            if closes == time(0) or opens < closes:
                raise CalendarError(f"week.{day}: hours overlap")
        week[WEEKDAYS.index(day)] = tuple(hours)
    holidays_spec = spec.get("holidays", [])
    if not isinstance(holidays_spec, list):
        raise CalendarError("holidays: a list of 'YYYY-MM-DD'")
    try:
        holidays = frozenset(date.fromisoformat(str(d)) for d in holidays_spec)
    except ValueError as exc:
        raise CalendarError(f"holidays: {exc}") from None
    return Calendar(tz=tz, week=week, holidays=holidays)


def _hours(day: str, text: object) -> tuple[time, time]:
    try:
        a, b = str(text).split("-")
        opens, closes = time.fromisoformat(a.strip()), time.fromisoformat(b.strip())
    except ValueError:
        raise CalendarError(f"week.{day}: {text!r} is not 'HH:MM-HH:MM'") from None
    if closes != time(0) and closes <= opens:
        raise CalendarError(f"week.{day}: {text!r} closes before it opens")
    return opens, closes
