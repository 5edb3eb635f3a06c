"""The faults, and one scenario run: stream submissions, inject the fault, wait for the loop to
settle, and count what was lost, duplicated or over capacity."""

import asyncio
import contextlib
import random
import secrets
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from chaos.domain import (
    Accepted,
    Outcome,
    Ticket,
    confirmations_per_ticket,
    fuzzed,
    nasty_submission,
    operations,
    poison_records,
    resent_confirmations,
    tally,
    to_json,
)
from chaos.target import Target
from chaos.workload import KafkaClient, Observed, resolve_loop, sample_load, stream
from shared import topics

Report = Callable[[str, int, int], None]  # phase, done, total


@dataclass
class Fault:
    """What a fault did, for the tally: when it ended and when the broker went down."""

    target: Target
    run: str
    seen: Observed
    end: float = 0.0
    broker_down_at: float | None = None
    notes: list[str] = field(default_factory=list)


FaultAction = Callable[[Fault], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    action: FaultAction
    memory_broker_loses: bool = False  # the scenario's losses before the fault are the broker's


def kill(service: str) -> FaultAction:
    async def action(f: Fault) -> None:
        process = f.target.services[service]
        await asyncio.to_thread(process.kill)
        process.start()
        await asyncio.to_thread(process.wait_healthy)
        f.end = time.time()

    return action


async def postgres_immediate_stop(f: Fault) -> None:
    """SIGQUIT to the postmaster is `pg_ctl stop -m immediate`: no checkpoint, crash recovery
    at the next start."""
    await asyncio.to_thread(f.target.signal_infra, "postgres", signal.SIGQUIT)
    await asyncio.sleep(3)
    await asyncio.to_thread(f.target.start_infra, "postgres")
    await f.target.wait_postgres()
    f.end = time.time()


async def redis_restart(f: Fault) -> None:
    """Redis runs without persistence, so a restart comes back empty."""
    await asyncio.to_thread(f.target.signal_infra, "redis", signal.SIGKILL)
    await asyncio.sleep(1)
    await asyncio.to_thread(f.target.start_infra, "redis")
    f.end = time.time()


async def redis_flush(f: Fault) -> None:
    redis = Redis.from_url(f.target.stack.redis_url)
    try:
        await redis.flushall()
    finally:
        await redis.aclose()
    f.end = time.time()


async def broker_restart(f: Fault) -> None:
    """SIGKILL the broker and start it again. The local broker keeps everything in memory, so
    it comes back without topics, offsets or records."""
    f.broker_down_at = time.time()
    await asyncio.to_thread(f.target.signal_infra, "kafka", signal.SIGKILL)
    await asyncio.sleep(2)
    await asyncio.to_thread(f.target.start_infra, "kafka")
    f.end = time.time()


async def poison(f: Fault) -> None:
    """Records no consumer can use on careloop.inbound.v1: a tombstone, bytes that are not
    JSON or not UTF-8, wrong shapes, NUL and a lone surrogate in text, and one over 1 MiB."""
    kafka = KafkaClient(f.target.stack.bootstrap)
    try:
        for p in poison_records(f.run):
            try:
                await kafka.send(topics.INBOUND, p.value, p.key)
            except (KafkaError, TimeoutError) as exc:
                f.notes.append(f"broker refused {p.name}: {type(exc).__name__}")
                await kafka.reset()
    finally:
        await kafka.close()
    f.end = time.time()


FUZZ_REQUESTS = 240
FUZZ_SUBMISSIONS = 30
FUZZ_SECONDS = 45.0  # the whole fuzz stops here, however far it got
FUZZ_INDEX_BASE = 100_000  # tracked hostile submissions, apart from the stream's indices


async def fuzz_http(f: Fault) -> None:
    """Hostile requests to every route of every service (from its /openapi.json), with and
    without a valid token; plus hostile web-form submissions, each of which, if answered 202,
    must become a ticket."""
    rng = random.Random(f.run)
    target, seen = f.target, f.seen
    tokens = [None, "Bearer not-a-token", *(f"Bearer {a.token}" for a in target.agents)]
    deadline = time.monotonic() + FUZZ_SECONDS
    hung: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=5) as client:
        routes = []
        for service, url in target.urls.items():
            with contextlib.suppress(httpx.HTTPError, ValueError):
                spec = (await client.get(f"{url}/openapi.json")).json()
                routes += [(service, url, op) for op in operations(spec)]
        for i in range(FUZZ_SUBMISSIONS):
            index = FUZZ_INDEX_BASE + i
            seen.sent += 1
            with contextlib.suppress(httpx.HTTPError):
                r = await client.post(
                    f"{target.urls['intake']}/v1/tickets",
                    content=to_json(nasty_submission(f.run, index, rng)),
                    headers={"content-type": "application/json"},
                )
                seen.answer(r.status_code, "intake POST /v1/tickets (hostile text)")
                if r.status_code == 202:
                    seen.accepted.append(Accepted(index, time.time(), "http"))
        for _ in range(FUZZ_REQUESTS if routes else 0):
            if time.monotonic() > deadline:
                f.notes.append(f"fuzz stopped after {FUZZ_SECONDS:.0f} s")
                break
            service, url, op = rng.choice(routes)
            path, content = fuzzed(op, rng)
            headers = {"content-type": op.content_type}
            if token := rng.choice(tokens):
                headers["authorization"] = token
            try:
                r = await client.request(op.method, url + path, content=content, headers=headers)
            except httpx.TimeoutException:
                hung[f"{service} {op.method} {op.path}"] += 1
            except (httpx.HTTPError, httpx.InvalidURL):
                pass
            else:
                seen.answer(r.status_code, f"{service} {op.method} {op.path}")
    f.notes += [f"{n}× no answer within 5 s from {where}" for where, n in hung.most_common()]
    f.end = time.time()


SERVICES = ("intake", "desk", "routing", "notify", "survey", "metrics")
SCENARIOS: dict[str, Scenario] = {
    **{
        f"kill-{s}": Scenario(f"kill-{s}", f"SIGKILL {s}, start it again", kill(s))
        for s in SERVICES
    },
    "postgres-stop": Scenario(
        "postgres-stop", "PostgreSQL immediate stop, 3 s down, start", postgres_immediate_stop
    ),
    "redis-restart": Scenario(
        "redis-restart", "Redis SIGKILL and start (comes back empty)", redis_restart
    ),
    "redis-flush": Scenario("redis-flush", "Redis FLUSHALL", redis_flush),
    "poison": Scenario("poison", "poison records on careloop.inbound.v1, one over 1 MiB", poison),
    "fuzz-http": Scenario(
        "fuzz-http", "hostile requests to every route of every service", fuzz_http
    ),
    "broker-restart": Scenario(
        "broker-restart",
        "broker SIGKILL and start (in memory: comes back empty)",
        broker_restart,
        memory_broker_loses=True,
    ),
}
FAST = ("poison", "fuzz-http")


async def dead_letters(bootstrap: str, topic: str, *, idle_seconds: float = 2.0) -> Counter[str]:
    """Dead letters on `topic` per original partition/offset, read until nothing more arrives."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    counts: Counter[str] = Counter()
    await consumer.start()
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_seconds:
            batches = await consumer.getmany(timeout_ms=300, max_records=5000)
            for records in batches.values():
                quiet_since = time.monotonic()
                for r in records:
                    h = {k: v.decode(errors="replace") for k, v in r.headers}
                    counts[
                        f"{h.get('careloop-original-partition')}/{h.get('careloop-original-offset')}"
                    ] += 1
    finally:
        await consumer.stop()
    return counts


async def run_scenario(
    target: Target,
    scenario: Scenario,
    *,
    tickets: int,
    rate: float = 30.0,
    settle_seconds: float = 60.0,
    grace_seconds: float = 12.0,
    report: Report = lambda phase, done, total: None,
) -> Outcome:
    """Stream `tickets` submissions with the fault in the middle, wait until every accepted one is
    a ticket, assigned and confirmed (at most `settle_seconds`, at least `grace_seconds` after the
    fault so that a late duplicate can show), then count."""
    run = f"{scenario.name}-{secrets.token_hex(3)}"
    seen = Observed()
    fault = Fault(target, run, seen)
    stop = asyncio.Event()
    helpers = [
        asyncio.create_task(resolve_loop(target, run=run, seen=seen, stop=stop)),
        asyncio.create_task(sample_load(target, seen=seen, stop=stop)),
    ]
    dlq_before = await _inbound_dead_letters(target) if scenario.action is poison else None

    async def inject() -> None:
        report("fault", seen.sent, tickets)
        await scenario.action(fault)
        fault.end = fault.end or time.time()

    try:
        await stream(
            target,
            run=run,
            count=tickets,
            rate=rate,
            seen=seen,
            fault=inject,
            on_sent=lambda n: report("streaming", n, tickets),
        )
        found = await _settle(target, run, seen, fault, settle_seconds, grace_seconds, report)
    finally:
        stop.set()
        await asyncio.gather(*helpers, return_exceptions=True)
    notes = [*fault.notes, *seen.notes]
    notes += [f"{n}× {where}" for where, n in seen.errors_at.most_common()]
    if dlq_before is not None:
        after = await _inbound_dead_letters(target)
        new = after - dlq_before
        notes.append(
            f"{sum(new.values())} dead letters on {topics.dlq(topics.INBOUND)} for "
            f"{len(poison_records(run))} poison records, most for one record: "
            f"{max(new.values(), default=0)}"
        )
    capacity = max(a.capacity for a in target.agents)
    notes.append(f"peak agent load {seen.peak_load} (capacity {capacity} at most)")
    notes += [f"{n} submissions not accepted: {why}" for why, n in seen.refused.most_common()]
    broker_down_at = fault.broker_down_at if scenario.memory_broker_loses else None
    if scenario.memory_broker_loses:
        notes.append("the local broker keeps records in memory: 'broker lost' died with it")
        if dropped := target.broker_data_lost_at(fault.end + 5):
            # the services' broker watch saw end offsets go back after the broker was up again:
            # it dropped records it had acknowledged, later than its restart
            broker_down_at = dropped[-1]
            notes.append(
                f"the broker dropped acknowledged records again {dropped[-1] - fault.end:+.1f} s "
                "after it came back (the services' watch saw its end offsets go back); "
                "what was accepted before that counts as its loss"
            )
    numbers = {t.number for t in found}  # the Maildir holds every scenario's mail so far
    mails = [m for m in target.mail_headers() if m[1] in numbers]
    return tally(
        scenario=scenario.name,
        sent=seen.sent,
        accepted=seen.accepted,
        tickets=found,
        confirmations=confirmations_per_ticket(mails),
        resent=resent_confirmations(mails),
        over_capacity=seen.over_capacity,
        server_errors=seen.server_errors,
        fault_end=fault.end,
        broker_down_at=broker_down_at,
        notes=notes,
    )


async def _inbound_dead_letters(target: Target) -> Counter[str]:
    try:
        return await dead_letters(target.stack.bootstrap, topics.dlq(topics.INBOUND))
    except KafkaError:
        return Counter()


async def _settle(
    target: Target,
    run: str,
    seen: Observed,
    fault: Fault,
    settle_seconds: float,
    grace_seconds: float,
    report: Report,
) -> list[Ticket]:
    """Poll until every accepted submission is a ticket, assigned and confirmed; return the
    tickets as last read."""
    deadline = time.monotonic() + settle_seconds
    found: list[Ticket] = []
    wanted = {a.index for a in seen.accepted}
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            found = await target.tickets(run)
        confirmed = confirmations_per_ticket(target.mail_headers())
        done = [t for t in found if t.assigned_at is not None and confirmed[t.number] > 0]
        report("settling", len(done), len(wanted))
        complete = {t.index for t in done} >= wanted and len(done) == len(found)
        if complete and time.time() >= fault.end + grace_seconds:
            break
        await asyncio.sleep(1)
    await asyncio.sleep(1)
    with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
        found = await target.tickets(run)
    return found
