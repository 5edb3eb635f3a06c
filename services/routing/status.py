"""Agents' status for the others (desk's supervisor board), and desk's word that an agent is
using the workspace.

routing owns presence, capacity, schedules and live load; desk must not ask for them on every
page. So routing announces each agent's state on careloop.routing.v1 (`agent.status`, key =
agent id): at once when it changed (looked at every sweep interval: one query and one Redis
read for all agents) and every `status_interval_seconds` in full, so that a consumer that
lost its read model, or a replica's missed change, is right again within that time.

desk, in turn, says when an agent used the workspace (`agent.seen` on careloop.people.v1):
routing moves their `last_seen_at` forward, which keeps their presence alive under
CARELOOP_ROUTING_PRESENCE_TTL_SECONDS without the workspace calling routing's heartbeat. And
a supervisor's change on desk's board (`agent.change_requested`: online/offline, capacity)
is applied here and audited as that supervisor.
"""

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import structlog

from services.routing import repo
from services.routing.api import config
from services.routing.handlers import Router
from services.routing.settings import RoutingSettings
from services.routing.skills import MILLI
from shared import outbox
from shared.errors import PermanentError
from shared.events import (
    AgentChangeRequested,
    AgentSeen,
    AgentStatus,
    Envelope,
    new_event,
    now,
)
from shared.inbox import AfterCommit, Handler
from shared.service import Context, every

log = structlog.get_logger(__name__)
PRODUCER = "routing"


def status_of(
    row: asyncpg.Record, *, available: bool, on_shift: bool, load: tuple[int, int], at: datetime
) -> AgentStatus:
    return AgentStatus(
        agent_id=row["agent_id"],
        online=row["online"],
        available=available,
        on_shift=on_shift,
        active=row["active"],
        capacity=row["capacity"],
        used=load[1] / MILLI,
        load=load[0],
        last_seen_at=row["last_seen_at"],
        teams=tuple(row["teams"]),
        at=at,
    )


def _facts(status: AgentStatus) -> AgentStatus:
    """What a status says, without the instant it was read: equal when nothing changed."""
    return msgspec.structs.replace(status, at=datetime.min)


class Announcer:
    """Publishes `agent.status` through routing's outbox: what changed, and everything now
    and then. Remembers what it last published, per replica (a restart publishes all)."""

    def __init__(self, ctx: Context[RoutingSettings], router: Router) -> None:
        self._ctx = ctx
        self._router = router
        self._published: dict[str, AgentStatus] = {}
        self._last_full = float("-inf")

    async def current(self) -> list[AgentStatus]:
        async with self._ctx.pool.acquire() as conn:
            rows = await repo.load_agents(conn)
        loads = await self._router.load.loads([r["agent_id"] for r in rows])
        at = now()
        return [
            status_of(
                r,
                available=self._router.available(r, at),
                on_shift=self._router.on_shift(r, at),
                load=loads[r["agent_id"]],
                at=at,
            )
            for r in rows
        ]

    async def announce(self, *, full: bool) -> int:
        """Stage the statuses that changed since last published (all of them when `full`);
        returns how many."""
        statuses = await self.current()
        due = [
            s
            for s in statuses
            if full
            or s.agent_id not in self._published
            or _facts(self._published[s.agent_id]) != _facts(s)
        ]
        if due:
            events = [_keyed(new_event(s, producer=PRODUCER), s.agent_id) for s in due]
            async with self._ctx.pool.acquire() as conn, conn.transaction():
                await outbox.add(conn, events)
            self._published.update((s.agent_id, s) for s in due)
        return len(due)

    async def run(self, ctx: Context[RoutingSettings]) -> None:
        settings = ctx.settings
        loop = asyncio.get_running_loop()

        async def step() -> bool:
            full = loop.time() - self._last_full >= settings.status_interval_seconds
            await self.announce(full=full)
            if full:
                self._last_full = loop.time()
            return False

        await every(settings.sweep_interval_seconds, step, what="agent status")

    async def on_seen(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit | None:
        """desk saw agents in the workspace: their `last_seen_at` moves forward (never back,
        never past now), which is idempotent, so no inbox row. Whoever is available again
        reaches Redis after the commit, and takes from the queues."""
        latest: dict[str, datetime] = {}
        for e in events:
            seen: AgentSeen = e.data
            latest[seen.agent_id] = max(seen.at, latest.get(seen.agent_id, seen.at))
        rows = await repo.seen(conn, latest)
        if not rows:
            return None

        async def after_commit() -> None:
            for row in rows:
                await self._router.push_agent(row)
            await self._router.drain_now()

        return after_commit

    async def on_change_requested(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit:
        """A supervisor's change from desk's board, applied in order and audited as them, like
        the admin API's. An agent routing does not know, or a disabled one set online, is
        refused (dead-lettered with the reason); the status that follows shows what holds."""
        for e in events:
            await self._apply(conn, e.data)

        async def after_commit() -> None:
            await self._router.sync()
            await self._router.drain_now()

        return after_commit

    async def _apply(self, conn: asyncpg.Connection, change: AgentChangeRequested) -> None:
        agent_id = change.agent_id
        current = await repo.get_agent(conn, agent_id)
        if current is None:
            raise PermanentError(f"agent.change_requested: routing has no agent {agent_id!r}")
        subject = f"agent:{agent_id}"
        if change.online is not None and change.online != current["online"]:
            if change.online and not current["active"]:
                raise PermanentError(f"agent.change_requested: {agent_id} is disabled in desk")
            await repo.set_online(conn, agent_id, change.online)
            await repo.audit(
                conn,
                actor=change.by,
                action="agent.presence_set",
                subject=subject,
                before={"online": current["online"]},
                after={"online": change.online},
            )
        if change.capacity is not None and change.capacity != current["capacity"]:
            row = await repo.update_agent(conn, agent_id, {"capacity": change.capacity})
            await repo.audit(
                conn,
                actor=change.by,
                action="agent.changed",
                subject=subject,
                before=config(current),
                after=config(row),
            )

    def handlers(self) -> dict[str, Handler]:
        return {AgentSeen.TYPE: self.on_seen, AgentChangeRequested.TYPE: self.on_change_requested}


def _keyed(event: Envelope[AgentStatus], agent_id: str) -> Envelope[AgentStatus]:
    return msgspec.structs.replace(event, key=agent_id)
