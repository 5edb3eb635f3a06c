"""The idempotent consumer: de-duplication, commit after effect, dead letters and their replay.

Poison (a record over the producer's limit, a tombstone, an event that fails for good) is
dead-lettered once and never holds up the rest of its batch, on any partition.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

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

    async def start(behaviour: Behaviour, idempotent: frozenset[str] = frozenset()) -> str:
        async def apply(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
            behaviour.calls += 1
            for e in events:
                if e.data.team.startswith("poison") and behaviour.poison:
                    raise PermanentError("poison pill")
                if e.data.team == "flaky" and behaviour.flaky_left:
                    behaviour.flaky_left -= 1
                    raise TransientError("database blinked")
            if idempotent:  # keyed by the event's own identity: twice is once
                await conn.execute(
                    "INSERT INTO effects (event_id, label) SELECT e, l FROM unnest($1::uuid[], "
                    "$2::text[]) AS u(e, l) WHERE NOT EXISTS "
                    "(SELECT 1 FROM effects WHERE event_id = u.e)",
                    [e.event_id for e in events],
                    [e.data.team[:50] for e in events],
                )
                return
            await conn.executemany(
                "INSERT INTO effects (event_id, label) VALUES ($1, $2)",
                [(e.event_id, e.data.team[:50]) for e in events],
            )

        broker = make_broker(settings, client_id="test-inbox")
        consumer = EventConsumer(
            name="test",
            handlers={TicketQueued.TYPE: apply},
            pool=lambda: pool,
            broker=broker,
            idempotent=idempotent,
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


async def test_a_type_idempotent_by_its_key_is_applied_once_without_an_inbox_row(
    settings: CommonSettings, pool: asyncpg.Pool, consuming: Callable[..., Any]
) -> None:
    topic = await consuming(Behaviour(), frozenset({TicketQueued.TYPE}))
    first, second = queued("first"), queued("second")
    broker = make_broker(settings, client_id="test-publisher")
    await broker.start()
    try:
        await publish_confirmed(broker, [wire(topic, first), wire(topic, second)])
        await publish_confirmed(broker, [wire(topic, first)])  # a relay re-sending it later
        await eventually(lambda: _labels_are(pool, ["first", "second"]))
        await asyncio.sleep(1)
    finally:
        await broker.stop()
    assert await effects(pool) == ["first", "second"]
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 0


async def test_a_poison_event_is_dead_lettered_without_blocking_the_rest(
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


@pytest.fixture
async def foreign_producer(settings: CommonSettings) -> AsyncIterator[AIOKafkaProducer]:
    """Another team's client: it may send what careloop's own producer would refuse."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", max_request_size=8 * MiB
    )
    await producer.start()
    yield producer
    await producer.stop()


MiB = 1024 * 1024
QUIET_MS = 600  # the dead-letter tools' wait for more records (2 s from the command line)


async def dlq_records(settings: CommonSettings, topic: str) -> list[Any]:
    """Every record on `topic`'s dead-letter topic, copies included."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        return await dlq.read_all(consumer, topics.dlq(topic), quiet_ms=QUIET_MS)
    finally:
        await consumer.stop()


async def _dead_lettered(settings: CommonSettings, topic: str, count: int) -> list[Any]:
    found = await dlq_records(settings, topic)
    return found if len(found) >= count else []


async def send_poisoned_batches(producer: AIOKafkaProducer, topic: str) -> dict[str, Any]:
    """Valid events on every partition, one event of 1.5 MB that fails for good on partition 2
    and a tombstone on partition 1, each followed by more valid events; returns where each went."""
    sent: dict[str, Any] = {}
    for partition in range(4):
        label = f"p{partition}-before"
        sent[label] = await producer.send(topic, queued(label).to_json(), partition=partition)
    big = queued("poison" + "x" * (3 * MiB // 2)).to_json()
    sent["big"] = await producer.send(topic, big, key=b"big", partition=2)
    sent["tombstone"] = await producer.send(topic, None, key=b"gone", partition=1)
    for partition in range(4):
        label = f"p{partition}-after"
        sent[label] = await producer.send(topic, queued(label).to_json(), partition=partition)
    return {name: await future for name, future in sent.items()}


VALID_LABELS = sorted(f"p{p}-{when}" for p in range(4) for when in ("before", "after"))


async def test_an_oversized_event_and_a_tombstone_are_dead_lettered_once_and_stall_nothing(
    settings: CommonSettings,
    pool: asyncpg.Pool,
    consuming: Callable[[Behaviour], Any],
    foreign_producer: AIOKafkaProducer,
) -> None:
    topic = await consuming(Behaviour())
    await send_poisoned_batches(foreign_producer, topic)

    await eventually(lambda: _labels_are(pool, VALID_LABELS), timeout=60)
    await eventually(lambda: _dead_lettered(settings, topic, 2), timeout=30)
    await asyncio.sleep(3)  # a consumer stuck on its batch would dead-letter them again here

    letters = await dlq_records(settings, topic)
    assert sorted(r.key for r in letters) == [b"big", b"gone"]


async def test_an_event_too_large_to_dead_letter_whole_goes_truncated_with_its_origin(
    settings: CommonSettings,
    pool: asyncpg.Pool,
    consuming: Callable[[Behaviour], Any],
    foreign_producer: AIOKafkaProducer,
) -> None:
    topic = await consuming(Behaviour())
    sent = await send_poisoned_batches(foreign_producer, topic)

    [letter] = [
        r
        for r in await eventually(lambda: _dead_lettered(settings, topic, 2), timeout=60)
        if r.key == b"big"
    ]
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["careloop-truncated"] == "true"
    assert int(headers["careloop-original-size"]) > 3 * MiB // 2
    assert headers["careloop-original-topic"] == topic
    assert headers["careloop-original-partition"] == "2"
    assert headers["careloop-original-offset"] == str(sent["big"].offset)
    assert "poison pill" in headers["careloop-error"]
    assert 0 < len(letter.value) <= 256 * 1024


async def test_replay_republishes_what_now_applies_and_skips_what_still_fails(
    settings: CommonSettings, pool: asyncpg.Pool, consuming: Callable[[Behaviour], Any]
) -> None:
    behaviour = Behaviour()
    topic = await consuming(behaviour)
    broker = make_broker(settings, client_id="test-publisher")
    await broker.start()
    try:
        poison, undecodable = wire(topic, queued("poison")), OutgoingMessage(topic, "k", b"{", {})
        await publish_confirmed(broker, [wire(topic, queued("ok")), poison, undecodable])
        await eventually(lambda: _dead_lettered(settings, topic, 2))
    finally:
        await broker.stop()
    behaviour.poison = False

    report = await dlq.replay(settings, topic, quiet_ms=QUIET_MS)

    assert [r.headers["careloop-error"] for r in report.replayed] == [
        "PermanentError('poison pill')"
    ]
    [(skipped, reason)] = report.skipped
    assert skipped.value == b"{" and reason.startswith("still invalid")
    await eventually(lambda: _labels_are(pool, ["ok", "poison"]))


async def test_replay_skips_truncated_dead_letters_and_tombstones(
    settings: CommonSettings,
    pool: asyncpg.Pool,
    consuming: Callable[[Behaviour], Any],
    foreign_producer: AIOKafkaProducer,
) -> None:
    behaviour = Behaviour()
    topic = await consuming(behaviour)
    await send_poisoned_batches(foreign_producer, topic)
    await eventually(lambda: _dead_lettered(settings, topic, 2), timeout=60)
    behaviour.poison = False

    report = await dlq.replay(settings, topic, quiet_ms=QUIET_MS)

    assert report.replayed == []
    assert sorted(reason.split(":")[0] for _, reason in report.skipped) == [
        "no value (a tombstone or an empty record)",
        "truncated",
    ]


async def test_a_second_replay_replays_nothing_again(
    settings: CommonSettings, pool: asyncpg.Pool, consuming: Callable[[Behaviour], Any]
) -> None:
    behaviour = Behaviour()
    topic = await consuming(behaviour)
    broker = make_broker(settings, client_id="test-publisher")
    await broker.start()
    try:
        await publish_confirmed(broker, [wire(topic, queued("poison"))])
        await eventually(lambda: _dead_lettered(settings, topic, 1))
    finally:
        await broker.stop()
    behaviour.poison = False
    assert len((await dlq.replay(settings, topic, quiet_ms=QUIET_MS)).replayed) == 1
    await eventually(lambda: _labels_are(pool, ["poison"]))

    again = await dlq.replay(settings, topic, quiet_ms=QUIET_MS)

    assert (again.replayed, again.skipped) == ([], [])


async def test_a_message_that_keeps_failing_is_replayed_at_most_max_replays_times(
    settings: CommonSettings, pool: asyncpg.Pool, consuming: Callable[[Behaviour], Any]
) -> None:
    topic = await consuming(Behaviour())  # poison for good
    broker = make_broker(settings, client_id="test-publisher")
    await broker.start()
    try:
        await publish_confirmed(broker, [wire(topic, queued("poison"))])
        await eventually(lambda: _dead_lettered(settings, topic, 1))
        for replays in (1, 2):
            assert (
                len((await dlq.replay(settings, topic, max_replays=2, quiet_ms=QUIET_MS)).replayed)
                == 1
            )
            await eventually(lambda n=replays: _dead_lettered(settings, topic, n + 1))
        refused = await dlq.replay(settings, topic, max_replays=2, quiet_ms=QUIET_MS)
    finally:
        await broker.stop()

    assert refused.replayed == []
    assert [reason for _, reason in refused.skipped] == ["replayed 2 times already (limit 2)"]
    await asyncio.sleep(2)
    counts = sorted(
        {k: v.decode() for k, v in r.headers}.get("careloop-replays", "0")
        for r in await dlq_records(settings, topic)
    )
    assert counts == ["0", "1", "2"]


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
