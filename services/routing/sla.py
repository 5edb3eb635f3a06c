"""SLA clocks that act (R5): clocks started, stopped, paused and restarted by desk's events;
durable timers that warn, escalate and predict breaches, fired once across replicas.

Each ticket has two clocks (first response, resolution) in `sla_clocks`, and one row per
threshold in `sla_timers` with its `fire_at`. Every replica runs one loop that claims due rows
(FOR UPDATE SKIP LOCKED, by fire_at), marks them fired and stages the events in the same
transaction, then sleeps until the next due row or a NOTIFY that a timer was set: no poll per
ticket, and a SIGKILL loses nothing (what was not committed fired is still due).
"""

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from prometheus_client import Counter, Histogram

from services.routing import sla_repo
from services.routing.settings import RoutingSettings
from services.routing.sla_rules import (
    Clock,
    Hours,
    Policy,
    Threshold,
    at_risk,
    due,
    fire_times,
    pause,
    predicted_first_response,
    resume,
    retarget,
    start,
    thresholds,
)
from shared import outbox
from shared.agents import Role, load_agents
from shared.business_hours import Calendar
from shared.cancel import raise_if_cancelled
from shared.errors import is_transient
from shared.events import (
    Category,
    Envelope,
    EventData,
    Priority,
    SlaAtRisk,
    SlaBreached,
    SlaRecipient,
    SlaTarget,
    SlaWarning,
    TicketClosed,
    TicketCreated,
    TicketPendingLearner,
    TicketQueued,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    TicketResumed,
    TicketRetriaged,
    new_event,
    now,
)
from shared.inbox import AfterCommit, Handler
from shared.service import Context, Task, every

log = structlog.get_logger(__name__)
FIRED = Counter(
    "careloop_sla_fired_total",
    "SLA thresholds fired by this replica (warning, breach, management) and queued tickets "
    "found at risk (at_risk), by target.",
    ["threshold", "target"],
)
LATENESS = Histogram(
    "careloop_sla_timer_lateness_seconds",
    "How long after its fire_at a timer fired: the SLA loop's health (a replica down, the "
    "database slow, a backlog after a restart).",
    buckets=(0.1, 0.5, 1, 2, 5, 15, 60, 300, 1800),
)
PRODUCER = "routing"
IDLE_LOOK_SECONDS = 60.0  # a safety net: every timer set wakes the loop by NOTIFY
TIMED = [Threshold.WARNING.value, Threshold.BREACH.value, Threshold.MANAGEMENT.value]
BOTH = [SlaTarget.FIRST_RESPONSE.value, SlaTarget.RESOLUTION.value]


class SlaClocks:
    """The SLA clocks of one routing replica: its event handlers and its two loops."""

    def __init__(self, ctx: Context[RoutingSettings]) -> None:
        s = ctx.settings
        self._ctx = ctx
        self._settings = s
        self.hours = Hours.of(s.sla_calendars)
        self.policy = Policy(warn_share=s.sla_warn_share, management_share=s.sla_management_share)
        self.minutes: dict[SlaTarget, Mapping[str, float]] = {
            SlaTarget.FIRST_RESPONSE: s.first_response_minutes,
            SlaTarget.RESOLUTION: s.resolution_minutes,
        }
        self._wake = asyncio.Event()

    # ---- clock arithmetic on stored rows ------------------------------------------------

    def calendar(self, priority: str, team: str) -> Calendar:
        return self.hours.calendar(Priority(priority), team)

    def timers(
        self, ticket_id: UUID, target: str, cycle: int, clock: Clock, facts: Any
    ) -> list[sla_repo.TimerRow]:
        """The timed thresholds of a running clock, as rows to set."""
        table = thresholds(Priority(facts["priority"]), _category(facts["category"]), self.policy)
        times = fire_times(clock, table, self.calendar(facts["priority"], facts["team"]))
        return [
            sla_repo.TimerRow(ticket_id, target, cycle, threshold.value, at)
            for threshold, at in times.items()
        ]

    def target_minutes(self, target: str, priority: str) -> float:
        return float(self.minutes[SlaTarget(target)][priority])

    # ---- what desk's events do to the clocks --------------------------------------------

    async def on_created(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """Start both clocks at the ticket's creation, once per ticket (idempotent by ticket
        id: routing's handler stored its triage earlier in this transaction)."""
        created: dict[UUID, TicketCreated] = {e.data.ticket_id: e.data for e in events}
        facts = await sla_repo.ticket_facts(conn, list(created))
        clocks = [
            sla_repo.ClockRow(
                t, target, 0, self.target_minutes(target, facts[t]["priority"]), 0.0, c.created_at
            )
            for t, c in created.items()
            if t in facts
            for target in BOTH
        ]
        fresh = await sla_repo.start_clocks(conn, clocks)
        await sla_repo.set_timers(
            conn,
            [
                timer
                for c in clocks
                if (c.ticket_id, c.target) in fresh
                for timer in self.timers(
                    c.ticket_id,
                    c.target,
                    0,
                    Clock(c.target_minutes, 0.0, c.running_since),
                    facts[c.ticket_id],
                )
            ],
        )

    async def on_replied(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """The first reply meets the first-response target: that clock stops."""
        first: list[TicketReplied] = [e.data for e in events if e.data.first_response]
        for reply in first:
            await sla_repo.stop_clocks(
                conn, [reply.ticket_id], [SlaTarget.FIRST_RESPONSE.value], reply.replied_at
            )

    async def on_resolved(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """Resolving meets the resolution target (and answers the learner, if nobody had)."""
        for event in events:
            resolved: TicketResolved = event.data
            await sla_repo.stop_clocks(conn, [resolved.ticket_id], BOTH, resolved.resolved_at)

    async def on_closed(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        closed: list[TicketClosed] = [e.data for e in events]
        for c in closed:
            await sla_repo.stop_clocks(conn, [c.ticket_id], BOTH, c.closed_at)
        await sla_repo.forget(conn, [c.ticket_id for c in closed])

    async def on_reopened(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """A reopened ticket's resolution clock starts a new cycle from the reopening, with the
        target of its priority now; its thresholds can fire again."""
        for event in events:
            reopened: TicketReopened = event.data
            rows = await sla_repo.restart_clocks(
                conn, [reopened.ticket_id], SlaTarget.RESOLUTION.value
            )
            await self._restart(conn, rows, reopened.reopened_at)

    async def _restart(
        self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], at: datetime
    ) -> None:
        saved, timers = [], []
        for r in rows:
            clock = start(self.target_minutes(r["target"], r["priority"]), at)
            cycle = r["cycle"] + 1
            saved.append(
                sla_repo.ClockRow(r["ticket_id"], r["target"], cycle, clock.target_minutes, 0.0, at)
            )
            timers += self.timers(r["ticket_id"], r["target"], cycle, clock, r)
        await sla_repo.drop_timers(conn, [r["ticket_id"] for r in rows], TIMED)
        await sla_repo.save_clocks(conn, saved)
        await sla_repo.set_timers(conn, timers)

    async def on_pending(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """The ticket waits on the learner: its clocks pause (R5.3), nothing fires meanwhile."""
        for event in events:
            pending: TicketPendingLearner = event.data
            at = pending.paused_at

            def paused(clock: Clock, calendar: Calendar, _: str, at: datetime = at) -> Clock:
                return pause(clock, at, calendar)

            await self._change(conn, pending.ticket_id, paused)

    async def on_resumed(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """The learner answered: the clocks run on from what they had used."""
        for event in events:
            resumed: TicketResumed = event.data
            at = resumed.resumed_at

            def running(clock: Clock, _: Calendar, __: str, at: datetime = at) -> Clock:
                return resume(clock, at)

            await self._change(conn, resumed.ticket_id, running)

    async def hold(self, conn: asyncpg.Connection, held: Sequence[tuple[UUID, datetime]]) -> None:
        """Tickets an open incident holds (ticket, since when): their clocks pause like a
        pending ticket's, nothing fires meanwhile (the incident's announcements answer them)."""
        for ticket_id, at in held:

            def paused(clock: Clock, calendar: Calendar, _: str, at: datetime = at) -> Clock:
                return pause(clock, at, calendar)

            await self._change(conn, ticket_id, paused)

    async def unhold(
        self, conn: asyncpg.Connection, unheld: Sequence[tuple[UUID, datetime]]
    ) -> None:
        """Tickets no longer held (ticket, since when): their clocks run on from what they
        had used."""
        for ticket_id, at in unheld:

            def running(clock: Clock, _: Calendar, __: str, at: datetime = at) -> Clock:
                return resume(clock, at)

            await self._change(conn, ticket_id, running)

    async def on_retriaged(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """A person changed the priority: the running clocks take its targets."""
        for event in events:
            retriaged: TicketRetriaged = event.data
            if retriaged.priority != retriaged.previous_priority:
                await self.recompute(conn, retriaged.ticket_id, Priority(retriaged.priority))

    async def recompute(
        self, conn: asyncpg.Connection, ticket_id: UUID, priority: Priority
    ) -> None:
        """A ticket's priority changed (a re-triage, stored in `tickets` by the caller): its
        running clocks take the new targets and calendar, keeping the time used; thresholds
        that fired stay fired, the others move."""
        await self._change(
            conn,
            ticket_id,
            lambda clock, _, target: retarget(clock, self.target_minutes(target, priority)),
        )

    async def _change(
        self,
        conn: asyncpg.Connection,
        ticket_id: UUID,
        change: Callable[[Clock, Calendar, str], Clock],
    ) -> None:
        """Apply `change` (clock, calendar, target) to the ticket's watched clocks and set
        their timers anew (none while paused)."""
        rows = await sla_repo.lock_clocks(conn, [ticket_id])
        saved, timers = [], []
        for r in rows:
            clock = Clock(r["target_minutes"], r["consumed_minutes"], r["running_since"])
            calendar = self.calendar(r["priority"], r["team"])
            new = change(clock, calendar, r["target"])
            saved.append(
                sla_repo.ClockRow(
                    ticket_id,
                    r["target"],
                    r["cycle"],
                    new.target_minutes,
                    new.consumed_minutes,
                    new.running_since,
                )
            )
            timers += self.timers(ticket_id, r["target"], r["cycle"], new, r)
        await sla_repo.drop_timers(conn, [ticket_id], TIMED)
        await sla_repo.save_clocks(conn, saved)
        await sla_repo.set_timers(conn, timers)

    def handlers(self) -> dict[str, Handler]:
        return {
            TicketCreated.TYPE: self.on_created,
            TicketReplied.TYPE: self.on_replied,
            TicketResolved.TYPE: self.on_resolved,
            TicketClosed.TYPE: self.on_closed,
            TicketReopened.TYPE: self.on_reopened,
            TicketPendingLearner.TYPE: self.on_pending,
            TicketResumed.TYPE: self.on_resumed,
            TicketRetriaged.TYPE: self.on_retriaged,
        }

    # ---- start: where agents are reached -----------------------------------------------

    async def seed_emails(self, ctx: Context[RoutingSettings]) -> None:
        seed = load_agents(ctx.settings).agents
        async with ctx.pool.acquire() as conn:
            await sla_repo.seed_emails(conn, [(a.id, a.email) for a in seed if a.email])

    # ---- the timer loop -------------------------------------------------------------------

    async def run(self, ctx: Context[RoutingSettings]) -> None:
        """Fire due timers until cancelled; a lost database connection is retried."""
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("SLA timer loop restarting", error=repr(exc))
                await asyncio.sleep(1 if is_transient(exc) else 5)

    async def _lead(self) -> None:
        dsn = self._settings.pg_dsn.get_secret_value()
        listener = await asyncpg.connect(dsn, server_settings={"search_path": "routing"})
        try:
            await listener.add_listener(sla_repo.WAKE_CHANNEL, lambda *_: self._wake.set())
            while True:
                raise_if_cancelled()
                self._wake.clear()
                if await self.fire_once() >= self._settings.sla_batch:
                    continue
                async with self._ctx.pool.acquire() as conn:
                    wait = await sla_repo.seconds_to_next(conn)
                timeout = IDLE_LOOK_SECONDS if wait is None else min(wait, IDLE_LOOK_SECONDS)
                if timeout > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await self._wake.wait()
        finally:
            await listener.close()

    async def fire_once(self) -> int:
        """Fire what is due (at most a batch) in one transaction: the timers marked fired and
        their events staged together; returns how many fired."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            due_rows = await sla_repo.claim_due(conn, self._settings.sla_batch)
            if not due_rows:
                return 0
            people = await sla_repo.agents(conn)
            events = [self._event(r, people) for r in due_rows]
            await sla_repo.mark_fired(conn, due_rows)
            await outbox.add(conn, events)
        fired_at = now()
        for r in due_rows:
            FIRED.labels(r["threshold"], r["target"]).inc()
            LATENESS.observe(max(0.0, (fired_at - r["fire_at"]).total_seconds()))
            log.info(
                "SLA threshold fired",
                ticket_id=str(r["ticket_id"]),
                target=r["target"],
                threshold=r["threshold"],
                fire_at=r["fire_at"].isoformat(),
            )
        return len(due_rows)

    def _event(self, r: asyncpg.Record, people: Sequence[asyncpg.Record]) -> Envelope[Any]:
        clock = Clock(r["target_minutes"], r["consumed_minutes"], r["running_since"])
        due_at = due(clock, self.calendar(r["priority"], r["team"])) or r["fire_at"]
        threshold = Threshold(r["threshold"])
        common: dict[str, Any] = {
            "ticket_id": r["ticket_id"],
            "target": SlaTarget(r["target"]),
            "due_at": due_at,
            "priority": Priority(r["priority"]),
            "team": r["team"],
            "category": _category(r["category"]),
            "assignee_id": r["assignee_id"],
        }
        data: EventData
        if threshold is Threshold.WARNING:
            holder = [p for p in people if p["agent_id"] == r["assignee_id"]]
            data = SlaWarning(
                **common,
                recipients=recipients(holder or supervisors(people, r["team"])),
                share=self.policy.warn_share,
                warned_at=now(),
            )
        else:
            level = 1 if threshold is Threshold.BREACH else 2
            to = supervisors(people, r["team"]) if level == 1 else management(people)
            data = SlaBreached(**common, level=level, recipients=recipients(to), breached_at=now())
        return new_event(data, producer=PRODUCER)

    # ---- breach prediction --------------------------------------------------------------

    async def predict(self, ctx: Context[RoutingSettings]) -> None:
        """Look at the queues now and then: a ticket predicted to breach raises sla.at_risk."""
        await every(
            self._settings.sla_predict_interval_seconds, self.predict_once, what="SLA prediction"
        )

    async def predict_once(self) -> bool:
        """One look: returns False (the next look waits for the interval)."""
        s = self._settings
        at = now()
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            queued = await sla_repo.queued_first_responses(conn)
            if not queued:
                return False
            window = s.sla_throughput_window_minutes
            pace = await sla_repo.assigned_since(conn, at - timedelta(minutes=window))
            risky: list[tuple[asyncpg.Record, datetime, datetime | None]] = []
            for q in queued:
                clock = Clock(q["target_minutes"], q["consumed_minutes"], q["running_since"])
                due_at = due(clock, self.calendar(q["priority"], q["team"]))
                if due_at is None or due_at <= at:
                    continue  # the breach is the timers' to tell
                predicted = predicted_first_response(
                    at=at,
                    position=q["position"],
                    assigned_recently=pace.get(q["team"], 0),
                    window_minutes=window,
                )
                if at_risk(predicted=predicted, due_at=due_at):
                    risky.append((q, due_at, predicted))
            fresh = await sla_repo.claim_at_risk(
                conn, [(q["ticket_id"], q["cycle"]) for q, _, _ in risky]
            )
            risky = [x for x in risky if x[0]["ticket_id"] in fresh]
            if not risky:
                return False
            people = await sla_repo.agents(conn)
            moves = [
                (q["ticket_id"], s.sla_overflow[q["team"]])
                for q, _, _ in risky
                if q["team"] in s.sla_overflow and not q["supervisor"]
            ]
            moved = dict(moves)
            await sla_repo.overflow(conn, moves)
            events: list[Envelope[Any]] = []
            for q, due_at, predicted in risky:
                backup = moved.get(q["ticket_id"])
                events.append(
                    new_event(
                        SlaAtRisk(
                            ticket_id=q["ticket_id"],
                            due_at=due_at,
                            predicted_at=predicted,
                            queue_position=q["position"],
                            priority=Priority(q["priority"]),
                            team=q["team"],
                            recipients=recipients(supervisors(people, q["team"])),
                            overflow_team=backup,
                            raised_at=at,
                        ),
                        producer=PRODUCER,
                    )
                )
                if backup is not None:
                    events.append(
                        new_event(
                            TicketQueued(
                                ticket_id=q["ticket_id"],
                                team=backup,
                                priority=Priority(q["priority"]),
                                queued_at=at,
                            ),
                            producer=PRODUCER,
                        )
                    )
            await outbox.add(conn, events)
        FIRED.labels(Threshold.AT_RISK.value, SlaTarget.FIRST_RESPONSE.value).inc(len(risky))
        log.info("SLA at risk", tickets=len(risky), overflowed=len(moves))
        return False


def _category(value: str | None) -> Category | None:
    """A stored category (None for one this code does not know: an older or newer triage)."""
    try:
        return Category(value) if value is not None else None
    except ValueError:
        return None


def supervisors(people: Iterable[asyncpg.Record], team: str) -> list[asyncpg.Record]:
    """The team's supervisors; any supervisor when the team has none (as routing places a
    supervisor's ticket)."""
    people = list(people)
    own = [p for p in people if p["role"] == Role.SUPERVISOR and team in p["teams"]]
    return own or [p for p in people if p["role"] == Role.SUPERVISOR]


def management(people: Iterable[asyncpg.Record]) -> list[asyncpg.Record]:
    """Admins; the supervisors when there is no admin (someone above the team must hear)."""
    people = list(people)
    return [p for p in people if p["role"] == Role.ADMIN] or [
        p for p in people if p["role"] == Role.SUPERVISOR
    ]


def recipients(people: Iterable[asyncpg.Record]) -> tuple[SlaRecipient, ...]:
    return tuple(
        SlaRecipient(agent_id=p["agent_id"], name=p["name"], role=p["role"], email=p["email"])
        for p in sorted(people, key=lambda p: p["agent_id"])
    )


def chain(*maps: Mapping[str, Handler]) -> dict[str, Handler]:
    """One handler per event type that applies each map's handler for it in order, in the
    consumer's one transaction (routing places a new ticket, then the SLA starts its clocks);
    their after-commit actions run in the same order."""
    by_type: dict[str, list[Handler]] = {}
    for m in maps:
        for event_type, handler in m.items():
            by_type.setdefault(event_type, []).append(handler)

    def combined(handlers: list[Handler]) -> Handler:
        if len(handlers) == 1:
            return handlers[0]

        async def apply(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
            actions = [a for h in handlers if (a := await h(conn, events)) is not None]

            async def after_commit() -> None:
                for action in actions:
                    result = action()
                    if result is not None:
                        await result

            return after_commit

        return apply

    return {t: combined(hs) for t, hs in by_type.items()}


def starting(*steps: Task) -> Task:
    """One start task that runs `steps` in order."""

    async def run(ctx: Context[Any]) -> None:
        for step in steps:
            await step(ctx)

    return run
