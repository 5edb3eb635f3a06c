"""routing's edges: triage and place new tickets, re-place reopened ones, drain queues, presence."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import structlog
from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict

from services.routing import repo
from services.routing.capacity import Reconciler
from services.routing.domain import (
    PRIORITY_RANK,
    AgentSkills,
    candidates,
    due_times,
    held_by_ordinary_agents,
    triage,
)
from services.routing.load import AgentState, Claim, LiveLoad, Request
from services.routing.settings import RoutingSettings
from shared import outbox
from shared.agents import Role, bearer_auth, load_agents
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import (
    Envelope,
    Priority,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketEscalated,
    TicketQueued,
    TicketReopened,
    TicketResolved,
    TicketTriaged,
    new_event,
    now,
)
from shared.http import Utf8JsonRoute
from shared.inbox import AfterCommit, Handler
from shared.problems import problems
from shared.service import Context, every

log = structlog.get_logger(__name__)
PRODUCER = "routing"


@dataclass(frozen=True, slots=True)
class Route:
    """A ticket looking for an agent."""

    ticket_id: UUID
    team: str
    language: str
    priority: Priority
    since: datetime  # age in the queue counts from here: creation, or the reopening
    preferred: str | None = None
    supervisor: bool = False
    cause: Envelope[Any] | None = None


class Router:
    """Places tickets: Redis decides atomically, Postgres records, the outbox tells the others."""

    def __init__(self, ctx: Context[RoutingSettings]) -> None:
        self._ctx = ctx
        self._settings = ctx.settings
        self.agents: list[AgentSkills] = []
        self._load: LiveLoad | None = None
        self.reconciler = Reconciler(
            pool=lambda: ctx.pool,
            load=lambda: self.load,
            lock_timeout_seconds=ctx.settings.reconcile_lock_timeout_seconds,
        )

    @property
    def load(self) -> LiveLoad:
        if self._load is None:
            self._load = LiveLoad(self._ctx.redis)
        return self._load

    async def start(self, ctx: Context[RoutingSettings]) -> None:
        async with ctx.pool.acquire() as conn:
            await repo.upsert_agents(conn, load_agents(self._settings).agents)
        await self.sync()

    async def sync(self) -> None:
        """Rebuild load if Redis lost it, reload agents, push capacity and presence to Redis."""
        if await self.load.needs_rebuild():
            await self.reconciler.run(only_if_empty=True)
        async with self._ctx.pool.acquire() as conn:
            rows = await repo.load_agents(conn)
        self.agents = [
            AgentSkills(
                r["agent_id"], Role(r["role"]), frozenset(r["teams"]), frozenset(r["languages"])
            )
            for r in rows
        ]
        await self.load.sync_agents(
            [AgentState(r["agent_id"], r["capacity"], r["online"]) for r in rows]
        )

    async def place(self, conn: asyncpg.Connection, routes: Sequence[Route]) -> None:
        """Assign new or reopened tickets, unless their team already has a queue: then they
        join it, and the queue is drained by priority and age, so nobody jumps it."""
        waiting = await repo.teams_waiting(conn, [r.team for r in routes])
        behind = [r for r in routes if r.team in waiting]
        unassigned = await self._assign(conn, [r for r in routes if r.team not in waiting])
        await self._enqueue(conn, [*unassigned, *behind])
        if behind:
            await self.drain(conn)

    async def drain(self, conn: asyncpg.Connection, per_team: int = 100) -> int:
        """Give queued tickets, most urgent and oldest first, to agents with free capacity;
        returns how many were assigned."""
        teams = {team for agent in self.agents for team in agent.teams}
        await repo.share_load(conn)  # always before the drain lock: one order, no deadlock
        rows = await repo.take_queued(conn, sorted(teams), per_team)
        routes = [
            Route(
                r["ticket_id"],
                r["team"],
                r["language"],
                Priority(r["priority"]),
                r["enqueued_at"],
                preferred=r["preferred_agent"],
                supervisor=r["supervisor"],
            )
            for r in rows
        ]
        return len(routes) - len(await self._assign(conn, routes))

    async def drain_now(self) -> int:
        """Drain in a transaction of its own (after a release or a presence change committed)."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            return await self.drain(conn)

    async def _assign(self, conn: asyncpg.Connection, routes: Sequence[Route]) -> list[Route]:
        """Redis picks an agent for each route atomically; returns the routes left without one."""
        requests = [
            Request(
                r.ticket_id,
                tuple(
                    candidates(
                        self.agents,
                        team=r.team,
                        language=r.language,
                        supervisor=r.supervisor,
                        preferred=r.preferred,
                    )
                ),
                prefer_first=r.preferred is not None,
            )
            for r in routes
        ]
        await repo.share_load(conn)
        picked = await self.load.assign(requests)
        assigned = [(r, a) for r, a in zip(routes, picked, strict=True) if a is not None]
        await repo.record_assignments(conn, [(r.ticket_id, a) for r, a in assigned])
        at = now()
        await outbox.add(
            conn,
            [
                new_event(
                    TicketAssigned(
                        ticket_id=r.ticket_id,
                        agent_id=a,
                        team=r.team,
                        priority=r.priority,
                        assigned_at=at,
                    ),
                    producer=PRODUCER,
                    cause=r.cause,
                )
                for r, a in assigned
            ],
        )
        return [r for r, a in zip(routes, picked, strict=True) if a is None]

    async def _enqueue(self, conn: asyncpg.Connection, routes: Sequence[Route]) -> None:
        await repo.enqueue(
            conn,
            [
                {
                    "ticket_id": str(r.ticket_id),
                    "team": r.team,
                    "language": r.language,
                    "priority": r.priority,
                    "priority_rank": PRIORITY_RANK[r.priority],
                    "preferred_agent": r.preferred,
                    "supervisor": r.supervisor,
                    "enqueued_at": r.since.isoformat(),
                }
                for r in routes
            ],
        )
        at = now()
        await outbox.add(
            conn,
            [
                new_event(
                    TicketQueued(
                        ticket_id=r.ticket_id, team=r.team, priority=r.priority, queued_at=at
                    ),
                    producer=PRODUCER,
                    cause=r.cause,
                )
                for r in routes
            ],
        )

    # ---- event handlers -------------------------------------------------------------------

    async def on_created(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        s = self._settings
        triaged, routes, rows = [], [], []
        results = triage([(e.data.subject, e.data.description) for e in events])
        for event, result in zip(events, results, strict=True):
            t: TicketCreated = event.data
            first_due, resolve_due = due_times(
                result.priority,
                t.created_at,
                first_response_minutes=s.first_response_minutes,
                resolution_minutes=s.resolution_minutes,
            )
            rows.append(
                {
                    "ticket_id": str(t.ticket_id),
                    "channel": t.channel,
                    "category": result.category,
                    "priority": result.priority,
                    "team": result.team,
                    "language": t.language,
                }
            )
            triaged.append(
                new_event(
                    TicketTriaged(
                        ticket_id=t.ticket_id,
                        channel=t.channel,
                        category=result.category,
                        priority=result.priority,
                        team=result.team,
                        language=t.language,
                        matched=result.matched,
                        first_response_due_at=first_due,
                        resolution_due_at=resolve_due,
                    ),
                    producer=PRODUCER,
                    cause=event,
                )
            )
            routes.append(
                Route(
                    t.ticket_id, result.team, t.language, result.priority, t.created_at, cause=event
                )
            )
        await repo.insert_tickets(conn, rows)
        await outbox.add(conn, triaged)
        await self.place(conn, routes)

    async def on_reopened(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        known = {
            r["ticket_id"]: r
            for r in await repo.get_tickets(conn, [e.data.ticket_id for e in events])
        }
        routes = []
        for event in events:
            reopened: TicketReopened = event.data
            ticket = known.get(reopened.ticket_id)
            if ticket is None:
                raise LookupError(f"reopened ticket {reopened.ticket_id} was never triaged here")
            routes.append(
                Route(
                    reopened.ticket_id,
                    ticket["team"],
                    ticket["language"],
                    Priority(ticket["priority"]),
                    reopened.reopened_at,
                    preferred=None if reopened.needs_supervisor else reopened.previous_agent_id,
                    supervisor=reopened.needs_supervisor,
                    cause=event,
                )
            )
        await self.place(conn, routes)

    async def on_escalated(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit:
        """Move open tickets to a supervisor: one an agent holds is released (its slot freed
        after the commit) and queued for supervisors, then drained; a waiting one keeps its
        place but waits for a supervisor. Resolved or closed tickets come as reopenings."""
        latest = {e.data.ticket_id: e for e in events}
        known = {r["ticket_id"]: r for r in await repo.get_tickets(conn, list(latest))}
        if unknown := [t for t in latest if t not in known]:
            raise LookupError(f"escalated tickets {unknown} were never triaged here")
        await repo.share_load(conn)
        roles = {a.agent_id: a.role for a in self.agents}
        moving = held_by_ordinary_agents(await repo.holders(conn, list(latest)), roles)
        claims = await self.load.claims(moving)
        await repo.queue_for_supervisors(conn, list(latest))
        await repo.release(conn, moving)
        routes = [
            Route(
                t,
                known[t]["team"],
                known[t]["language"],
                Priority(known[t]["priority"]),
                latest[t].data.escalated_at,
                supervisor=True,
                cause=latest[t],
            )
            for t in moving
        ]
        await self._enqueue(conn, routes)

        async def after_commit() -> None:
            await self.freed(claims)

        return after_commit

    async def on_released(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit:
        """Release in Postgres now; free the Redis slots and drain only once that committed."""
        ticket_ids = list(dict.fromkeys(e.data.ticket_id for e in events))
        await repo.share_load(conn)
        claims = await self.load.claims(ticket_ids)
        await repo.release(conn, ticket_ids)

        async def after_commit() -> None:
            await self.freed(claims)

        return after_commit

    async def freed(self, claims: Sequence[Claim]) -> None:
        """Free committed releases' slots, then hand them to the queue. A failure is only
        logged: the reconciliation frees what is left held, the sweep drains."""
        try:
            await self.load.release(claims)
            await self.drain_now()
        except TRANSIENT_DRIVER_ERRORS as exc:
            log.warning("freeing released slots failed; reconciliation will", error=repr(exc))

    def handlers(self) -> dict[str, Handler]:
        return {
            TicketCreated.TYPE: self.on_created,
            TicketReopened.TYPE: self.on_reopened,
            TicketEscalated.TYPE: self.on_escalated,
            TicketResolved.TYPE: self.on_released,
            TicketClosed.TYPE: self.on_released,
        }

    async def sweep(self, ctx: Context[RoutingSettings]) -> None:
        """Safety net: resync Redis, and drain queues whose wake-up was missed."""

        async def step() -> bool:
            await self.sync()
            await self.drain_now()
            return False

        await asyncio.sleep(self._settings.sweep_interval_seconds)
        await every(self._settings.sweep_interval_seconds, step, what="routing sweep")

    async def reconcile(self, ctx: Context[RoutingSettings]) -> None:
        """Correct drift between Redis load and committed assignments, periodically."""

        async def step() -> bool:
            await self.reconciler.run()
            return False

        interval = self._settings.reconcile_interval_seconds
        await asyncio.sleep(interval)
        await every(interval, step, what="capacity reconciliation")


class Presence(BaseModel):
    """A presence change; `online` must be a JSON boolean."""

    model_config = ConfigDict(strict=True, extra="forbid")

    online: bool


class PresenceChanged(BaseModel):
    agent_id: str
    online: bool
    assigned_from_queue: int


class AgentView(BaseModel):
    agent_id: str
    name: str
    role: Role
    teams: list[str]
    languages: list[str]
    capacity: int
    online: bool
    load: int


# Agent ids as the agents file allows them (AgentSeed.id): anything else is no agent.
AGENT_ID_PATTERN = r"^[a-z][a-z0-9_-]{1,49}$"
AgentId = Annotated[str, Path(pattern=AGENT_ID_PATTERN, description="An agent's id.")]


def http_routes(ctx: Context[RoutingSettings], router: Router) -> APIRouter:
    api = APIRouter(route_class=Utf8JsonRoute, max_body_size=ctx.settings.http_max_body_bytes)

    caller = bearer_auth(lambda: ctx.pool, repo.agent_by_token)
    Caller = Annotated[asyncpg.Record, Depends(caller)]

    @api.get(
        "/v1/agents",
        summary="Agents with skills, presence and live load",
        responses=problems(401, 503),
    )
    async def agents(_: Caller) -> list[AgentView]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.load_agents(conn)
        loads = await router.load.loads([r["agent_id"] for r in rows])
        return [AgentView(**dict(r), load=loads[r["agent_id"]]) for r in rows]

    @api.put(
        "/v1/agents/{agent_id}/presence",
        summary="Go online or offline",
        responses=problems(400, 401, 403, 404, 413, 422, 503),
    )
    async def presence(agent_id: AgentId, body: Presence, who: Caller) -> PresenceChanged:
        if who["agent_id"] != agent_id and Role(who["role"]) is Role.AGENT:
            raise HTTPException(403, "agents set only their own presence")
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not await repo.set_online(conn, agent_id, body.online):
                raise HTTPException(404, "no such agent")
        # Only what committed reaches Redis; a newly online agent then takes from the queue.
        await router.load.set_online(agent_id, body.online)
        assigned = await router.drain_now() if body.online else 0
        return PresenceChanged(agent_id=agent_id, online=body.online, assigned_from_queue=assigned)

    @api.get("/v1/queues", summary="Tickets waiting per team", responses=problems(401, 503))
    async def queues(_: Caller) -> dict[str, int]:
        async with ctx.pool.acquire() as conn:
            return {r["team"]: r["depth"] for r in await repo.queue_depth(conn)}

    return api
