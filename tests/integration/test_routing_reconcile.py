"""routing's reconciliation against real Redis and PostgreSQL: drift is corrected both ways and
counted, and a release never frees a slot that a reopening in its batch inherited."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from services.routing.load import PREFIX
from shared.events import (
    EscalationReason,
    ReopenReason,
    TicketEscalated,
    TicketReopened,
    new_event,
    now,
)
from shared.kafka import ensure_topics, make_broker, outgoing, publish_confirmed
from shared.settings import CommonSettings
from tests import support
from tests.integration.test_routing_capacity import AGENTS, created, resolved
from tests.support import RunningStack, ServiceProcess, eventually

RECONCILE_SECONDS = 0.5


@pytest.fixture(scope="module")
def router(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = support.port(22085)
    process = ServiceProcess(
        "routing",
        port,
        {
            **stack.env,
            **support.fresh_groups(),
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            "CARELOOP_ROUTING_HTTP_PORT": str(port),
            "CARELOOP_ROUTING_RECONCILE_INTERVAL_SECONDS": str(RECONCILE_SECONDS),
        },
        tmp_path_factory.mktemp("routing-reconcile") / "routing.log",
    )
    process.start()
    try:
        process.wait_healthy()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture
async def redis(stack: RunningStack) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack.redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def samples(router: str, family_name: str) -> list[Any]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{router}/metrics")).text
    return [
        s
        for family in text_string_to_metric_families(text)
        if family.name == family_name
        for s in family.samples
    ]


async def corrections(router: str) -> dict[str, float]:
    found = await samples(router, "careloop_routing_capacity_corrections")
    return {s.labels["direction"]: s.value for s in found if s.name.endswith("_total")}


async def agents_over_capacity(router: str) -> float:
    (gauge,) = await samples(router, "careloop_routing_agents_over_capacity")
    return float(gauge.value)


async def send(settings: CommonSettings, events: list[Any]) -> None:
    await ensure_topics(settings)
    broker = make_broker(settings, client_id="test-routing-reconcile")
    await broker.start()
    try:
        await publish_confirmed(broker, [outgoing(e) for e in events])
    finally:
        await broker.stop()


async def active_agent(stack: RunningStack, ticket_id: uuid.UUID) -> str | None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        agent: str | None = await conn.fetchval(
            "SELECT agent_id FROM routing.assignments WHERE ticket_id = $1 AND released_at IS NULL",
            ticket_id,
        )
        return agent
    finally:
        await conn.close()


async def assigned(stack: RunningStack, settings: CommonSettings) -> tuple[uuid.UUID, str]:
    """A fresh ticket, assigned by routing and committed."""
    ticket_id = uuid.uuid4()
    await send(settings, [created(ticket_id, 7000)])
    agent = await eventually(lambda: active_agent(stack, ticket_id), timeout=30)
    return ticket_id, agent


async def free_every_slot(stack: RunningStack, settings: CommonSettings) -> None:
    """Resolve what earlier tests left assigned, and what their queues then hand out, until
    no ticket is assigned or waiting."""

    async def settled() -> bool:
        conn = await asyncpg.connect(stack.dsn)
        try:
            rows = await conn.fetch(
                "SELECT ticket_id FROM routing.assignments WHERE released_at IS NULL"
            )
            waiting = await conn.fetchval("SELECT count(*) FROM routing.queue")
        finally:
            await conn.close()
        if rows:
            await send(settings, [resolved(r["ticket_id"]) for r in rows])
        return not rows and waiting == 0

    await eventually(settled, timeout=120, interval=0.5)


async def test_a_slot_redis_holds_without_an_assignment_is_freed_and_counted(
    router: str, redis: Redis
) -> None:
    before = await corrections(router)
    phantom = str(uuid.uuid4())
    await redis.sadd(f"{PREFIX}load:ana", phantom)
    await redis.hset(f"{PREFIX}ticket", phantom, "ana")
    await redis.hset(f"{PREFIX}claim", phantom, 1)

    async def freed() -> bool:
        return not await redis.sismember(f"{PREFIX}load:ana", phantom)

    await eventually(freed, timeout=10)
    assert (await corrections(router))["freed"] == before["freed"] + 1
    assert await redis.hget(f"{PREFIX}ticket", phantom) is None


async def test_a_committed_assignment_redis_lost_is_restored_and_counted(
    stack: RunningStack, settings: CommonSettings, router: str, redis: Redis
) -> None:
    await free_every_slot(stack, settings)
    ticket_id, agent = await assigned(stack, settings)
    before = await corrections(router)
    await redis.srem(f"{PREFIX}load:{agent}", str(ticket_id))
    await redis.hdel(f"{PREFIX}ticket", str(ticket_id))

    async def restored() -> bool:
        return bool(await redis.sismember(f"{PREFIX}load:{agent}", str(ticket_id)))

    await eventually(restored, timeout=10)
    assert (await corrections(router))["restored"] == before["restored"] + 1
    assert await redis.hget(f"{PREFIX}ticket", str(ticket_id)) == agent


async def test_a_ticket_resolved_and_reopened_together_keeps_its_slot_in_redis(
    stack: RunningStack, settings: CommonSettings, router: str, redis: Redis
) -> None:
    await free_every_slot(stack, settings)
    ticket_id, agent = await assigned(stack, settings)
    first = await active_agent(stack, ticket_id)
    before = await corrections(router)
    reopened = new_event(
        TicketReopened(
            ticket_id=ticket_id,
            number="CL-007000",
            reason=ReopenReason.NOT_SOLVED,
            previous_agent_id=agent,
            needs_supervisor=False,
            reopened_at=now(),
        ),
        producer="test",
    )
    await send(settings, [resolved(ticket_id), reopened])

    async def reassigned() -> bool:
        conn = await asyncpg.connect(stack.dsn)
        try:
            n = await conn.fetchval(
                "SELECT count(*) FROM routing.assignments WHERE ticket_id = $1", ticket_id
            )
        finally:
            await conn.close()
        return bool(n == 2)

    await eventually(reassigned, timeout=30)
    assert first == agent == await active_agent(stack, ticket_id)
    assert await redis.sismember(f"{PREFIX}load:{agent}", str(ticket_id))
    await asyncio.sleep(RECONCILE_SECONDS * 3)  # a lost slot would have been restored by now
    assert await corrections(router) == before, "the slot was freed under a live assignment"


async def test_an_agent_holding_more_than_capacity_in_postgres_is_reported_over_capacity(
    stack: RunningStack, router: str
) -> None:
    # Only a lowered capacity can do this; three rows for Sue (capacity 2) stand in for it.
    fake = [uuid.uuid4() for _ in range(3)]
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(
            "INSERT INTO routing.assignments (ticket_id, agent_id) "
            "SELECT unnest($1::uuid[]), 'sue'",
            fake,
        )
        try:
            await eventually(lambda: _at_least_one(agents_over_capacity(router)), timeout=10)
        finally:
            await conn.execute(
                "UPDATE routing.assignments SET released_at = now() WHERE ticket_id = ANY($1)",
                fake,
            )
        await eventually(lambda: _none(agents_over_capacity(router)), timeout=10)
    finally:
        await conn.close()


async def _at_least_one(count: Awaitable[float]) -> bool:
    return await count >= 1


async def _none(count: Awaitable[float]) -> bool:
    return await count == 0


async def test_an_escalated_ticket_moves_from_its_agent_to_a_supervisor_slot_and_all(
    stack: RunningStack, settings: CommonSettings, router: str, redis: Redis
) -> None:
    await free_every_slot(stack, settings)
    ticket_id, agent = await assigned(stack, settings)
    assert agent != "sue", "with every slot free the first ordinary agent takes it"
    before = await corrections(router)
    escalated = new_event(
        TicketEscalated(
            ticket_id=ticket_id,
            number="CL-007000",
            reason=EscalationReason.LOW_SCORE,
            assignee_id=agent,
            escalated_at=now(),
        ),
        producer="test",
    )
    await send(settings, [escalated])

    async def held_by_sue() -> bool:
        return await active_agent(stack, ticket_id) == "sue"

    await eventually(held_by_sue, timeout=30)
    assert await redis.sismember(f"{PREFIX}load:sue", str(ticket_id))
    assert not await redis.sismember(f"{PREFIX}load:{agent}", str(ticket_id))
    assert await corrections(router) == before
