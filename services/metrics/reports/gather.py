"""A period's report as data: its KPIs and the previous period's, the breakdowns, the series
for the charts, the top problems and the improvement actions measured before and after."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from services.metrics.reports import repo
from services.metrics.reports.domain import (
    KPIS,
    Change,
    Measured,
    Problem,
    changes,
    kpis,
    measured,
    overdue,
    share,
    top_problems,
)
from services.metrics.reports.periods import Period

DIMENSIONS = ("channel", "category", "priority", "team", "tier", "course_line")
SCORES = ("overall", "response_speed", "problem_solving", "attitude")


@dataclass(frozen=True, slots=True)
class Action:
    row: dict[str, Any]
    measured: Measured
    overdue: bool


@dataclass
class Report:
    period: Period
    previous: Period
    zone: str
    generated_at: datetime
    kpis: dict[str, float | None]
    changes: dict[str, Change]
    breakdowns: dict[str, list[dict[str, Any]]]
    satisfaction: dict[str, list[dict[str, Any]]]
    scores: dict[str, float | None]
    distribution: dict[int, int]
    step: str
    series: list[dict[str, Any]]
    problems: list[Problem]
    followup: "FollowUp"
    actions: list[Action] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The follow-up programme's results in the period (R9.3, R9.4): the periodic surveys'
    scores, their courses' by course line, and the call-backs made, per reason."""

    periodic: dict[str, Any]
    courses: list[dict[str, Any]]
    callbacks: list[dict[str, Any]]


async def follow_up(conn: asyncpg.Connection, start: datetime, end: datetime) -> FollowUp:
    periodic = dict(await repo.periodic_scores(conn, start, end))
    periodic["satisfied_share"] = share(periodic["satisfied"], periodic["surveys"])
    return FollowUp(
        periodic=periodic,
        courses=[dict(r) for r in await repo.course_scores(conn, start, end)],
        callbacks=[
            {**dict(r), "reached_share": share(r["reached"], r["made"])}
            for r in await repo.callbacks(conn, start, end)
        ],
    )


def step_of(period: Period) -> str:
    """The charts' resolution: hours for a day or two, days up to a quarter, else weeks."""
    if period.days <= 2:
        return "hour"
    return "day" if period.days <= 92 else "week"


class Figures:
    """KPIs per [start, end), each range counted once however many actions share it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._known: dict[tuple[datetime, datetime], dict[str, float | None]] = {}

    async def of(self, start: datetime, end: datetime) -> dict[str, float | None]:
        if (start, end) not in self._known:
            self._known[start, end] = kpis(await repo.period_counts(self._conn, start, end))
        return self._known[start, end]


async def gather(
    conn: asyncpg.Connection,
    period: Period,
    *,
    zone: ZoneInfo,
    now: datetime,
    action_window_days: int,
) -> Report:
    start, end = period.bounds(zone)
    previous = period.previous()
    figures = Figures(conn)
    current = await figures.of(start, end)
    before = await figures.of(*previous.bounds(zone))

    breakdowns: dict[str, list[dict[str, Any]]] = {d: [] for d in DIMENSIONS}
    for r in await repo.breakdowns(conn, start, end):
        breakdowns[r["dimension"]].append(
            {
                **dict(r),
                "share": share(r["tickets"], current["tickets"] or 0),
                "resolved_share": share(r["resolved"], r["tickets"]),
            }
        )
    satisfaction: dict[str, list[dict[str, Any]]] = {}
    for r in await repo.satisfaction_by(conn, start, end):
        satisfaction.setdefault(r["dimension"], []).append(
            {**dict(r), "satisfied_share": share(r["satisfied"], r["surveys"])}
        )
    overall = satisfaction.pop("all", [{}])[0]
    step = step_of(period)
    series = [dict(r) for r in await repo.series(conn, start, end, step=step, zone=zone.key)]
    problems = top_problems(
        await repo.subjects(conn, start, end),
        await repo.subjects(conn, *previous.bounds(zone)),
    )
    report = Report(
        period=period,
        previous=previous,
        zone=zone.key,
        generated_at=now,
        kpis=current,
        changes=changes(current, before),
        breakdowns=breakdowns,
        satisfaction=satisfaction,
        scores={s: overall.get(s) for s in SCORES},
        distribution=await repo.score_distribution(conn, start, end),
        step=step,
        series=series,
        problems=problems,
        followup=await follow_up(conn, start, end),
    )
    report.actions = await _actions(
        conn, figures, period, zone=zone, now=now, window=timedelta(days=action_window_days)
    )
    return report


async def _actions(
    conn: asyncpg.Connection,
    figures: Figures,
    period: Period,
    *,
    zone: ZoneInfo,
    now: datetime,
    window: timedelta,
) -> list[Action]:
    """The actions under way in the period (started before its end, not finished before its
    start), each with its metric over `window` before its start and from its start on."""
    start, end = period.bounds(zone)
    found = []
    for row in await repo.actions(conn, started_before=period.end, since=start):
        found.append(
            await measure_action(figures, dict(row), zone=zone, until=min(end, now), window=window)
        )
    return found


async def measure_action(
    figures: Figures, row: dict[str, Any], *, zone: ZoneInfo, until: datetime, window: timedelta
) -> Action:
    began = datetime.combine(row["started_on"], datetime.min.time(), tzinfo=zone)
    after_end = min(until, began + window)
    metric = row["target_metric"]
    before = (await figures.of(began - window, began))[metric]
    after = (await figures.of(began, after_end))[metric] if after_end > began else None
    today: date = until.astimezone(zone).date()
    return Action(
        row=row,
        measured=measured(metric, before, after, row["target_value"]),
        overdue=overdue(row["status"], row["deadline"], today),
    )


__all__ = ["KPIS", "Action", "Figures", "FollowUp", "Report", "gather", "measure_action"]
