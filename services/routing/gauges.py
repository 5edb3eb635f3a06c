"""routing's state gauges for SREs: tickets waiting per team and priority, and who of each team
could take them now.

A background loop reads them from routing's tables every few seconds (two small reads: the
queue grouped, and the roster), off the hot path. Every team and priority is exported, with
0 where nothing waits or nobody is available: a team nobody can serve is a series at 0, which an
alert can see, not a series that is missing. Replicas read the same tables and export the same
values; the recording rules take the max over them.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from prometheus_client import Gauge

from services.routing.settings import RoutingSettings
from services.routing.skills import available, parse_schedule
from shared.events import Priority, now
from shared.service import Context, every

REFRESH_SECONDS = 5

QUEUE_DEPTH = Gauge(
    "careloop_routing_queue_depth",
    "Tickets waiting in a team's queue, by team and priority.",
    ["team", "priority"],
)
AGENTS_ONLINE = Gauge(
    "careloop_routing_agents_online",
    "Members of a team who may be given tickets now: online, seen within the presence TTL, "
    "on shift, with some capacity.",
    ["team"],
)


@dataclass(frozen=True, slots=True)
class Member:
    teams: Sequence[str]
    available: bool
    capacity: int


def queue_depths(
    teams: Iterable[str], waiting: Mapping[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    """Every (team, priority) of `teams`, 0 unless something waits; a team with a queue that
    is not in `teams` (renamed since) keeps its waiting tickets visible."""
    every_team = set(teams) | {team for team, _ in waiting}
    return {
        (team, p.value): waiting.get((team, p.value), 0)
        for team in sorted(every_team)
        for p in Priority
    }


def agents_online(teams: Iterable[str], members: Iterable[Member]) -> dict[str, int]:
    """Every team of `teams` (and of any member) with how many members can take a ticket now."""
    online = dict.fromkeys(teams, 0)
    for m in members:
        for team in m.teams:
            online[team] = online.get(team, 0) + (m.available and m.capacity > 0)
    return online


async def read(
    conn: asyncpg.Connection, *, presence_ttl: timedelta | None, at: datetime
) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """The queue depths and the agents online, from routing's tables as they are at `at`."""
    teams = [r["team"] for r in await conn.fetch("SELECT team FROM teams")]
    waiting = {
        (r["team"], r["priority"]): r["n"]
        for r in await conn.fetch("SELECT team, priority, count(*) AS n FROM queue GROUP BY 1, 2")
    }
    members = [
        Member(
            teams=r["teams"],
            available=available(
                online=r["online"],
                last_seen_at=r["last_seen_at"],
                schedule=parse_schedule(r["schedule"]),
                at=at,
                presence_ttl=presence_ttl,
            ),
            capacity=r["capacity"],
        )
        for r in await conn.fetch(
            "SELECT teams, capacity, online, last_seen_at, schedule FROM agents"
        )
    ]
    return queue_depths(teams, waiting), agents_online(teams, members)


def publish(depths: Mapping[tuple[str, str], int], online: Mapping[str, int]) -> None:
    """Replace the gauges' values: a team that is gone leaves no series behind."""
    QUEUE_DEPTH.clear()
    for (team, priority), n in depths.items():
        QUEUE_DEPTH.labels(team, priority).set(n)
    AGENTS_ONLINE.clear()
    for team, n in online.items():
        AGENTS_ONLINE.labels(team).set(n)


async def refresh_gauges(ctx: Context[RoutingSettings]) -> None:
    """routing's background task: the gauges every REFRESH_SECONDS."""

    async def step() -> bool:
        async with ctx.pool.acquire() as conn:
            depths, online = await read(conn, presence_ttl=ctx.settings.presence_ttl, at=now())
        publish(depths, online)
        return False

    await every(REFRESH_SECONDS, step, what="routing gauges")
