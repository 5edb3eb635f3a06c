"""metrics' own handlers fed through the real broker, in metrics' real schema, for the tests of
metrics: a topic and a consumer name of the test's own, so its plumbing counters say when it
has read everything the test published."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from services.metrics.handlers import EVENT_HANDLERS, IDEMPOTENT
from shared.db import create_pool
from shared.events import Envelope
from shared.inbox import EventConsumer, Handler, subscribe
from shared.kafka import ensure_topics, make_broker, outgoing, publish_confirmed
from shared.migrate import migrate
from shared.settings import CommonSettings
from tests.support import RunningStack, eventually

Publish = Callable[[list[Envelope[Any]]], Awaitable[None]]


@contextlib.asynccontextmanager
async def metrics_database(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    """A pool on metrics' schema, migrated."""
    dsn = stack.service_dsn("metrics")
    await asyncio.to_thread(migrate, dsn, "metrics")
    pool = await create_pool(dsn, schema="metrics")
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def metrics_feed(
    settings: CommonSettings,
    pool: asyncpg.Pool,
    *,
    handlers: Mapping[str, Handler] = EVENT_HANDLERS,
    timeout: float = 30,
) -> AsyncIterator[Publish]:
    """`publish(events)`: sends them to `handlers` (metrics' own by default) and returns once
    the consumer has applied them or skipped them as repeats, within `timeout` seconds."""
    topic = f"careloop.test.metrics.{uuid.uuid4().hex[:8]}"
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic])
    consumer_broker = make_broker(settings, client_id="test-metrics")
    consumer = EventConsumer(
        name=name,
        handlers=dict(handlers),
        pool=lambda: pool,
        broker=consumer_broker,
        idempotent=IDEMPOTENT,
    )
    subscribe(consumer_broker, consumer, topic_names=[topic], group_id=name, settings=settings)
    publisher = make_broker(settings, client_id="test-publisher")
    sent = 0

    def read() -> float:
        applied = sum(
            REGISTRY.get_sample_value("careloop_events_applied_total", {"service": name, "type": t})
            or 0
            for t in handlers
        )
        skipped = (
            REGISTRY.get_sample_value("careloop_events_redelivered_total", {"service": name}) or 0
        )
        return applied + skipped

    async def publish(events: list[Envelope[Any]]) -> None:
        nonlocal sent
        await publish_confirmed(publisher, [outgoing(e, topic=topic) for e in events])
        sent += len(events)

        async def all_read() -> bool:
            return read() >= sent

        await eventually(all_read, timeout=timeout)

    try:
        await consumer_broker.start()
        await publisher.start()
        yield publish
    finally:
        await publisher.stop()
        await consumer_broker.stop()
