"""routing places a ticket once per ticket id, without an inbox row for ticket.created: the same
event delivered twice, another event for the same ticket, or a stale re-send after the ticket was
resolved, all leave one ticket.routed, one assignment and one slot."""

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from services.routing.load import PREFIX
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from tests import support
from tests.integration.test_routing_capacity import AGENTS, CAPACITY, Scene, created, resolved
from tests.integration.test_routing_reconcile import free_every_slot
from tests.support import RunningStack, ServiceProcess, eventually


@pytest.fixture(scope="module")
def router(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    port = support.port(22087)
    process = ServiceProcess(
        "routing",
        port,
        {
            **stack.env,
            **support.fresh_groups(),
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            "CARELOOP_ROUTING_HTTP_PORT": str(port),
        },
        tmp_path_factory.mktemp("routing-idempotent") / "routing.log",
    )
    process.start()
    try:
        process.wait_healthy()
        yield
    finally:
        process.stop()


async def fetch(stack: RunningStack, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def handled(stack: RunningStack, event_id: uuid.UUID) -> bool:
    """routing applied `event_id` (a type it claims in its inbox)."""
    return bool(await fetch(stack, "SELECT 1 FROM routing.inbox WHERE event_id = $1", event_id))


async def holders(redis: Redis, ticket_id: uuid.UUID) -> list[str]:
    """Agents whose Redis load counts the ticket."""
    return [a for a in CAPACITY if await redis.sismember(f"{PREFIX}load:{a}", str(ticket_id))]


async def test_a_ticket_created_twice_and_re_sent_after_its_release_is_routed_once(
    stack: RunningStack, settings: CommonSettings, router: None
) -> None:
    await ensure_topics(settings)
    await free_every_slot(stack, settings)
    async with Scene(stack, settings, 1) as scene:
        [ticket] = scene.ids
        event = created(ticket, 9100)
        await scene.send([event])
        await eventually(lambda: scene.placed(1, assigned=1), timeout=30)
        [routed] = scene.assignments()
        agent = routed.data.agent_id

        # The same event again, and another ticket.created for the same ticket; a resolution
        # behind them on the ticket's partition tells when routing read past them.
        again = created(ticket, 9100)
        done = resolved(ticket)
        await scene.send([event, again])
        assert await holders(scene.redis, ticket) == [agent]
        await scene.send([done])
        await eventually(lambda: handled(stack, done.event_id), timeout=30)

        # A stale re-send after the release must not place the ticket a second time.
        marker = resolved(ticket)
        await scene.send([event, marker])
        await eventually(lambda: handled(stack, marker.event_id), timeout=30)
        await asyncio.sleep(2)  # the outbox relay would publish a second placement by now
        await scene.poll()

        assert [e.type for e in scene.events.values()] == ["ticket.routed"]
        rows = await fetch(
            stack,
            "SELECT agent_id, released_at FROM routing.assignments WHERE ticket_id = $1",
            ticket,
        )
        assert [(r["agent_id"], r["released_at"] is not None) for r in rows] == [(agent, True)]
        assert await holders(scene.redis, ticket) == []
