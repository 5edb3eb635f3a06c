"""Report periods on the local calendar (Asia/Shanghai by default): a day, an ISO week
(Monday to Monday) or a calendar month, as half-open [start, end) instants."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Kind(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in local dates: `end` is the first day not in the period."""

    kind: Kind
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"a period ends after it starts: {self.start} to {self.end}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The period's first and first-after instants, at local midnight in `zone`."""
        return midnight(self.start, zone), midnight(self.end, zone)

    def previous(self) -> "Period":
        """The period just before: the previous day, week or month, or as many days before."""
        if self.kind is Kind.MONTHLY:
            return month_of(self.start - timedelta(days=1))
        return Period(self.kind, self.start - timedelta(days=self.days), self.start)


def midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def day_of(day: date) -> Period:
    return Period(Kind.DAILY, day, day + timedelta(days=1))


def week_of(day: date) -> Period:
    monday = day - timedelta(days=day.weekday())
    return Period(Kind.WEEKLY, monday, monday + timedelta(days=7))


def month_of(day: date) -> Period:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return Period(Kind.MONTHLY, first, following)


OF = {Kind.DAILY: day_of, Kind.WEEKLY: week_of, Kind.MONTHLY: month_of}


def last_complete(kind: Kind, at: datetime, zone: ZoneInfo) -> Period:
    """The newest `kind` period that had ended by `at` (local time in `zone`): at 00:10 on a
    Monday, yesterday, last week and, on the 1st, last month."""
    today = at.astimezone(zone).date()
    current = OF[kind](today)
    return OF[kind](current.start - timedelta(days=1))


def custom(start: date, end: date) -> Period:
    """Any range of whole days; a range that is exactly a month or an ISO week is named so."""
    for kind, of in OF.items():
        if of(start) == Period(kind, start, end):
            return Period(kind, start, end)
    return Period(Kind.CUSTOM, start, end)
