"""The transactional outbox and its relay against real PostgreSQL and a real Kafka-API broker."""

import asyncio
import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from shared import outbox, topics
from shared.events import Envelope, Priority, TicketQueued, decode, new_event, now
from shared.kafka import ensure_topics, make_broker
from shared.outbox import OutboxRelay
from shared.settings import CommonSettings
from tests.support import RunningStack, eventually


def queued(ticket: uuid.UUID, seq: int) -> Envelope[Any]:
    return new_event(
        TicketQueued(ticket_id=ticket, team=f"seq-{seq}", priority=Priority.LOW, queued_at=now()),
        producer="test",
    )


async def read_topic(bootstrap: str, topic: str, wanted: set[uuid.UUID]) -> list[Envelope[Any]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    seen: list[Envelope[Any]] = []
    try:

        async def collect() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                seen.extend(e for r in records if (e := decode(r.value)).event_id in wanted)
            return {e.event_id for e in seen} >= wanted

        await eventually(collect, timeout=30, interval=0)
        await asyncio.sleep(1)  # anything published after the wanted ones would show now
        await collect()
    finally:
        await consumer.stop()
    return seen


async def test_relay_publishes_committed_events_in_key_order_and_deletes_them(
    stack: RunningStack, settings: CommonSettings, pool: asyncpg.Pool, schema: str
) -> None:
    await ensure_topics(settings)
    tickets = [uuid.uuid4() for _ in range(5)]
    committed = [queued(tickets[i % 5], i) for i in range(50)]
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, committed)
    rolled_back = [queued(tickets[0], 99)]
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await outbox.add(conn, rolled_back)
        await tx.rollback()

    broker = make_broker(settings, client_id="test-relay")
    await broker.start()
    relay = asyncio.create_task(OutboxRelay(broker=broker, dsn=stack.dsn, schema=schema).run())
    try:
        wanted = {e.event_id for e in committed} | {e.event_id for e in rolled_back}
        seen = await read_topic(stack.bootstrap, topics.ROUTING, {e.event_id for e in committed})
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await broker.stop()

    assert {e.event_id for e in seen} & wanted == {e.event_id for e in committed}
    for ticket in tickets:
        sequence = [
            int(e.data.team.removeprefix("seq-")) for e in seen if e.data.ticket_id == ticket
        ]
        assert sequence == sorted(sequence) and len(sequence) == 10
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0


async def test_only_one_relay_per_schema_leads(
    stack: RunningStack, settings: CommonSettings, pool: asyncpg.Pool, schema: str
) -> None:
    broker = make_broker(settings, client_id="test-relay-2")
    await broker.start()
    first = OutboxRelay(broker=broker, dsn=stack.dsn, schema=schema)
    second = OutboxRelay(broker=broker, dsn=stack.dsn, schema=schema)
    tasks = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    try:
        await asyncio.sleep(1)
        holders = await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objid::int = hashtext($1)",
            f"outbox:{schema}",
        )
        waiters = await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND objid::int = hashtext($1)",
            f"outbox:{schema}",
        )
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.stop()
    assert (holders, waiters) == (1, 1)
