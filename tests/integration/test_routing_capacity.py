"""Two routing processes, hundreds of tickets: no agent ever holds more than their capacity."""

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from services.routing.load import PREFIX
from shared import topics
from shared.agents import load_seed
from shared.events import (
    Channel,
    Envelope,
    Learner,
    TicketCreated,
    TicketResolved,
    decode,
    new_event,
    now,
)
from shared.kafka import ensure_topics, make_broker, outgoing, publish_confirmed
from shared.settings import CommonSettings
from tests import support
from tests.integration.inprocess import caught_up
from tests.support import RunningStack, ServiceProcess, eventually

AGENTS = Path(__file__).with_name("agents.yaml")
# The agents who take tickets (the admin, in no team, takes none).
CAPACITY = {a.id: a.capacity for a in load_seed(AGENTS).agents if a.capacity}
TICKETS = 300


@contextlib.contextmanager
def routers_running(
    stack: RunningStack, tmp_path: Path, ports: tuple[int, ...], **settings: str
) -> Iterator[list[ServiceProcess]]:
    """Routing processes sharing a consumer group of their own, with the test's `settings`."""
    groups = support.fresh_groups()
    routers = [
        ServiceProcess(
            "routing",
            port,
            {
                **stack.env,
                **groups,
                "CARELOOP_AGENTS_FILE": str(AGENTS),
                "CARELOOP_ROUTING_HTTP_PORT": str(port),
                **settings,
            },
            tmp_path / f"routing-{port}.log",
        )
        for port in ports
    ]
    for r in routers:
        r.start()
    try:
        for r in routers:
            r.wait_healthy()
        yield routers
    finally:
        for r in routers:
            r.stop()


@pytest.fixture
def two_routers(stack: RunningStack, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    with routers_running(
        stack,
        tmp_path,
        (support.port(22083), support.port(22093)),
        CARELOOP_ROUTING_SWEEP_INTERVAL_SECONDS="0.5",
    ) as routers:
        yield routers


def created(ticket_id: uuid.UUID, n: int) -> Envelope[Any]:
    return new_event(
        TicketCreated(
            ticket_id=ticket_id,
            number=f"CL-{n:06d}",
            channel=Channel.WEB,
            learner=Learner(name="Learner", email=f"l{n}@example.com"),
            subject="The video player crashes",
            description="Playback freezes in the browser",
            language="en",
            created_at=now(),
        ),
        producer="test",
    )


def resolved(ticket_id: uuid.UUID) -> Envelope[Any]:
    return new_event(
        TicketResolved(
            ticket_id=ticket_id,
            number="CL-0",
            agent_id="x",
            resolution="fixed",
            confirm_url="http://x",
            created_at=now(),
            resolved_at=now(),
        ),
        producer="test",
    )


class Scene:
    """Our tickets, what routing said about them on careloop.routing.v1, and its live state."""

    def __init__(self, stack: RunningStack, settings: CommonSettings, tickets: int) -> None:
        self.stack = stack
        self.ids = [uuid.uuid4() for _ in range(tickets)]
        self.consumer = AIOKafkaConsumer(
            topics.ROUTING, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest"
        )
        self.broker = make_broker(settings, client_id="test-routing")
        self.redis = Redis.from_url(stack.redis_url)
        self.events: dict[uuid.UUID, Envelope[Any]] = {}

    async def __aenter__(self) -> "Scene":
        await self.consumer.start()
        await self.broker.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.redis.aclose()
        await self.broker.stop()
        await self.consumer.stop()

    async def clear_leftovers(self, routers: Sequence[ServiceProcess] = ()) -> None:
        """Resolve what earlier tests on this stack left open, queued or assigned (desk's tests
        publish tickets too, and routers in a group of their own read the topic from its start),
        so that this test begins with every slot free and nothing older in the queue. With
        `routers`, first wait until their group has read every earlier event: on a slow machine
        the replay outlasted the settling below, and an earlier test's ticket, queued mid-test
        with its older creation time, went ahead of ours."""
        for group in {r.env["CARELOOP_KAFKA_GROUP_PREFIX"] + "routing" for r in routers}:
            for topic in (topics.TICKETS, topics.PEOPLE, topics.INCIDENTS):
                await caught_up(self.stack.bootstrap, group, topic, timeout=180)
        conn = await asyncpg.connect(self.stack.dsn)
        try:

            async def settled() -> bool:
                rows = await conn.fetch(
                    "SELECT ticket_id FROM routing.queue UNION "
                    "SELECT ticket_id FROM routing.assignments WHERE released_at IS NULL"
                )
                await self.send([resolved(r["ticket_id"]) for r in rows])
                await asyncio.sleep(1)  # the routers may still be reading older tickets
                return not rows

            await eventually(settled, timeout=90)
            await eventually(settled, timeout=90)  # and still nothing a second later
        finally:
            await conn.close()

    async def send(self, events: list[Envelope[Any]]) -> None:
        await publish_confirmed(self.broker, [outgoing(e) for e in events])

    async def poll(self) -> None:
        ours = set(self.ids)
        for records in (await self.consumer.getmany(timeout_ms=300)).values():
            for r in records:
                e = decode(r.value)
                if e.data.ticket_id in ours:
                    self.events[e.event_id] = e  # the relay may re-send: count by event id

    def of_type(self, event_type: str) -> list[Envelope[Any]]:
        return [e for e in self.events.values() if e.type == event_type]

    def assignments(self) -> list[Envelope[Any]]:
        """Every assignment announced: a new ticket's ticket.routed to an agent, or a later
        ticket.assigned."""
        routed = [e for e in self.of_type("ticket.routed") if e.data.agent_id is not None]
        return routed + self.of_type("ticket.assigned")

    def queued(self) -> set[uuid.UUID]:
        """Tickets announced as queued: new ones routed to nobody, or later ticket.queued."""
        routed = {
            e.data.ticket_id for e in self.of_type("ticket.routed") if e.data.agent_id is None
        }
        return routed | {e.data.ticket_id for e in self.of_type("ticket.queued")}

    async def placed(self, count: int, *, assigned: int = 0) -> bool:
        """At least `count` of ours assigned or queued, and at least `assigned` assigned."""
        await self.poll()
        done = self.queued() | {e.data.ticket_id for e in self.assignments()}
        return len(done) >= count and len(self.assignments()) >= assigned

    async def loads(self) -> dict[str, int]:
        return {a: await self.redis.scard(f"{PREFIX}load:{a}") for a in CAPACITY}

    async def active_in_postgres(self) -> dict[str, int]:
        conn = await asyncpg.connect(self.stack.dsn)
        try:
            rows = await conn.fetch(
                "SELECT agent_id, count(*) AS n FROM routing.assignments "
                "WHERE released_at IS NULL GROUP BY agent_id"
            )
        finally:
            await conn.close()
        return {r["agent_id"]: r["n"] for r in rows}


async def test_two_routers_never_exceed_an_agents_capacity_and_drain_the_queue(
    stack: RunningStack, settings: CommonSettings, two_routers: list[ServiceProcess]
) -> None:
    await ensure_topics(settings)
    async with Scene(stack, settings, TICKETS) as scene:
        await scene.clear_leftovers(two_routers)
        held = await scene.loads()
        slots = sum(CAPACITY.values()) - sum(held.values())
        assert slots > 0
        await asyncio.gather(*(scene.send([created(t, i)]) for i, t in enumerate(scene.ids)))
        await eventually(lambda: scene.placed(TICKETS, assigned=slots), timeout=60)
        await asyncio.sleep(2)  # let a second router's late mistake, if any, show up
        await scene.poll()

        first_wave = scene.assignments()
        per_ticket = Counter(e.data.ticket_id for e in first_wave)
        assert len(first_wave) == slots and max(per_ticket.values()) == 1
        per_agent = Counter(e.data.agent_id for e in first_wave)
        assert all(per_agent[a] + held[a] <= CAPACITY[a] for a in per_agent), per_agent
        assert await scene.loads() == CAPACITY
        assert await scene.active_in_postgres() == CAPACITY

        # Resolving the assigned tickets frees every slot; the queue refills them, oldest first.
        await scene.send([resolved(e.data.ticket_id) for e in first_wave])
        await eventually(lambda: scene.placed(TICKETS, assigned=2 * slots), timeout=60)
        await asyncio.sleep(2)
        await scene.poll()
        assigned = scene.assignments()
        assert len(assigned) == 2 * slots
        assert max(Counter(e.data.ticket_id for e in assigned).values()) == 1
        assert await scene.loads() == CAPACITY
        assert await scene.active_in_postgres() == CAPACITY
        second_wave = {e.data.ticket_id for e in assigned} - {e.data.ticket_id for e in first_wave}
        queued = scene.queued()
        oldest_queued = [t for t in scene.ids if t in queued][:slots]  # ids in creation order
        assert second_wave == set(oldest_queued)


async def test_after_redis_loses_everything_routing_rebuilds_the_load_and_still_respects_capacity(
    stack: RunningStack, settings: CommonSettings, two_routers: list[ServiceProcess]
) -> None:
    await ensure_topics(settings)
    async with Scene(stack, settings, 40) as scene:
        first, later = scene.ids[:20], scene.ids[20:]
        # Whatever the previous test left assigned stays assigned; fill up what is free.
        await scene.send([created(t, i) for i, t in enumerate(first)])
        await eventually(lambda: scene.placed(20), timeout=60)
        assert await scene.loads() == CAPACITY
        await scene.redis.flushall()

        async def rebuilt() -> bool:
            ready = await scene.redis.exists(PREFIX + "ready")
            return bool(ready) and await scene.loads() == CAPACITY

        await eventually(rebuilt, timeout=30)
        await scene.send([created(t, 100 + i) for i, t in enumerate(later)])
        await eventually(lambda: scene.placed(40), timeout=60)
        await asyncio.sleep(1)
        await scene.poll()
        assert await scene.loads() == CAPACITY
        late = {e.data.ticket_id for e in scene.assignments()} & set(later)
        assert late == set(), "a ticket got a slot that the flush had made look free"
