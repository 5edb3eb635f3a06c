"""The raw floors careloop is measured against, written with plain aiokafka and asyncpg and no
careloop code in between, on the same broker, PostgreSQL and SMTP sink as the bursts.

A relay of N hops: the bench's submitter produces to topic 1; a relay per middle hop consumes
batches of up to 500 records, optionally writes them with one `unnest` INSERT (committed),
produces each to the next topic with acks=all, waits for the acks and commits its offsets; the
bench consumes the last topic the same way (INSERT included).

By default every hop runs in the bench's one event loop, so the relay is held to one core
for its Python work; with `processes`, each middle hop is a process of its own, as each
careloop service is, and the relay can use both cores.
"""

import asyncio
import contextlib
import multiprocessing
import multiprocessing.process
import time
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from multiprocessing.synchronize import Event
from typing import Any

import aiosmtplib
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.report import flow
from bench.stack import BenchStack, cpu_seconds, cpu_since, wal_bytes_since, wal_lsn
from bench.submit import Submitter, submission
from shared.kafka import ensure_topics
from shared.settings import CommonSettings

BATCH = 500
ANCHORS = {  # name: (hops, one INSERT per hop)
    "relay_2hop": (2, False),
    "relay_2hop_insert": (2, True),
    "relay_3hop": (3, False),
    "relay_3hop_insert": (3, True),
}
INSERT = "INSERT INTO {table} (key, value) SELECT * FROM unnest($1::text[], $2::bytea[])"


async def relay(
    *,
    bootstrap: str,
    source: str,
    target: str | None,
    dsn: str | None,
    table: str,
    count: int,
    on_ready: Callable[[], None],
    on_batch: Callable[[list[Any]], None] = lambda records: None,
) -> None:
    """One hop: consume `source` until `count` records went through, writing each batch to
    `table` when there is a `dsn` and producing it to `target` when there is one."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"anchor-{source}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=256 * 1024
    )
    conn = await asyncpg.connect(dsn) if dsn else None
    await consumer.start()
    await producer.start()
    try:
        await consumer.topics()  # metadata, so the partitions are known
        consumer.assign(
            [TopicPartition(source, p) for p in consumer.partitions_for_topic(source) or ()]
        )
        on_ready()
        done = 0
        while done < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            if conn is not None:
                await conn.execute(
                    INSERT.format(table=table),
                    [r.key.decode() for r in records],
                    [r.value for r in records],
                )
            if target is not None:
                acks = [await producer.send(target, r.value, key=r.key) for r in records]
                await asyncio.gather(*acks)
            await consumer.commit()
            on_batch(records)
            done += len(records)
    finally:
        await consumer.stop()
        await producer.stop()
        if conn is not None:
            await conn.close()


def relay_process(ready: Event, **kwargs: Any) -> None:
    """A middle hop's process (started by multiprocessing)."""
    asyncio.run(relay(on_ready=ready.set, **kwargs))


def _stop(process: multiprocessing.process.BaseProcess) -> None:
    process.join(5)  # a relay ends by itself once its count went through
    if process.is_alive():
        process.terminate()
        process.join(5)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _start_relays(
    exits: contextlib.AsyncExitStack, hops: list[dict[str, Any]], *, processes: bool
) -> dict[str, int]:
    """Start the middle hops and wait until each reads its topic; the pids of those that are
    processes of their own, by name."""
    if not processes:
        for hop in hops:
            reading = asyncio.Event()
            exits.push_async_callback(
                _cancel, asyncio.create_task(relay(on_ready=reading.set, **hop))
            )
            await asyncio.wait_for(reading.wait(), 60)
        return {}
    spawn = multiprocessing.get_context("spawn")
    pids = {}
    for i, hop in enumerate(hops, start=1):
        ready = spawn.Event()
        process = spawn.Process(target=relay_process, args=(ready,), kwargs=hop)
        process.start()
        exits.callback(_stop, process)
        if not await asyncio.to_thread(ready.wait, 60):
            raise TimeoutError("a relay process did not start within 60 s")
        assert process.pid is not None
        pids[f"relay {i}"] = process.pid
    return pids


async def run_anchor(
    stack: BenchStack, name: str, *, messages: int, processes: bool, timeout: float
) -> dict[str, Any]:
    """One relay anchor: `messages` of the bench's submissions through it, timed end to end."""
    hops, insert = ANCHORS[name]
    tag = uuid.uuid4().hex[:8]
    names = [f"careloop.bench.{tag}.{i}" for i in range(1, hops + 1)]
    tables = [f"bench_{tag}_{i}" for i in range(1, hops + 1)]
    dsn = stack.dsn if insert else None
    await ensure_topics(CommonSettings(kafka_bootstrap=stack.bootstrap), names)
    async with contextlib.AsyncExitStack() as exits:
        admin = await asyncpg.connect(stack.dsn)
        exits.push_async_callback(admin.close)
        if insert:
            for table in tables:
                await admin.execute(f"CREATE TABLE {table} (key text PRIMARY KEY, value bytea)")
        middle = [
            {
                "bootstrap": stack.bootstrap,
                "source": names[i],
                "target": names[i + 1],
                "dsn": dsn,
                "table": tables[i],
                "count": messages,
            }
            for i in range(hops - 1)
        ]
        relay_pids = await _start_relays(exits, middle, processes=processes)

        sent: dict[bytes, float] = {}
        arrived: dict[bytes, float] = {}

        def land(records: list[Any]) -> None:
            now = time.perf_counter()
            for r in records:
                arrived[r.key] = now

        last_ready = asyncio.Event()
        last_hop = asyncio.create_task(
            relay(
                bootstrap=stack.bootstrap,
                source=names[-1],
                target=None,
                dsn=dsn,
                table=tables[-1],
                count=messages,
                on_ready=last_ready.set,
                on_batch=land,
            )
        )
        exits.push_async_callback(_cancel, last_hop)
        await asyncio.wait_for(last_ready.wait(), 60)
        submitter = Submitter(stack.bootstrap)
        await submitter.start(names[0])
        exits.push_async_callback(submitter.stop)
        subs = [submission(tag, i) for i in range(messages)]

        infra = stack.infra_pids()
        pids = {"kafka": infra["kafka"]} | ({"postgres": infra["postgres"]} if insert else {})
        pids |= relay_pids
        cpu_before, bench_before = cpu_seconds(pids), time.process_time()
        lsn = await wal_lsn(admin)
        start = time.perf_counter()
        acks: list[asyncio.Future[object]] = []
        for first in range(0, messages, BATCH):
            chunk = subs[first : first + BATCH]
            now = time.perf_counter()
            for s in chunk:
                sent[s.key] = now
            acks += await submitter.send(names[0], [(s.key, s.value) for s in chunk])
            await asyncio.sleep(0)
        await asyncio.gather(*acks)
        await asyncio.wait_for(asyncio.shield(last_hop), timeout)
        cpu = cpu_since(pids, cpu_before, per=messages)
        cpu["bench" if processes else "bench (all hops)"] = (
            (time.process_time() - bench_before) * 1000 / messages
        )
        result = flow(
            expected=messages,
            latencies=[t - sent[k] for k, t in arrived.items()],
            seconds=max(arrived.values()) - start,
        )
        result["processes"] = processes
        result["cpu_ms_per_message"] = cpu
        if insert:
            result["wal_bytes_per_message"] = await wal_bytes_since(admin, lsn) / messages
        return result


async def smtp_floor(port: int, messages: int, connections: int = 4) -> dict[str, Any]:
    """The e-mail floor: plain messages straight into the SMTP sink over `connections`
    connections (notify's default), no careloop in between."""

    async def one_connection(count: int) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        for i in range(count):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "bench@example.com", "l@example.com", f"{i}"
            msg.set_content("floor")
            await smtp.send_message(msg)
        await smtp.quit()

    per_connection = messages // connections
    start = time.perf_counter()
    await asyncio.gather(*(one_connection(per_connection) for _ in range(connections)))
    elapsed = time.perf_counter() - start
    sent = per_connection * connections
    return {
        "messages": sent,
        "connections": connections,
        "seconds": elapsed,
        "per_second": sent / elapsed,
    }
