"""The early warning (R11.1), every CARELOOP_INCIDENT_WATCH_SECONDS: each category's,
course's and channel's tickets of the last window against its baseline for this hour of the
week, and the complaint and fault rates against their thresholds. A key that fires raises
`alert.raised` (its problem named from its tickets' text) and, for a volume alert, opens an
incident when CARELOOP_INCIDENT_AUTO_OPEN is on. Until CARELOOP_INCIDENT_LEARNING_WEEKS of
history are held the volume test only scores (the gauge), it neither alerts nor opens."""

import asyncio
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog
from prometheus_client import Counter, Gauge
from uuid6 import uuid7

from services.incident import repo
from services.incident.detector import assess, rate_fires, same_hours
from services.incident.domain import IncidentIn
from services.incident.handlers import Incidents, hour_of, keyed
from services.incident.naming import name_problem
from services.incident.settings import IncidentSettings
from shared import outbox
from shared.events import AlertDimension, AlertKind, AlertRaised, IncidentSeverity, now
from shared.service import Context, every

log = structlog.get_logger(__name__)

ALERTS = Counter(
    "careloop_incident_alerts_total", "Alerts the early warning raised, by kind.", ["kind"]
)
SCORE = Gauge(
    "careloop_incident_anomaly_score",
    "The highest anomaly score (-log10 of the tail probability of the last window's ticket "
    "count under its baseline, at most 30) among the keys of each dimension, at the last look.",
    ["dimension"],
)
VOLUME_DIMENSIONS = (AlertDimension.CATEGORY, AlertDimension.COURSE, AlertDimension.CHANNEL)
# A burst shows on several keys at once (a course's tickets are also a channel's and a
# category's): the most specific key alerts first, and its incident then holds the tickets
# the others would alert about.
SPECIFIC_FIRST = ("course", "category", "channel")
# A key whose recent tickets an open incident mostly holds raises no alert of its own.
HELD = 0.5
RAISE_LOCK = 0x1C1A  # pg_advisory_xact_lock key: one alert raised at a time
for _d in VOLUME_DIMENSIONS:
    SCORE.labels(_d.value)
for _k in AlertKind:
    ALERTS.labels(_k.value)


class Watch:
    def __init__(self, ctx: Context[IncidentSettings], incidents: Incidents) -> None:
        self._ctx = ctx
        self._s = ctx.settings
        self._incidents = incidents

    async def run(self, _: Context[IncidentSettings]) -> None:
        async def step() -> bool:
            await self.look()
            return False

        await every(self._s.watch_seconds, step, what="early warning")

    async def look(self, at: datetime | None = None) -> list[dict[str, Any]]:
        """One look at the recent tickets; returns the alerts it raised."""
        at = at or now()
        raised: list[dict[str, Any]] = []
        async with self._ctx.pool.acquire() as conn:
            for alert in await self._volume(conn, at) + await self._rates(conn, at):
                async with conn.transaction():
                    # Replicas look at the same tickets: one raises, the next finds it silenced.
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", RAISE_LOCK)
                    if await self._raise(conn, alert, at):
                        raised.append(alert)
        for alert in raised:
            ALERTS.labels(alert["kind"]).inc()
            log.warning(
                "alert raised",
                kind=alert["kind"],
                dimension=alert["dimension"],
                value=alert["value"],
                observed=alert["observed"],
                expected=round(alert["expected"], 2),
            )
        return raised

    async def _volume(self, conn: asyncpg.Connection, at: datetime) -> list[dict[str, Any]]:
        window = timedelta(minutes=self._s.window_minutes)
        observed = {
            (r["dimension"], r["value"]): r["observed"]
            for r in await repo.tickets.window_counts(conn, at - window)
        }
        hour = hour_of(at)
        start = await repo.tickets.history_start(conn)
        weeks = 0 if start is None else min(self._s.baseline_weeks, (hour - start).days // 7)
        hours = same_hours(hour, weeks=weeks, zone=self._s.zone)
        # The key's mean over every hour held, up to the weeks the baseline learns from.
        since = max(start or hour, hour - timedelta(weeks=self._s.baseline_weeks))
        held_hours = max((hour - since) / timedelta(hours=1), 1.0)
        baselines = await repo.tickets.baselines(
            conn, list(observed), hours=hours, since=since, until=hour
        )
        scores = dict.fromkeys(VOLUME_DIMENSIONS, 0.0)
        fired = []
        for (dimension, value), count in observed.items():
            same, total = baselines.get((dimension, value), ({}, 0))
            a = assess(
                count,
                same_hour=[same.get(h, 0) for h in hours],
                mean_per_hour=total / held_hours,
                limits=self._s.thresholds,
                keys=len(observed),
            )
            scores[AlertDimension(dimension)] = max(scores[AlertDimension(dimension)], a.score)
            if a.fires:
                fired.append(
                    {
                        "kind": AlertKind.VOLUME.value,
                        "dimension": dimension,
                        "value": value,
                        "observed": float(a.observed),
                        "expected": a.expected,
                        "p_value": a.p_value,
                        "window_minutes": self._s.window_minutes,
                    }
                )
        for dimension, score in scores.items():
            SCORE.labels(dimension.value).set(score)
        return sorted(fired, key=lambda a: SPECIFIC_FIRST.index(a["dimension"]))

    async def _rates(self, conn: asyncpg.Connection, at: datetime) -> list[dict[str, Any]]:
        minutes = self._s.rate_window_minutes
        r = await repo.tickets.rates(conn, at - timedelta(minutes=minutes))
        fired = []
        for kind, part, threshold, category in (
            (AlertKind.COMPLAINT_RATE, r["complaints"], self._s.complaint_rate, "complaint"),
            (AlertKind.FAULT_RATE, r["faults"], self._s.fault_rate, "technical"),
        ):
            if rate_fires(
                part, r["total"], threshold=threshold, min_tickets=self._s.rate_min_tickets
            ):
                fired.append(
                    {
                        "kind": kind.value,
                        "dimension": AlertDimension.CATEGORY.value,
                        "value": category,
                        "observed": part / r["total"],
                        "expected": threshold,
                        "p_value": None,
                        "window_minutes": minutes,
                    }
                )
        return fired

    async def _raise(self, conn: asyncpg.Connection, alert: dict[str, Any], at: datetime) -> bool:
        """Name the problem, store the alert, announce it and (volume) open its incident;
        False when the key alerted lately or its incident is still open."""
        key = {"dimension": alert["dimension"], "value": alert["value"]}
        window_start = at - timedelta(minutes=alert["window_minutes"])
        if await repo.incidents.silenced(
            conn,
            kind=alert["kind"],
            **key,
            since=at - timedelta(minutes=self._s.cooldown_minutes),
        ):
            return False
        if (
            alert["kind"] == AlertKind.VOLUME
            and await repo.tickets.held_share(conn, **key, since=window_start) >= HELD
        ):
            return False  # the same tickets as an incident already open: no second one
        found = await repo.tickets.texts(conn, **key, since=window_start)
        naming = await asyncio.to_thread(
            name_problem,
            [t["subject"] or "" for t in found],
            [f"{t['subject']}\n{t['description']}" for t in found],
        )
        alert |= {
            "alert_id": uuid7(),
            "title": naming.title or f"{alert['dimension']} {alert['value']}",
            "keywords": list(naming.keywords),
            "sample_ticket_ids": [found[i]["ticket_id"] for i in naming.members[:20]],
            "raised_at": at,
        }
        await repo.incidents.add_alert(conn, alert)
        raised = AlertRaised(
            alert_id=alert["alert_id"],
            kind=AlertKind(alert["kind"]),
            dimension=AlertDimension(alert["dimension"]),
            value=alert["value"],
            observed=alert["observed"],
            expected=alert["expected"],
            p_value=alert["p_value"],
            window_minutes=alert["window_minutes"],
            title=alert["title"],
            keywords=tuple(alert["keywords"]),
            sample_ticket_ids=tuple(alert["sample_ticket_ids"]),
            raised_at=at,
        )
        await outbox.add(conn, [keyed(raised, alert["alert_id"])])
        if self._s.auto_open and alert["kind"] == AlertKind.VOLUME:
            stored = await repo.incidents.alert(conn, alert["alert_id"])
            await self._incidents.open_in(
                conn,
                IncidentIn(alert_id=alert["alert_id"], severity=IncidentSeverity.SEV2),
                alert=stored,
                by="incident",
            )
        return True

    async def forget(self, _: Context[IncidentSettings]) -> None:
        """Tickets no incident links are dropped after CARELOOP_INCIDENT_TICKET_RETENTION_DAYS;
        the hourly counts the baseline learns from stay."""

        async def step() -> bool:
            before = now() - timedelta(days=self._s.ticket_retention_days)
            async with self._ctx.pool.acquire() as conn:
                return await repo.tickets.forget_tickets(conn, before) > 0

        await every(600, step, what="ticket retention")
