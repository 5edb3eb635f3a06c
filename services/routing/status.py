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
a change on desk's board (`agent.change_requested`: a supervisor's online/offline and capacity,
an admin's skills and weekly schedule) is applied here, by the admin API's own validation, and
audited as whoever made it.
"""

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import structlog
from pydantic import ValidationError

from services.routing import repo
from services.routing.api import changed_config, config, no_hours_reason, teams_without_hours
from services.routing.handlers import Router
from services.routing.settings import RoutingSettings
from services.routing.skills import MILLI
from shared import outbox
from shared.agents import Role
from shared.errors import PermanentError
from shared.events import (
    AgentChangeRequested,
    AgentSeen,
    AgentSkills,
    AgentStatus,
    Envelope,
    WeeklyHours,
    new_event,
    now,
)
from shared.inbox import AfterCommit, Handler
from shared.service import Context, every

log = structlog.get_logger(__name__)
PRODUCER = "routing"
# What agent.change_requested may change beyond presence and capacity: as PATCH
# /v1/admin/agents/{id}, an admin's to change.
SKILLS = ("languages", "categories", "channels", "course_lines", "priorities", "vip", "senior")


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
        skills=AgentSkills(
            languages=tuple(row["languages"]),
            categories=tuple(row["categories"]),
            channels=tuple(row["channels"]),
            course_lines=tuple(row["course_lines"]),
            priorities=tuple(row["priorities"]),
            vip=row["vip"],
            senior=row["senior"],
            schedule=msgspec.convert(row["schedule"], WeeklyHours) if row["schedule"] else None,
        ),
        at=at,
    )


def requested(change: AgentChangeRequested) -> dict[str, Any]:
    """The configuration fields a change names, as the admin API's PATCH body would."""
    given: dict[str, Any] = {
        k: list(v) if isinstance(v, tuple) else v
        for k in ("capacity", *SKILLS)
        if (v := getattr(change, k)) is not None
    }
    if change.schedule is not msgspec.UNSET:
        given["schedule"] = msgspec.to_builtins(change.schedule)
    return given


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
        """A change from desk's board, applied in order and audited as its author, like the
        admin API's, and refused (dead-lettered with the reason) where the admin API would
        refuse it: an agent routing does not know, a disabled one set online, skills or a
        schedule from someone who is not an admin, a value the admin API rejects, or a
        schedule that leaves a team with no working hours. The status that follows shows
        what holds."""
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
        given = requested(change)
        after = await self._checked(conn, change, current, given) if given else {}
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
        before = config(current)
        if changed := {k: after[k] for k in given if after[k] != before[k]}:
            row = await repo.update_agent(conn, agent_id, changed)
            await repo.audit(
                conn,
                actor=change.by,
                action="agent.changed",
                subject=subject,
                before=before,
                after=config(row),
            )

    async def _checked(
        self,
        conn: asyncpg.Connection,
        change: AgentChangeRequested,
        current: asyncpg.Record,
        given: dict[str, Any],
    ) -> dict[str, Any]:
        """The agent's configuration after `given`, or PermanentError with the admin API's
        reason for refusing it."""
        refused = f"agent.change_requested for {change.agent_id} by {change.by}"
        if given.keys() - {"capacity"}:
            author = await conn.fetchval("SELECT role FROM people WHERE agent_id = $1", change.by)
            if author != Role.ADMIN:
                raise PermanentError(
                    f"{refused}: only an admin changes skills and schedules (as PATCH "
                    f"/v1/admin/agents/{{id}}); {change.by} is {author or 'unknown'}"
                )
        try:
            after = changed_config(current, given)
        except ValidationError as exc:
            raise PermanentError(f"{refused}: {_reasons(exc)}") from None
        if lost := await teams_without_hours(conn, change.agent_id, current, after):
            raise PermanentError(f"{refused}: {no_hours_reason(lost)}")
        return after

    def handlers(self) -> dict[str, Handler]:
        return {AgentSeen.TYPE: self.on_seen, AgentChangeRequested.TYPE: self.on_change_requested}


def _reasons(exc: ValidationError) -> str:
    """pydantic's refusal as one line: each field and why."""
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
        for e in exc.errors(include_url=False, include_context=False)
    )


def _keyed(event: Envelope[AgentStatus], agent_id: str) -> Envelope[AgentStatus]:
    return msgspec.structs.replace(event, key=agent_id)
