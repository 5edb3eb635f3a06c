"""routing's edges: triage and place new tickets, re-place reopened ones, drain queues, presence."""

import asyncio
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import msgspec
import structlog
from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict

from services.routing import repo
from services.routing.capacity import Reconciler
from services.routing.domain import (
    PRIORITY_RANK,
    TEAM_OF,
    as_follow_up,
    due_times,
    held_by_ordinary_agents,
)
from services.routing.load import AgentState, Claim, LiveLoad, Request
from services.routing.settings import RoutingSettings
from services.routing.skills import (
    MILLI,
    Need,
    Profile,
    Roster,
    Schedule,
    available,
    parse_schedule,
    weight_milli,
)
from services.routing.sla import SlaClocks
from services.routing.sla_rules import Hours
from services.routing.triage import Ticket, Triager
from services.routing.triage.store import load_or_train
from shared import people
from shared.agents import AGENT_ID_PATTERN, Role, bearer_auth, load_agents
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import (
    LOW_PERIODIC_SCORE,
    Category,
    Channel,
    Envelope,
    EventData,
    IncidentCriteria,
    IncidentOpened,
    IncidentResolved,
    IncidentTicketLinked,
    IncidentTicketUnlinked,
    IncidentUpdated,
    PersonChanged,
    Priority,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketEscalated,
    TicketQueued,
    TicketReopened,
    TicketResolved,
    TicketRetriaged,
    TicketRouted,
    TicketTransferred,
    new_event,
    now,
    to_builtins,
)
from shared.http import Utf8JsonRoute
from shared.inbox import AfterCommit, Handler
from shared.incidents import TicketFacts, first_match
from shared.problems import problems
from shared.service import Context, every

log = structlog.get_logger(__name__)
PRODUCER = "routing"


@dataclass(frozen=True, slots=True)
class Open:
    """An open incident as triage needs it: which, and where learners follow it."""

    incident_id: UUID
    status_url: str


@dataclass(frozen=True, slots=True)
class NewTicket:
    """What `ticket.routed` says of a ticket placed for the first time, besides where it went."""

    channel: Channel
    category: Category
    matched: tuple[str, ...]
    first_response_due_at: datetime
    resolution_due_at: datetime
    confidence: float
    needs_review: bool
    reason: str
    collaborators: tuple[str, ...]
    incident: Open | None = None  # held for this open incident: neither assigned nor queued


@dataclass(frozen=True, slots=True)
class Route:
    """A ticket looking for an agent."""

    ticket_id: UUID
    team: str
    language: str
    priority: Priority
    since: datetime  # age in the queue counts from here: creation, or the reopening
    channel: str
    category: str
    course_id: str | None = None
    vip: bool = False
    preferred: str | None = None
    supervisor: bool = False
    cause: Envelope[Any] | None = None
    new: NewTicket | None = None  # a new ticket, announced by ticket.routed

    @property
    def need(self) -> Need:
        return Need(
            team=self.team,
            language=self.language,
            category=self.category,
            channel=self.channel,
            priority=self.priority,
            course_id=self.course_id,
            vip=self.vip,
            supervisor=self.supervisor,
        )


def route_of(row: Mapping[str, Any], *, since: datetime, **overrides: Any) -> Route:
    """A stored ticket (or queue row joined with its ticket) as a route."""
    fields: dict[str, Any] = {
        "channel": row["channel"] or Channel.WEB,
        "category": row["category"] or Category.OTHER,
        "course_id": row["course_id"],
        "vip": row["vip"],
    }
    return Route(
        row["ticket_id"],
        row["team"],
        row["language"],
        Priority(row["priority"]),
        since,
        **{**fields, **overrides},
    )


def announce(route: Route, agent_id: str | None, at: datetime) -> Envelope[Any]:
    """Where `route` went: a new ticket's `ticket.routed`, else `ticket.assigned` or, when no
    agent took it, `ticket.queued`."""
    data: EventData
    if route.new is not None:
        data = TicketRouted(
            ticket_id=route.ticket_id,
            channel=route.new.channel,
            category=route.new.category,
            priority=route.priority,
            team=route.team,
            language=route.language,
            matched=route.new.matched,
            first_response_due_at=route.new.first_response_due_at,
            resolution_due_at=route.new.resolution_due_at,
            agent_id=agent_id,
            routed_at=at,
            confidence=round(route.new.confidence, 4),
            needs_review=route.new.needs_review,
            reason=route.new.reason,
            collaborators=route.new.collaborators,
            incident_id=None if route.new.incident is None else route.new.incident.incident_id,
            incident_url=None if route.new.incident is None else route.new.incident.status_url,
        )
    elif agent_id is None:
        data = TicketQueued(
            ticket_id=route.ticket_id, team=route.team, priority=route.priority, queued_at=at
        )
    else:
        data = TicketAssigned(
            ticket_id=route.ticket_id,
            agent_id=agent_id,
            team=route.team,
            priority=route.priority,
            assigned_at=at,
        )
    return new_event(data, producer=PRODUCER, cause=route.cause)


class Router:
    """Places tickets: Redis decides atomically, Postgres records, the outbox tells the others."""

    def __init__(self, ctx: Context[RoutingSettings], clocks: SlaClocks) -> None:
        self._ctx = ctx
        self._settings = ctx.settings
        self.clocks = clocks
        # Open incidents, most severe then oldest first: matched at triage without a query.
        self.incidents: list[tuple[Open, IncidentCriteria]] = []
        self.roster = Roster()
        self.hours = Hours.of(ctx.settings.sla_calendars)
        self.weights: dict[str, float] = {}
        self._schedules: dict[str, tuple[object, Schedule | None]] = {}
        self._load: LiveLoad | None = None
        self._triager: Triager | None = None
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

    @property
    def triager(self) -> Triager:
        if self._triager is None:
            raise RuntimeError("routing triages only after start() loaded its model")
        return self._triager

    async def start(self, ctx: Context[RoutingSettings]) -> None:
        # Before any ticket is consumed; trains (seconds) when the corpus has no artifact yet.
        self._triager = await asyncio.to_thread(load_or_train)
        agents_file = load_agents(self._settings).agents
        async with ctx.pool.acquire() as conn, conn.transaction():
            # The agents file seeds routing's agents only while it has none: after that desk's
            # people and the admin API own them. It seeds the people read model at every start,
            # so that the file's tokens work before desk's first announcement.
            empty = not await repo.has_agents(conn)
            seed = agents_file if empty else ()
            await repo.seed(conn, seed, sorted(set(TEAM_OF.values())))
            await people.seed(conn, agents_file)
        if seed:
            log.info("agents seeded into empty tables", agents=len(seed))
        await self.sync()
        await self.refresh_incidents()

    async def sync(self) -> None:
        """Rebuild load if Redis lost it, reload agents and weights, push capacity and
        availability (online, seen within the presence TTL, on shift) to Redis."""
        if await self.load.needs_rebuild():
            await self.reconciler.run(only_if_empty=True)
        async with self._ctx.pool.acquire() as conn:
            rows = await repo.load_agents(conn)
            self.weights = await repo.channel_weights(conn)
        self.roster.replace([profile(r) for r in rows])
        at = now()
        await self.load.sync_agents(
            self.roster.version,
            [AgentState(r["agent_id"], r["capacity"] * MILLI, self.available(r, at)) for r in rows],
        )

    def available(self, row: asyncpg.Record, at: datetime) -> bool:
        return available(
            online=row["online"] and row["active"],
            last_seen_at=row["last_seen_at"],
            schedule=self._schedule(row["agent_id"], row["schedule"]),
            at=at,
            presence_ttl=self._settings.presence_ttl,
        )

    def on_shift(self, row: asyncpg.Record, at: datetime) -> bool:
        schedule = self._schedule(row["agent_id"], row["schedule"])
        return schedule is None or schedule.on_shift(at)

    def _schedule(self, agent_id: str, raw: Any) -> Schedule | None:
        """Parsed once per agent and stored schedule, not on every sync."""
        cached = self._schedules.get(agent_id)
        if cached is None or cached[0] != raw:
            cached = self._schedules[agent_id] = (raw, parse_schedule(raw))
        return cached[1]

    async def push_agent(self, row: asyncpg.Record) -> None:
        """One agent's committed presence to Redis at once, without waiting for the sweep."""
        await self.load.set_available(row["agent_id"], self.available(row, now()))

    async def place(self, conn: asyncpg.Connection, routes: Sequence[Route]) -> None:
        """Place tickets routed before (reopened): see `_place`."""
        waiting = await repo.teams_waiting(conn, [r.team for r in routes])
        await self._place(conn, routes, behind={r.ticket_id for r in routes if r.team in waiting})

    async def _place(
        self, conn: asyncpg.Connection, routes: Sequence[Route], *, behind: Set[UUID]
    ) -> None:
        """Assign tickets, unless their team already has a queue (`behind`): then they join it,
        and the queue is drained by priority and age, so nobody jumps it. The caller holds the
        load lock shared (`repo.teams_waiting`, `repo.insert_tickets`)."""
        ahead = [r for r in routes if r.ticket_id not in behind]
        picked = await self._pick(ahead)
        waiting = [(r, None) for r in routes if r.ticket_id in behind]
        await self._record(conn, [*zip(ahead, picked, strict=True), *waiting])
        if waiting:
            await self.drain(conn)

    async def drain(self, conn: asyncpg.Connection, per_team: int = 100) -> int:
        """Give queued tickets, most urgent and oldest first, to agents with free capacity;
        returns how many were assigned."""
        teams = {team for agent in self.roster.agents for team in agent.teams}
        await repo.lock_drain(conn)
        rows = await repo.take_queued(conn, sorted(teams), per_team)
        routes = [
            route_of(
                r,
                since=r["enqueued_at"],
                preferred=r["preferred_agent"],
                supervisor=r["supervisor"],
            )
            for r in rows
        ]
        picked = await self._pick(routes)
        assigned = [(r, a) for r, a in zip(routes, picked, strict=True) if a is not None]
        await self._record(conn, assigned)
        return len(assigned)

    async def drain_now(self) -> int:
        """Drain in a transaction of its own (after a release or a presence change committed)."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            return await self.drain(conn)

    async def _pick(self, routes: Sequence[Route]) -> list[str | None]:
        """Redis picks an agent for each route atomically (None: nobody can take it now). The
        caller holds the load lock shared, and records what was picked in its transaction.
        The pools to look in come from the roster's cached plans: no work per agent here."""
        requests = []
        for r in routes:
            plan = self.roster.plan(r.need)
            requests.append(
                Request(
                    r.ticket_id,
                    plan.tiers,
                    weight=self.weight(r),
                    preferred=r.preferred if r.preferred in plan.members else None,
                )
            )
        return await self.load.assign(requests)

    def weight(self, route: Route) -> int:
        return weight_milli(self.weights, route.channel)

    async def _record(
        self, conn: asyncpg.Connection, placed: Sequence[tuple[Route, str | None]]
    ) -> None:
        """Record where each route went (an agent, or the queue for None) and announce it, in
        one statement."""
        if not placed:
            return
        at = now()
        await repo.record_placements(
            conn,
            assigned=[(r.ticket_id, a, self.weight(r)) for r, a in placed if a is not None],
            queued=[
                repo.Waiting(
                    r.ticket_id,
                    r.team,
                    r.language,
                    r.priority,
                    PRIORITY_RANK[r.priority],
                    r.preferred,
                    r.supervisor,
                    r.since,
                )
                for r, a in placed
                if a is None
            ],
            events=[announce(r, a, at) for r, a in placed],
        )

    # ---- event handlers -------------------------------------------------------------------

    async def on_created(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """Triage and place the tickets routing has not seen, each announced by one
        ticket.routed. Idempotent by ticket id, so it needs no inbox row: a redelivered or
        re-sent ticket.created finds its ticket stored and does nothing."""
        s = self._settings
        tickets: list[TicketCreated] = [e.data for e in events]
        results = self.triager.triage(
            [
                Ticket(t.subject, t.description, t.channel, t.learner_context, t.created_at)
                for t in tickets
            ]
        )
        results = [
            as_follow_up(r) if t.source == LOW_PERIODIC_SCORE else r
            for t, r in zip(tickets, results, strict=True)
        ]
        fresh = await repo.insert_tickets(
            conn,
            [
                repo.NewRow(
                    t.ticket_id,
                    t.channel,
                    r.category,
                    r.priority,
                    r.team,
                    t.language,
                    course_of(t),
                    vip_of(t),
                )
                for t, r in zip(tickets, results, strict=True)
            ],
        )
        routes, behind, held = [], set(), []
        for event, t, result in zip(events, tickets, results, strict=True):
            if (stored := fresh.pop(t.ticket_id, None)) is None:
                continue  # routed before, or earlier in this batch
            first_due, resolve_due = due_times(
                result.priority,
                t.created_at,
                first_response_minutes=s.first_response_minutes,
                resolution_minutes=s.resolution_minutes,
                calendar=self.hours.calendar(result.priority, result.team),
            )
            new = NewTicket(
                t.channel,
                result.category,
                result.matched,
                first_due,
                resolve_due,
                confidence=result.confidence,
                needs_review=result.confidence < s.review_below,
                reason=result.reason,
                collaborators=result.collaborators,
                incident=self._incident_of(t, result.category, stored),
            )
            route = Route(
                t.ticket_id,
                result.team,
                t.language,
                result.priority,
                t.created_at,
                channel=t.channel,
                category=result.category,
                course_id=course_of(t),
                vip=vip_of(t),
                # the follow-up of a low periodic-survey score is a supervisor's (R9.2)
                supervisor=t.source == LOW_PERIODIC_SCORE,
                cause=event,
                new=new,
            )
            if new.incident is not None:
                held.append(route)
                continue
            routes.append(route)
            if stored["behind"]:
                behind.add(t.ticket_id)
        await self._place(conn, routes, behind=behind)
        if held:
            await self._hold_new(conn, held)

    def _incident_of(
        self, ticket: TicketCreated, category: Category, stored: asyncpg.Record
    ) -> Open | None:
        """The open incident a new ticket belongs to: the one that linked it before it arrived,
        else the first whose criteria it matches (`shared.incidents.first_match`, as the
        incident service links it). In memory: no query per ticket."""
        if stored["held_for"] is not None:
            return Open(stored["held_for"], stored["status_url"])
        if not self.incidents:
            return None
        facts = TicketFacts(
            ticket.subject, ticket.description, ticket.channel, course_of(ticket), category
        )
        return first_match(self.incidents, facts)

    async def _hold_new(self, conn: asyncpg.Connection, routes: Sequence[Route]) -> None:
        """New tickets of an open incident: stored with their team and due times but neither
        assigned nor queued, announced by ticket.routed naming the incident; their SLA clocks
        start paused."""
        at = now()
        held = [
            repo.Held(
                r.ticket_id, r.new.incident.incident_id, r.new.incident.status_url, False, None
            )
            for r in routes
            if r.new is not None and r.new.incident is not None
        ]
        await repo.hold(conn, held, [announce(r, None, at) for r in routes])
        await self.clocks.on_created(conn, [r.cause for r in routes if r.cause is not None])
        await self.clocks.hold(conn, [(r.ticket_id, r.since) for r in routes])

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
                route_of(
                    ticket,
                    since=reopened.reopened_at,
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
        roles = {a.agent_id: a.role for a in self.roster.agents}
        moving = held_by_ordinary_agents(await repo.holders(conn, list(latest)), roles)
        claims = await self.load.claims(moving)
        await repo.queue_for_supervisors(conn, list(latest))
        await repo.release(conn, moving)
        routes = [
            route_of(known[t], since=latest[t].data.escalated_at, supervisor=True, cause=latest[t])
            for t in moving
        ]
        await self._record(conn, [(r, None) for r in routes])

        async def after_commit() -> None:
            await self.freed(claims)

        return after_commit

    async def on_retriaged(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit:
        """A person corrected the triage: routing's ticket takes the new category, priority
        and team. A ticket that must change team leaves its agent (the slot freed after the
        commit) or its old queue, and waits in the new team's queue, which is then drained;
        one that keeps its team keeps its place (its priority is re-ranked when it waits). A
        ticket an open incident holds stays held, in its new team."""
        latest = {e.data.ticket_id: e for e in events}
        known = {r["ticket_id"]: r for r in await repo.get_tickets(conn, list(latest))}
        if unknown := [t for t in latest if t not in known]:
            raise LookupError(f"re-triaged tickets {unknown} were never triaged here")
        changes = {
            t: (e.data.category, e.data.priority, TEAM_OF[e.data.category])
            for t, e in latest.items()
        }
        await repo.set_triage(conn, changes)
        held = await repo.held_among(conn, list(changes))  # held in their new team, not queued
        moving = [
            t for t, (_, _, team) in changes.items() if team != known[t]["team"] and t not in held
        ]
        await repo.share_load(conn)
        holding = list(await repo.holders(conn, moving))
        claims = await self.load.claims(holding)
        await repo.release(conn, moving)  # off the old agent or the old team's queue
        routes = [
            route_of(
                {
                    **dict(known[t]),
                    "category": changes[t][0],
                    "priority": changes[t][1],
                    "team": changes[t][2],
                },
                since=latest[t].data.retriaged_at,
                cause=latest[t],
            )
            for t in moving
        ]
        await self._record(conn, [(r, None) for r in routes])

        async def after_commit() -> None:
            await self.freed(claims)

        return after_commit

    async def on_transferred(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit:
        """A person handed tickets on (desk applied it already; routing's ticket takes the new
        team). To an agent: the ticket leaves its holder or its queue and counts on the new
        agent's load even above capacity (a person decided), announced by ticket.assigned;
        the slot it left is freed after the commit. To a team: it leaves its agent (the slot
        freed after the commit) or its old queue and waits in the new team's queue, which is
        then drained. The SLA clocks run on as they were; a ticket an open incident held is a
        person's to work now: no longer held, its clocks run again."""
        latest = {e.data.ticket_id: e for e in events}
        known = {r["ticket_id"]: r for r in await repo.get_tickets(conn, list(latest))}
        if unknown := [t for t in latest if t not in known]:
            raise LookupError(f"transferred tickets {unknown} were never triaged here")
        transfers: dict[UUID, TicketTransferred] = {t: e.data for t, e in latest.items()}
        unheld = [r["ticket_id"] for r in await repo.unhold(conn, list(transfers))]
        await self.clocks.unhold(conn, [(t, transfers[t].transferred_at) for t in unheld])
        await repo.set_teams(conn, {t: x.to_team for t, x in transfers.items()})
        await repo.share_load(conn)
        holding = await repo.holders(conn, list(transfers))
        to_agent = {t: x.to_agent_id for t, x in transfers.items() if x.to_agent_id is not None}
        to_team = [t for t, x in transfers.items() if x.to_agent_id is None]
        moving = [t for t, a in to_agent.items() if holding.get(t) != a]
        claims = await self.load.claims([t for t in to_team if t in holding])
        await repo.release(conn, [*moving, *to_team])
        routes = {
            t: route_of(
                {**dict(known[t]), "team": x.to_team}, since=x.transferred_at, cause=latest[t]
            )
            for t, x in transfers.items()
        }
        await self.load.take([(t, to_agent[t], self.weight(routes[t])) for t in moving])
        await self._record(
            conn,
            [
                *((routes[t], a) for t, a in to_agent.items()),
                *((routes[t], None) for t in to_team),
            ],
        )
        left = [(t, holding[t]) for t in moving if t in holding]

        async def after_commit() -> None:
            try:
                await self.load.leave(left)
            except TRANSIENT_DRIVER_ERRORS as exc:
                log.warning(
                    "freeing transferred slots failed; reconciliation will", error=repr(exc)
                )
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
        await repo.unhold(conn, ticket_ids)  # an incident's tickets are done with too

        async def after_commit() -> None:
            await self.freed(claims)

        return after_commit

    async def on_people(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
        """desk's people: the read model bearer tokens are checked against, and routing's
        agents following it in the same transaction (`repo.follow_people`). Idempotent by
        person (the newest announcement wins), so no inbox row. After the commit the roster
        reaches Redis (a disabled agent is unavailable) and queues meet new team members."""
        await people.apply_changes(conn, events)
        await repo.follow_people(conn, list(dict.fromkeys(e.data.agent_id for e in events)))

        async def after_commit() -> None:
            await self.sync()
            await self.drain_now()

        return after_commit

    # ---- open incidents: their tickets are held, off every agent's capacity -----------------

    async def refresh_incidents(self) -> None:
        """Open incidents from routing's read model into memory (after an incident event, and
        at each sweep for what another replica consumed)."""
        async with self._ctx.pool.acquire() as conn:
            rows = await repo.open_incidents(conn)
        self.incidents = [
            (
                Open(r["incident_id"], r["status_url"]),
                msgspec.convert(r["criteria"], IncidentCriteria),
            )
            for r in rows
        ]

    async def on_incident_opened(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit:
        opened: list[IncidentOpened] = [e.data for e in events]
        await repo.open_incident(
            conn,
            [
                (
                    o.incident_id,
                    o.number,
                    o.severity.value,
                    to_builtins(o.criteria),
                    o.status_url,
                    o.opened_at,
                )
                for o in opened
            ],
        )
        return self.refresh_incidents

    async def on_incident_updated(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit:
        """New criteria or severity hold for tickets from now on; those held stay held."""
        updated: list[IncidentUpdated] = [e.data for e in events]
        await repo.update_incidents(
            conn, [(u.incident_id, u.severity.value, to_builtins(u.criteria)) for u in updated]
        )
        return self.refresh_incidents

    async def on_incident_resolved(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit:
        """The incident is over. Tickets routing held for it that the incident never linked (a
        race at the criteria's edge) are placed as any ticket; the linked ones stay held until
        desk resolves them (incident.ticket_resolved)."""
        resolved: dict[UUID, Envelope[Any]] = {e.data.incident_id: e for e in events}
        rows = await repo.close_incidents(conn, list(resolved))
        by_ticket = {r["ticket_id"]: resolved[r["incident_id"]] for r in rows}
        await self._place_unheld(
            conn, rows, {t: (e.data.resolved_at, e) for t, e in by_ticket.items()}
        )
        return self.refresh_incidents

    async def on_ticket_linked(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit:
        """The incident linked tickets: one waiting leaves its queue, one an agent holds leaves
        their capacity (the slot freed after the commit; desk still shows it to them); both are
        held, their SLA clocks paused. A ticket routing has not seen yet is held as it
        arrives."""
        latest: dict[UUID, IncidentTicketLinked] = {e.data.ticket_id: e.data for e in events}
        known = [r["ticket_id"] for r in await repo.get_tickets(conn, list(latest))]
        await repo.share_load(conn)
        holding = await repo.holders(conn, known)
        claims = await self.load.claims(list(holding))
        await repo.release(conn, known)
        await repo.hold(
            conn,
            [
                repo.Held(t, x.incident_id, x.status_url, True, holding.get(t))
                for t, x in latest.items()
            ],
            [],
        )
        await self.clocks.hold(conn, [(t, latest[t].linked_at) for t in known])

        async def after_commit() -> None:
            await self.freed(claims)

        return after_commit

    async def on_ticket_unlinked(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> None:
        """An agent said the ticket is not the incident's: it is placed as any ticket again
        (its agent before preferred), its clocks running from what they had used."""
        latest: dict[UUID, Envelope[Any]] = {e.data.ticket_id: e for e in events}
        rows = await repo.unhold(conn, list(latest))
        await self._place_unheld(
            conn, rows, {t: (e.data.unlinked_at, e) for t, e in latest.items()}
        )

    async def _place_unheld(
        self,
        conn: asyncpg.Connection,
        rows: Sequence[asyncpg.Record],
        why: Mapping[UUID, tuple[datetime, Envelope[Any]]],
    ) -> None:
        """Tickets no longer held (`rows`: ticket_id, agent_id) are assigned or queued with
        their priority; their clocks resume at the time in `why`."""
        known = {
            r["ticket_id"]: r for r in await repo.get_tickets(conn, [r["ticket_id"] for r in rows])
        }
        back = [r for r in rows if r["ticket_id"] in known]
        await self.clocks.unhold(conn, [(r["ticket_id"], why[r["ticket_id"]][0]) for r in back])
        routes = [
            route_of(
                known[r["ticket_id"]],
                since=why[r["ticket_id"]][0],
                preferred=r["agent_id"],
                cause=why[r["ticket_id"]][1],
            )
            for r in back
        ]
        if routes:
            await self.place(conn, routes)

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
            TicketRetriaged.TYPE: self.on_retriaged,
            TicketTransferred.TYPE: self.on_transferred,
            TicketResolved.TYPE: self.on_released,
            TicketClosed.TYPE: self.on_released,
            PersonChanged.TYPE: self.on_people,
            IncidentOpened.TYPE: self.on_incident_opened,
            IncidentUpdated.TYPE: self.on_incident_updated,
            IncidentResolved.TYPE: self.on_incident_resolved,
            IncidentTicketLinked.TYPE: self.on_ticket_linked,
            IncidentTicketUnlinked.TYPE: self.on_ticket_unlinked,
        }

    async def sweep(self, ctx: Context[RoutingSettings]) -> None:
        """Safety net: resync Redis, and drain queues whose wake-up was missed."""

        async def step() -> bool:
            await self.sync()
            await self.drain_now()
            await self.refresh_incidents()
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
    email: str | None
    role: Role
    teams: list[str]
    languages: list[str]
    categories: list[str]
    channels: list[str]
    course_lines: list[str]
    priorities: list[str]
    vip: bool
    senior: bool
    schedule: dict[str, Any] | None
    capacity: int
    online: bool
    active: bool  # false: desk disabled them; they are given nothing new
    last_seen_at: datetime
    available: bool  # online, seen within the presence TTL, on shift: may be given tickets
    load: int  # tickets held
    used: float  # the capacity they take (channel weights)


class Heartbeat(BaseModel):
    agent_id: str
    online: bool
    available: bool
    expires_at: datetime | None  # presence lapses then without another heartbeat (None: never)


def agent_view(row: asyncpg.Record, *, available: bool, load: tuple[int, int]) -> AgentView:
    return AgentView(**dict(row), available=available, load=load[0], used=load[1] / MILLI)


def profile(row: asyncpg.Record) -> Profile:
    return Profile(
        agent_id=row["agent_id"],
        role=Role(row["role"]),
        teams=frozenset(row["teams"]),
        languages=frozenset(row["languages"]),
        categories=frozenset(row["categories"]),
        channels=frozenset(row["channels"]),
        course_lines=frozenset(row["course_lines"]),
        priorities=frozenset(row["priorities"]),
        vip=row["vip"],
        senior=row["senior"],
    )


def course_of(ticket: TicketCreated) -> str | None:
    return ticket.course_id


def vip_of(ticket: TicketCreated) -> bool:
    return ticket.learner_context is not None and ticket.learner_context.tier == "vip"


# Agent ids as the agents file allows them (AgentSeed.id): anything else is no agent.
AgentId = Annotated[str, Path(pattern=AGENT_ID_PATTERN, description="An agent's id.")]


def http_routes(ctx: Context[RoutingSettings], router: Router) -> APIRouter:
    api = APIRouter(route_class=Utf8JsonRoute, max_body_size=ctx.settings.http_max_body_bytes)

    caller = bearer_auth(lambda: ctx.pool, people.person_by_token)
    Caller = Annotated[asyncpg.Record, Depends(caller)]

    @api.get(
        "/v1/agents",
        summary="Agents with skills, presence and live load",
        responses=problems(401, 503),
    )
    async def agents(who: Caller) -> list[AgentView]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.load_agents(conn)
        loads = await router.load.loads([r["agent_id"] for r in rows])
        at = now()
        views = [
            agent_view(r, available=router.available(r, at), load=loads[r["agent_id"]])
            for r in rows
        ]
        if Role(who["role"]) is not Role.AGENT:
            return views
        # Colleagues' addresses are for supervisors and admins; an agent sees only their own.
        return [
            v if v.agent_id == who["agent_id"] else v.model_copy(update={"email": None})
            for v in views
        ]

    @api.put(
        "/v1/agents/{agent_id}/presence",
        summary="Go online or offline",
        description="409 when desk disabled the agent: they may go offline, not online.",
        responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def presence(agent_id: AgentId, body: Presence, who: Caller) -> PresenceChanged:
        if who["agent_id"] != agent_id and Role(who["role"]) is Role.AGENT:
            raise HTTPException(403, "agents set only their own presence")
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await repo.set_online(conn, agent_id, body.online)
            if row is None:
                raise HTTPException(404, "no such agent")
            if body.online and not row["active"]:
                raise HTTPException(409, f"{agent_id} is disabled in desk: they take no tickets")
        # Only what committed reaches Redis; a newly online agent then takes from the queue.
        await router.push_agent(row)
        assigned = await router.drain_now() if body.online else 0
        return PresenceChanged(agent_id=agent_id, online=body.online, assigned_from_queue=assigned)

    @api.post(
        "/v1/agents/{agent_id}/heartbeat",
        summary="Keep an agent's presence alive",
        description="Presence lapses CARELOOP_ROUTING_PRESENCE_TTL_SECONDS after the last "
        "heartbeat or presence change; a heartbeat does not bring an agent who went offline "
        "back online.",
        responses=problems(401, 403, 404, 422, 503),
    )
    async def heartbeat(agent_id: AgentId, who: Caller) -> Heartbeat:
        if who["agent_id"] != agent_id and Role(who["role"]) is Role.AGENT:
            raise HTTPException(403, "agents send only their own heartbeat")
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await repo.heartbeat(conn, agent_id)
            if row is None:
                raise HTTPException(404, "no such agent")
        await router.push_agent(row)
        ready = router.available(row, now())
        if ready:
            await router.drain_now()  # an agent whose presence had lapsed takes from the queue
        ttl = ctx.settings.presence_ttl
        return Heartbeat(
            agent_id=agent_id,
            online=row["online"],
            available=ready,
            expires_at=None if ttl is None else row["last_seen_at"] + ttl,
        )

    @api.get("/v1/queues", summary="Tickets waiting per team", responses=problems(401, 503))
    async def queues(_: Caller) -> dict[str, int]:
        async with ctx.pool.acquire() as conn:
            return {r["team"]: r["depth"] for r in await repo.queue_depth(conn)}

    return api
