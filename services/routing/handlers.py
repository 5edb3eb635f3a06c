"""routing's edges: triage and place new tickets, re-place reopened ones, drain queues, presence."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import structlog
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from services.routing import repo
from services.routing.domain import PRIORITY_RANK, AgentSkills, candidates, due_times, triage
from services.routing.load import AgentState, LiveLoad, Request
from services.routing.settings import RoutingSettings
from shared import outbox
from shared.agents import Role, bearer_auth, load_agents
from shared.events import (
    Envelope,
    Priority,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketQueued,
    TicketReopened,
    TicketResolved,
    TicketTriaged,
    new_event,
    now,
)
from shared.inbox import Handler
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
        """Reload agents, push capacity and presence to Redis, rebuild load if Redis lost it."""
        async with self._ctx.pool.acquire() as conn:
            rows = await repo.load_agents(conn)
            if await self.load.needs_rebuild():
                active = await repo.active_assignments(conn)
                await self.load.rebuild([(r["ticket_id"], r["agent_id"]) for r in active])
                log.info("live load rebuilt from postgres", active=len(active))
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
        for event in events:
            t: TicketCreated = event.data
            result = triage(t.subject, t.description)
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

    async def on_released(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        ticket_ids = [e.data.ticket_id for e in events]
        await repo.release(conn, ticket_ids)
        await self.load.release(ticket_ids)
        await self.drain(conn)

    def handlers(self) -> dict[str, Handler]:
        return {
            TicketCreated.TYPE: self.on_created,
            TicketReopened.TYPE: self.on_reopened,
            TicketResolved.TYPE: self.on_released,
            TicketClosed.TYPE: self.on_released,
        }

    async def sweep(self, ctx: Context[RoutingSettings]) -> None:
        """Safety net: resync Redis, and drain queues whose wake-up was missed."""

        async def step() -> bool:
            await self.sync()
            async with ctx.pool.acquire() as conn, conn.transaction():
                await self.drain(conn)
            return False

        await asyncio.sleep(self._settings.sweep_interval_seconds)
        await every(self._settings.sweep_interval_seconds, step, what="routing sweep")


class Presence(BaseModel):
    online: bool


def http_routes(ctx: Context[RoutingSettings], router: Router) -> APIRouter:
    api = APIRouter()

    caller = bearer_auth(lambda: ctx.pool, repo.agent_by_token)

    @api.get("/v1/agents", summary="Agents with skills, presence and live load")
    async def agents(_: Annotated[asyncpg.Record, Depends(caller)]) -> list[dict[str, Any]]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.load_agents(conn)
        loads = await router.load.loads([r["agent_id"] for r in rows])
        return [{**dict(r), "load": loads[r["agent_id"]]} for r in rows]

    @api.put("/v1/agents/{agent_id}/presence", summary="Go online or offline")
    async def presence(
        agent_id: str, body: Presence, who: Annotated[asyncpg.Record, Depends(caller)]
    ) -> dict[str, Any]:
        if who["agent_id"] != agent_id and Role(who["role"]) is Role.AGENT:
            raise HTTPException(403, "agents set only their own presence")
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not await repo.set_online(conn, agent_id, body.online):
                raise HTTPException(404, "no such agent")
            await router.load.set_online(agent_id, body.online)
            assigned = await router.drain(conn) if body.online else 0
        return {"agent_id": agent_id, "online": body.online, "assigned_from_queue": assigned}

    @api.get("/v1/queues", summary="Tickets waiting per team")
    async def queues() -> dict[str, int]:
        async with ctx.pool.acquire() as conn:
            return {r["team"]: r["depth"] for r in await repo.queue_depth(conn)}

    return api
