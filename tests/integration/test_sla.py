"""SLA timers as real routing processes fire them: once each across two replicas, after a
SIGKILL of every replica, and never while a ticket waits on the learner; queued tickets the
team will not reach in time are raised at risk once, and overflow to the backup team."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from shared import topics
from shared.events import Envelope, TicketPendingLearner, TicketResumed, decode, new_event, now
from shared.kafka import make_broker, outgoing, publish_confirmed
from shared.settings import CommonSettings
from tests import support
from tests.integration.test_routing_capacity import created, resolved, routers_running
from tests.integration.test_routing_reconcile import free_every_slot
from tests.support import RunningStack, ServiceProcess, eventually

# Seconds, not hours: 3 s to the first response, 6 s to the resolution, every day all day.
SHORT = {
    "CARELOOP_ROUTING_FIRST_RESPONSE_MINUTES": json.dumps(
        dict.fromkeys(("urgent", "high", "medium", "low"), 0.05)
    ),
    "CARELOOP_ROUTING_RESOLUTION_MINUTES": json.dumps(
        dict.fromkeys(("urgent", "high", "medium", "low"), 0.1)
    ),
    "CARELOOP_ROUTING_SLA_CALENDARS": json.dumps({"default": "24x7"}),
    "CARELOOP_ROUTING_SLA_WARN_SHARE": "0.5",
    "CARELOOP_ROUTING_SLA_PREDICT_INTERVAL_SECONDS": "3600",
}


@pytest.fixture
def two_routers(stack: RunningStack, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    with routers_running(
        stack, tmp_path, (support.port(22085), support.port(22095)), **SHORT
    ) as routers:
        yield routers


@pytest.fixture
def two_slower_routers(stack: RunningStack, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """As `two_routers`, with 15 s to the first response and 30 s to the resolution: the kill
    must come before the timers fire, however slowly a loaded machine sets them."""
    slower = {
        **SHORT,
        "CARELOOP_ROUTING_FIRST_RESPONSE_MINUTES": json.dumps(
            dict.fromkeys(("urgent", "high", "medium", "low"), 0.25)
        ),
        "CARELOOP_ROUTING_RESOLUTION_MINUTES": json.dumps(
            dict.fromkeys(("urgent", "high", "medium", "low"), 0.5)
        ),
    }
    with routers_running(
        stack, tmp_path, (support.port(22085), support.port(22095)), **slower
    ) as routers:
        yield routers


class Timeline:
    """The SLA events routing announced about our tickets, by event id (the relay may re-send
    an event after a crash: consumers de-duplicate by id, so do we)."""

    def __init__(self, stack: RunningStack, ids: list[uuid.UUID]) -> None:
        self.ids = set(ids)
        self.consumer = AIOKafkaConsumer(
            topics.ROUTING, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest"
        )
        self.events: dict[uuid.UUID, Envelope[Any]] = {}

    async def poll(self) -> None:
        for records in (await self.consumer.getmany(timeout_ms=300)).values():
            for r in records:
                e = decode(r.value)
                if e.type.startswith("sla.") and e.data.ticket_id in self.ids:
                    self.events[e.event_id] = e

    def fired(self) -> list[tuple[uuid.UUID, str, str, int]]:
        """(ticket, type, target, level) of every SLA event seen."""
        return sorted(
            (e.data.ticket_id, e.type, str(e.data.target), getattr(e.data, "level", 0))
            for e in self.events.values()
        )

    async def complete(self) -> bool:
        """Each ticket warned and breached (level 1) on both targets."""
        await self.poll()
        seen = set(self.fired())
        return all(
            (t, kind, target, level) in seen
            for t in self.ids
            for target in ("first_response", "resolution")
            for kind, level in (("sla.warning", 0), ("sla.breached", 1))
        )


@pytest.fixture
async def publisher(settings: CommonSettings) -> AsyncIterator[Any]:
    broker = make_broker(settings, client_id="test-sla")
    await broker.start()

    async def send(events: list[Envelope[Any]]) -> None:
        await publish_confirmed(broker, [outgoing(e) for e in events])

    yield send
    await broker.stop()


async def timers_of(stack: RunningStack, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.dsn)
    try:
        return await conn.fetch(
            "SELECT ticket_id, target, cycle, threshold, fire_at, fired_at "
            "FROM routing.sla_timers WHERE ticket_id = ANY($1::uuid[])",
            ids,
        )
    finally:
        await conn.close()


async def settle_and_check_once(
    timeline: Timeline, stack: RunningStack, ids: list[uuid.UUID]
) -> None:
    """Every timer of ours fired, and each announced exactly once."""
    await eventually(timeline.complete, timeout=90)

    async def all_fired() -> bool:
        rows = await timers_of(stack, ids)
        return bool(rows) and all(r["fired_at"] is not None for r in rows)

    await eventually(all_fired, timeout=60)
    await asyncio.sleep(1)  # anything fired twice would be on the topic by now
    await timeline.poll()
    fired = timeline.fired()
    assert len(fired) == len(set(fired)), "an SLA threshold fired twice"
    assert len(fired) == len(await timers_of(stack, ids))


async def test_timers_fire_once_across_two_replicas(
    stack: RunningStack, two_routers: list[ServiceProcess], publisher: Any
) -> None:
    ids = [uuid.uuid4() for _ in range(12)]
    timeline = Timeline(stack, ids)
    await timeline.consumer.start()
    try:
        await publisher([created(t, 900_000 + n) for n, t in enumerate(ids)])
        await settle_and_check_once(timeline, stack, ids)
        breaches = [e for e in timeline.events.values() if e.type == "sla.breached"]
        assert all(e.data.recipients for e in breaches), "a breach with nobody told"
        level1 = [e for e in breaches if e.data.level == 1]
        # The supervisor of tech_support (the integration agents' team) hears of level 1.
        assert {r.agent_id for e in level1 for r in e.data.recipients} == {"sue"}
    finally:
        await timeline.consumer.stop()


@pytest.mark.faults
async def test_timers_survive_a_sigkill_of_every_replica(
    stack: RunningStack, two_slower_routers: list[ServiceProcess], publisher: Any
) -> None:
    two_routers = two_slower_routers
    ids = [uuid.uuid4() for _ in range(6)]
    await publisher([created(t, 910_000 + n) for n, t in enumerate(ids)])

    async def clocks_set() -> bool:
        return len(await timers_of(stack, ids)) >= 4 * len(ids)

    await eventually(clocks_set, timeout=60)
    for r in two_routers:
        r.kill()
    unfired = [r for r in await timers_of(stack, ids) if r["fired_at"] is None]
    assert unfired, "every timer fired before the kill: nothing left to prove"

    conn = await asyncpg.connect(stack.dsn)
    try:
        latest = max(r["fire_at"] for r in unfired)

        async def all_due() -> bool:
            return bool(await conn.fetchval("SELECT now() > $1", latest))

        await eventually(all_due, timeout=60)
    finally:
        await conn.close()

    timeline = Timeline(stack, ids)
    await timeline.consumer.start()
    try:
        for r in two_routers:
            r.start()
        for r in two_routers:
            r.wait_healthy()
        await settle_and_check_once(timeline, stack, ids)
    finally:
        await timeline.consumer.stop()


async def test_a_ticket_pending_on_the_learner_does_not_breach(
    stack: RunningStack, two_routers: list[ServiceProcess], publisher: Any
) -> None:
    ticket = uuid.uuid4()
    timeline = Timeline(stack, [ticket])
    await timeline.consumer.start()
    conn = await asyncpg.connect(stack.dsn)
    try:
        new = created(ticket, 920_000)
        paused = new_event(
            TicketPendingLearner(
                ticket_id=ticket, number="CL-920000", agent_id="ana", paused_at=now()
            ),
            producer="test",
        )
        await publisher([new, paused])

        async def paused_clocks() -> bool:
            rows = await conn.fetch(
                "SELECT running_since FROM routing.sla_clocks WHERE ticket_id = $1", ticket
            )
            return len(rows) == 2 and all(r["running_since"] is None for r in rows)

        await eventually(paused_clocks, timeout=60)
        # Well past both targets, counted from the ticket's creation: nothing fired meanwhile.
        past = new.data.created_at.timestamp() + 8

        async def targets_passed() -> bool:
            return bool(await conn.fetchval("SELECT extract(epoch FROM now()) > $1", past))

        await eventually(targets_passed, timeout=30)
        await timeline.poll()
        assert not [e for e in timeline.events.values() if e.type == "sla.breached"]
        assert not await conn.fetchval(
            "SELECT count(*) FROM routing.sla_timers WHERE ticket_id = $1 AND fired_at IS NULL",
            ticket,
        )

        resumed_at = now()
        await publisher(
            [
                new_event(
                    TicketResumed(ticket_id=ticket, number="CL-920000", resumed_at=resumed_at),
                    producer="test",
                )
            ]
        )
        await eventually(timeline.complete, timeout=60)
        first = next(
            e
            for e in timeline.events.values()
            if e.type == "sla.breached" and e.data.target == "first_response"
        )
        # The wait is not counted: the clock runs on from where it paused, after resumption.
        assert first.data.due_at > resumed_at
    finally:
        await conn.close()
        await timeline.consumer.stop()


@pytest.fixture
def predicting_routers(stack: RunningStack, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """Routers that predict every half second from the last 3 seconds' assignments, with a
    minute to each first response, and tech_support's backup team customer_service."""
    with routers_running(
        stack,
        tmp_path,
        (support.port(22085), support.port(22095)),
        **{
            **SHORT,
            "CARELOOP_ROUTING_FIRST_RESPONSE_MINUTES": json.dumps(
                dict.fromkeys(("urgent", "high", "medium", "low"), 1)
            ),
            "CARELOOP_ROUTING_RESOLUTION_MINUTES": json.dumps(
                dict.fromkeys(("urgent", "high", "medium", "low"), 10)
            ),
            "CARELOOP_ROUTING_SLA_PREDICT_INTERVAL_SECONDS": "0.5",
            "CARELOOP_ROUTING_SLA_THROUGHPUT_WINDOW_MINUTES": "0.05",
            "CARELOOP_ROUTING_SLA_OVERFLOW": json.dumps({"tech_support": "customer_service"}),
        },
    ) as routers:
        yield routers


async def test_queued_tickets_the_team_will_not_reach_in_time_are_at_risk_and_overflow(
    stack: RunningStack,
    settings: CommonSettings,
    predicting_routers: list[ServiceProcess],
    publisher: Any,
) -> None:
    await free_every_slot(stack, settings)
    ids = [uuid.uuid4() for _ in range(20)]  # the team's capacity is 14: some must wait
    routing = AIOKafkaConsumer(
        topics.ROUTING, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest"
    )
    seen: dict[uuid.UUID, Envelope[Any]] = {}
    await routing.start()
    try:
        await publisher([created(t, 930_000 + n) for n, t in enumerate(ids)])

        def of(kind: str) -> list[Envelope[Any]]:
            return [e for e in seen.values() if e.type == kind]

        async def all_queued_at_risk() -> bool:
            for records in (await routing.getmany(timeout_ms=300)).values():
                for r in records:
                    e = decode(r.value)
                    if e.data.ticket_id in ids:
                        seen[e.event_id] = e
            waiting = {e.data.ticket_id for e in of("ticket.routed") if e.data.agent_id is None}
            return (
                len(of("ticket.routed")) == len(ids)
                and bool(waiting)
                and waiting <= {e.data.ticket_id for e in of("sla.at_risk")}
            )

        await eventually(all_queued_at_risk, timeout=60)
        await asyncio.sleep(1)  # two more looks by each replica: nothing is raised twice
        await all_queued_at_risk()
        waiting = {e.data.ticket_id for e in of("ticket.routed") if e.data.agent_id is None}
        risks = of("sla.at_risk")
        assert sorted(e.data.ticket_id for e in risks) == sorted(waiting), "raised twice"
        for e in risks:
            assert e.data.overflow_team == "customer_service" and e.data.team == "tech_support"
            assert e.data.predicted_at is None  # the team took nobody in the last 3 s
            assert [r.agent_id for r in e.data.recipients] == ["sue"]
        moved = {e.data.ticket_id for e in of("ticket.queued") if e.data.team == "customer_service"}
        assert moved == waiting
    finally:
        await routing.stop()
        await publisher([resolved(t) for t in ids])  # leave no queue behind for other tests
        await free_every_slot(stack, settings)
