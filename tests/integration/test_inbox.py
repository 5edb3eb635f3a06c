"""The idempotent consumer: de-duplication, commit after effect, dead letters and their replay."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from shared import dlq, topics
from shared.errors import PermanentError, TransientError
from shared.events import Envelope, Priority, TicketQueued, new_event, now
from shared.inbox import EventConsumer, forget_before, subscribe
from shared.kafka import OutgoingMessage, ensure_topics, make_broker, outgoing, publish_confirmed
from shared.settings import CommonSettings
from tests.support import eventually


def queued(label: str) -> Envelope[Any]:
    ticket = uuid.uuid4()
    return new_event(
        TicketQueued(ticket_id=ticket, team=label, priority=Priority.LOW, queued_at=now()),
        producer="test",
    )


def wire(topic: str, event: Envelope[Any]) -> OutgoingMessage:
    return outgoing(event, topic=topic)


class Behaviour:
    """What the handler under test does with each label: succeed, fail for good, fail once."""

    def __init__(self) -> None:
        self.poison = True
        self.flaky_left = 1
        self.calls = 0


@pytest.fixture
async def consuming(
    settings: CommonSettings, pool: asyncpg.Pool
) -> AsyncIterator[Callable[[Behaviour], Any]]:
    topic = f"careloop.test.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic, topics.dlq(topic)])
    brokers = []

    async def start(behaviour: Behaviour) -> str:
        async def apply(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
            behaviour.calls += 1
            for e in events:
                if e.data.team == "poison" and behaviour.poison:
                    raise PermanentError("poison pill")
                if e.data.team == "flaky" and behaviour.flaky_left:
                    behaviour.flaky_left -= 1
                    raise TransientError("database blinked")
            await conn.executemany(
                "INSERT INTO effects (event_id, label) VALUES ($1, $2)",
                [(e.event_id, e.data.team) for e in events],
            )

        broker = make_broker(settings, client_id="test-inbox")
        consumer = EventConsumer(
            name="test", handlers={TicketQueued.TYPE: apply}, pool=lambda: pool, broker=broker
        )
        subscribe(broker, consumer, topic_names=[topic], group_id=f"g-{topic}", settings=settings)
        await broker.start()
        brokers.append(broker)
        return topic

    yield start
    for b in brokers:
        await b.stop()


async def effects(pool: asyncpg.Pool) -> list[str]:
    return sorted(r["label"] for r in await pool.fetch("SELECT label FROM effects"))


async def dead_letters(bootstrap: str, topic: str, expected: int) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(
        topics.dlq(topic), bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict[str, str]] = []
    try:

        async def collect() -> bool:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend({k: v.decode() for k, v in r.headers} for r in records)
            return len(found) >= expected

        await eventually(collect, timeout=30, interval=0)
    finally:
        await consumer.stop()
    return found


async def test_a_redelivered_event_takes_effect_once(
    settings: CommonSettings, pool: asyncpg.Pool, consuming: Callable[[Behaviour], Any]
) -> None:
    topic = await consuming(Behaviour())
    first, second = queued("first"), queued("second")
    broker = make_broker(settings, client_id="test-publisher")
    await broker.start()
    try:
        await publish_confirmed(broker, [wire(topic, first), wire(topic, second)])
        await publish_confirmed(broker, [wire(topic, first)])  # Kafka redelivery, webhook retry
        await eventually(lambda: _labels_are(pool, ["first", "second"]))
        await asyncio.sleep(1)
    finally:
        await broker.stop()
    assert await effects(pool) == ["first", "second"]


async def _labels_are(pool: asyncpg.Pool, labels: list[str]) -> bool:
    return await effects(pool) == labels


async def test_a_poison_event_is_dead_lettered_without_blocking_the_rest_and_replays(
    settings: CommonSettings,
    stack: Any,
    pool: asyncpg.Pool,
    consuming: Callable[[Behaviour], Any],
) -> None:
    behaviour = Behaviour()
    topic = await consuming(behaviour)
    broker = make_broker(settings, client_id="test-publisher")
    await broker.start()
    try:
        batch = [
            wire(topic, queued("before")),
            wire(topic, queued("poison")),
            wire(topic, queued("after")),
        ]
        batch.append(OutgoingMessage(topic, "k", b"{not an envelope", {}))
        await publish_confirmed(broker, batch)
        await eventually(lambda: _labels_are(pool, ["after", "before"]))
        letters = await dead_letters(stack.bootstrap, topic, expected=2)
    finally:
        await broker.stop()

    errors = sorted(h["careloop-error"] for h in letters)
    assert "poison pill" in errors[1] or "poison pill" in errors[0]
    assert any(e.startswith("invalid event") for e in errors)
    assert all(h["careloop-original-topic"] == topic for h in letters)

    behaviour.poison = False
    assert await dlq.replay(settings, topic) == 2
    await eventually(lambda: _labels_are(pool, ["after", "before", "poison"]))
    assert await dlq.replay(settings, topic) == 1  # only the undecodable one came back again
    await asyncio.sleep(1)
    assert await effects(pool) == ["after", "before", "poison"]


async def test_a_transient_failure_is_redelivered_and_applied_once(
    settings: CommonSettings, pool: asyncpg.Pool, consuming: Callable[[Behaviour], Any]
) -> None:
    behaviour = Behaviour()
    topic = await consuming(behaviour)
    broker = make_broker(settings, client_id="test-publisher")
    await broker.start()
    try:
        await publish_confirmed(broker, [wire(topic, queued("flaky"))])
        await eventually(lambda: _labels_are(pool, ["flaky"]), timeout=30)
    finally:
        await broker.stop()
    assert behaviour.flaky_left == 0 and behaviour.calls >= 2
    await asyncio.sleep(1)
    assert await effects(pool) == ["flaky"]


async def test_the_inbox_forgets_event_ids_past_their_retention_only(pool: asyncpg.Pool) -> None:
    old, recent = uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        "INSERT INTO inbox (event_id, handled_at) VALUES ($1, now() - interval '8 days'), ($2, now())",
        old,
        recent,
    )
    async with pool.acquire() as conn:
        assert await forget_before(conn, hours=24 * 7) == 1
    assert [r["event_id"] for r in await pool.fetch("SELECT event_id FROM inbox")] == [recent]
