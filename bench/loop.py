"""Tickets through careloop: a burst (everything at once) or a paced stream, timed from each
submission to ticket.created, to its assignment and to its confirmation e-mail, read off the
topics.

The watcher reads the type from the record's type header and the ticket from the Kafka key,
so most records are never parsed; only ticket.routed (is there an agent?) and
notification.sent (is it the confirmation?) are, with the standard library's json.
"""

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.progress import Progress, TaskID

from bench.report import STAGES, flow, percentiles
from bench.stack import BenchStack, cpu_seconds, cpu_since, wal_bytes_since, wal_lsn
from bench.submit import Submission, Submitter, submission
from shared import topics
from shared.kafka import type_of

CHUNK = 500


class Watcher:
    """Notes, for each submitted ticket, when it was first seen created, assigned and confirmed.

    "Assigned" is the first ticket.routed with an agent or ticket.assigned: routing announces a
    new ticket's placement with ticket.routed, and older code with ticket.assigned.
    """

    def __init__(
        self,
        bootstrap: str,
        submitted: dict[bytes, float],
        *,
        expected: int,
        stages: Sequence[str] = STAGES,
        fetch_max_wait_ms: int,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self._submitted = submitted
        self.expected = expected
        self.seen: dict[str, dict[bytes, float]] = {stage: {} for stage in stages}
        self.on_all_assigned: Callable[[], None] = lambda: None
        handlers = {
            "created": (topics.TICKETS, self._tickets),
            "assigned": (topics.ROUTING, self._routing),
            "confirmed": (topics.NOTIFY, self._notify),
        }
        self._handlers = dict(handlers[stage] for stage in stages)

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.topics()  # metadata, so the partitions are known
        self._consumer.assign(
            [
                TopicPartition(topic, p)
                for topic in self._handlers
                for p in self._consumer.partitions_for_topic(topic) or ()
            ]
        )

    async def stop(self) -> None:
        await self._consumer.stop()

    async def run(self) -> None:
        """Read until cancelled."""
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            now = time.perf_counter()
            for tp, records in batches.items():
                handle = self._handlers[tp.topic]
                for r in records:
                    handle(r, now)

    def counts(self) -> dict[str, int]:
        return {stage: len(seen) for stage, seen in self.seen.items()}

    def complete(self) -> bool:
        return all(len(seen) >= self.expected for seen in self.seen.values())

    def _mark(self, stage: str, ticket: bytes, now: float) -> None:
        seen = self.seen[stage]
        if ticket in self._submitted and ticket not in seen:
            seen[ticket] = now
            if stage == "assigned" and len(seen) == self.expected:
                self.on_all_assigned()

    def _tickets(self, record: Any, now: float) -> None:
        if type_of(record) == "ticket.created":
            self._mark("created", record.key, now)

    def _routing(self, record: Any, now: float) -> None:
        kind = type_of(record)
        if kind == "ticket.assigned" or (
            kind == "ticket.routed" and json.loads(record.value)["data"].get("agent_id")
        ):
            self._mark("assigned", record.key, now)

    def _notify(self, record: Any, now: float) -> None:
        if (
            type_of(record) == "notification.sent"
            and json.loads(record.value)["data"]["kind"] == "confirmation"
        ):
            self._mark("confirmed", record.key, now)


@dataclass
class Tracking:
    """What a burst and a paced run share: the watcher reading, the submitter, a connection
    for WAL positions, and the progress bars.

    `counters` are counts the load keeps itself (the e-mails the gateway accepted), shown as
    bars of their own."""

    submitted: dict[bytes, float]
    watcher: Watcher
    submitter: Submitter
    conn: asyncpg.Connection
    progress: Progress
    tasks: dict[str, TaskID]
    counters: dict[str, int]

    def submit_at(
        self, subs: Sequence[Submission], times: Sequence[float]
    ) -> list[tuple[bytes, bytes]]:
        """Note when each of `subs` was submitted; their records for the submitter."""
        for s, t in zip(subs, times, strict=True):
            self.submitted[s.ticket] = t
        return [(s.key, s.value) for s in subs]

    async def follow(self, *, stall_seconds: float) -> None:
        """Update the progress bars until every stage saw every ticket, or nothing moved for
        `stall_seconds` (what never arrived is then reported as missing)."""
        last, moved = None, time.monotonic()
        while True:
            counts = self.watcher.counts() | self.counters | {"submitted": len(self.submitted)}
            for name, task in self.tasks.items():
                self.progress.update(task, completed=counts[name])
            if self.watcher.complete():
                return
            if counts != last:
                last, moved = counts, time.monotonic()
            elif time.monotonic() - moved > stall_seconds:
                self.progress.console.print(
                    f"[yellow]nothing moved for {stall_seconds:.0f} s: {counts}[/]"
                )
                return
            await asyncio.sleep(0.25)

    def flows(self, start: float) -> dict[str, dict[str, Any]]:
        """Each stage's rate from `start` and its latencies from each submission."""
        return {
            stage: flow(
                expected=self.watcher.expected,
                latencies=[t - self.submitted[k] for k, t in seen.items()],
                seconds=(max(seen.values()) - start) if seen else 0.0,
            )
            for stage, seen in self.watcher.seen.items()
        }


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def tracking(
    stack: BenchStack,
    *,
    expected: int,
    stages: Sequence[str] = STAGES,
    counters: Sequence[str] = (),
    fetch_max_wait_ms: int,
    label: str,
    progress: Progress,
) -> AsyncIterator[Tracking]:
    """Open the watcher (reading from here on), the submitter and a connection; close all
    of them after, however the run ends.

    The local broker answers a fetch only when `fetch_max_wait_ms` ran out, data or not, so
    that is the watcher's resolution, paid for in the broker's CPU by its polling."""
    submitted: dict[bytes, float] = {}
    async with contextlib.AsyncExitStack() as exits:
        watcher = Watcher(
            stack.bootstrap,
            submitted,
            expected=expected,
            stages=stages,
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        await watcher.start()
        exits.push_async_callback(watcher.stop)
        submitter = Submitter(stack.bootstrap)
        await submitter.start(topics.INBOUND)
        exits.push_async_callback(submitter.stop)
        conn = await asyncpg.connect(stack.dsn)
        exits.push_async_callback(conn.close)
        exits.push_async_callback(_cancel, asyncio.create_task(watcher.run()))
        tasks = {
            name: progress.add_task(f"{label} {name}", total=expected)
            for name in ("submitted", *counters, *stages)
        }
        yield Tracking(
            submitted, watcher, submitter, conn, progress, tasks, dict.fromkeys(counters, 0)
        )


# A burst's load: submits every ticket (noting when, in `Tracking.submitted`) and returns
# figures of its own, `submit_seconds` among them.
Load = Callable[[Tracking], Awaitable[dict[str, Any]]]


async def measure(
    stack: BenchStack,
    *,
    n: int,
    load: Load,
    label: str,
    progress: Progress,
    stall_seconds: float,
    counters: Sequence[str] = (),
) -> dict[str, Any]:
    """n tickets put in by `load`, then followed to their confirmation: rates, latencies, and
    CPU and WAL read when the last ticket is assigned and again at the end."""
    pids = stack.pids()
    # Bursts last seconds: 50 ms resolution, a quarter of the polling of the paced run's.
    async with tracking(
        stack,
        expected=n,
        counters=counters,
        fetch_max_wait_ms=50,
        label=label,
        progress=progress,
    ) as t:
        at_assigned: dict[str, Any] = {}

        def all_assigned() -> None:
            at_assigned["cpu"] = cpu_since(pids, cpu_before, per=n)
            at_assigned["wal"] = asyncio.create_task(wal_bytes_since(t.conn, lsn))

        t.watcher.on_all_assigned = all_assigned
        cpu_before, bench_before = cpu_seconds(pids), time.process_time()
        lsn = await wal_lsn(t.conn)
        following = asyncio.create_task(t.follow(stall_seconds=stall_seconds))
        start = time.perf_counter()
        own = await load(t)
        await following
        whole_cpu = cpu_since(pids, cpu_before, per=n)
        bench_cpu = time.process_time() - bench_before
        elapsed = time.perf_counter() - start
        # One query at a time on a connection: the one taken at the last assignment first.
        wal_to_assigned = await at_assigned["wal"] if "wal" in at_assigned else None
        whole_wal = await wal_bytes_since(t.conn, lsn)
        return {
            "tickets": n,
            "fresh_stack": True,
            **own,
            "stages": own.get("stages", {}) | t.flows(start),
            "cpu_ms_per_ticket": {"to_assigned": at_assigned.get("cpu"), "whole": whole_cpu},
            "wal_bytes_per_ticket": {
                "to_assigned": None if wal_to_assigned is None else wal_to_assigned / n,
                "whole": whole_wal / n,
            },
            "bench_cpu_ms_per_ticket": bench_cpu * 1000 / n,
            "bench_cpu_cores": bench_cpu / elapsed,
        }


async def burst(
    stack: BenchStack, *, n: int, progress: Progress, stall_seconds: float
) -> dict[str, Any]:
    """n tickets published to careloop.inbound.v1 as fast as the submitter goes, then
    followed to their confirmation."""
    run = uuid.uuid4().hex[:8]
    subs = [submission(run, i) for i in range(n)]

    async def publish(t: Tracking) -> dict[str, Any]:
        start = time.perf_counter()
        acks: list[asyncio.Future[object]] = []
        for first in range(0, n, CHUNK):
            chunk = subs[first : first + CHUNK]
            records = t.submit_at(chunk, [time.perf_counter()] * len(chunk))
            acks += await t.submitter.send(topics.INBOUND, records)
            await asyncio.sleep(0)  # let the watcher read while the burst goes out
        await asyncio.gather(*acks)
        return {"submit_seconds": time.perf_counter() - start}

    return await measure(
        stack,
        n=n,
        load=publish,
        label=f"burst {n:,}",
        progress=progress,
        stall_seconds=stall_seconds,
    )


async def paced(
    stack: BenchStack,
    *,
    rate: float,
    duration: float,
    progress: Progress,
    stall_seconds: float,
) -> dict[str, Any]:
    """`rate` tickets a second for `duration` seconds, each timed from when it was due to
    ticket.created and to its assignment; the run ends when the last one is assigned.

    Timing from the schedule rather than from the send means a submitter that fell behind
    counts against careloop, not in its favour."""
    n = int(rate * duration)
    run = uuid.uuid4().hex[:8]
    subs = [submission(run, i) for i in range(n)]
    pids = stack.pids()
    stages = ("created", "assigned")  # e-mail has its figures in the bursts
    async with tracking(
        stack,
        expected=n,
        stages=stages,
        fetch_max_wait_ms=20,  # the target is in tens of milliseconds
        label=f"{rate:,.0f}/s",
        progress=progress,
    ) as t:
        cpu_before, lsn = cpu_seconds(pids), await wal_lsn(t.conn)
        following = asyncio.create_task(t.follow(stall_seconds=stall_seconds))
        start = time.perf_counter()
        sent, lags = 0, []
        acks: list[asyncio.Future[object]] = []
        while sent < n:
            now = time.perf_counter()
            due = min(n, int((now - start) * rate) + 1)
            if due > sent:
                lags.append(now - (start + sent / rate))
                records = t.submit_at(subs[sent:due], [start + i / rate for i in range(sent, due)])
                acks += await t.submitter.send(topics.INBOUND, records)
                sent = due
            await asyncio.sleep(max(0.001, start + sent / rate - time.perf_counter()))
        submit_seconds = time.perf_counter() - start
        await asyncio.gather(*acks)
        await following
        cpu = cpu_since(pids, cpu_before, per=n)
        wal = await wal_bytes_since(t.conn, lsn)
        return {
            "rate": rate,
            "duration": duration,
            "tickets": n,
            "fresh_stack": True,
            "achieved_rate": n / submit_seconds,
            "lag": percentiles(lags),
            "stages": t.flows(start),
            "cpu_ms_per_ticket": cpu,
            "wal_bytes_per_ticket": wal / n,
        }
