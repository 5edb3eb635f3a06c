"""What runs while a fault happens: a bounded stream of submissions over HTTP and Kafka, agents
resolving their tickets so capacity keeps turning over, and a sampler of live agent load."""

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chaos.domain import Accepted, excess_load, parse_marker, submission
from chaos.target import Target
from shared import topics

RETRY_FOR_SECONDS = 30.0  # how long a client keeps retrying one submission
SOURCE = "chaos"


@dataclass
class Observed:
    """What the clients of one scenario saw."""

    sent: int = 0
    accepted: list[Accepted] = field(default_factory=list)
    server_errors: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # why a submission was not accepted
    over_capacity: int = 0
    errors_at: Counter[str] = field(default_factory=Counter)  # "500 from <route>" -> how often
    peak_load: int = 0  # the most tickets any one agent held at once
    notes: list[str] = field(default_factory=list)

    def answer(self, status: int, where: str) -> None:
        if status >= 500 and status != 503:
            self.server_errors += 1
            self.errors_at[f"{status} from {where}"] += 1


class KafkaClient:
    """An aiokafka producer that is rebuilt when the broker went away under it."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    acks="all",
                    request_timeout_ms=5000,
                    max_request_size=4 * 1024 * 1024,
                )
                await asyncio.wait_for(producer.start(), timeout=10)
                self._producer = producer
            return self._producer

    async def reset(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=5)

    async def send(self, topic: str, value: bytes | None, key: bytes | None) -> None:
        producer = await self.producer()
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), timeout=10)

    async def close(self) -> None:
        await self.reset()


async def submit_http(
    client: httpx.AsyncClient, target: Target, run: str, index: int, seen: Observed
) -> None:
    """Post one web-form submission, without a key, retrying after a 503 or a lost connection
    as a browser's user would; a retry must still be one ticket."""
    body = submission(run, index)
    deadline = time.monotonic() + RETRY_FOR_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = await client.post(f"{target.urls['intake']}/v1/tickets", json=body)
        except httpx.HTTPError:
            await asyncio.sleep(0.5)
            continue
        seen.answer(r.status_code, "intake POST /v1/tickets")
        if r.status_code == 202:
            seen.accepted.append(Accepted(index, time.time(), "http"))
            return
        if r.status_code < 500 and r.status_code != 429:
            seen.refused[f"answered {r.status_code}"] += 1
            return
        last = f"still {r.status_code} after {RETRY_FOR_SECONDS:.0f} s"
        await asyncio.sleep(min(float(r.headers.get("retry-after", "0.5") or 0.5), 5))
    seen.refused[last] += 1


async def submit_kafka(kafka: KafkaClient, run: str, index: int, seen: Observed) -> None:
    """Publish one submission to careloop.inbound.v1 with acks=all, retrying with the same
    external_id (so a retry is one ticket) until the broker acknowledges."""
    body = submission(run, index, source=SOURCE)
    deadline = time.monotonic() + RETRY_FOR_SECONDS
    while time.monotonic() < deadline:
        try:
            await kafka.send(
                topics.INBOUND, json.dumps(body).encode(), body["external_id"].encode()
            )
        except (KafkaError, TimeoutError, OSError):
            await kafka.reset()
            await asyncio.sleep(0.5)
            continue
        seen.accepted.append(Accepted(index, time.time(), "kafka"))
        return
    seen.refused[f"no ack from the broker within {RETRY_FOR_SECONDS:.0f} s"] += 1


async def stream(
    target: Target,
    *,
    run: str,
    count: int,
    rate: float,
    seen: Observed,
    fault: Callable[[], Coroutine[Any, Any, None]],
    on_sent: Callable[[int], None],
) -> None:
    """Send `count` submissions at `rate` per second, alternating HTTP and Kafka; the fault
    starts once a third is out, and a fifth is kept back until the fault has ended, so that
    every scenario has submissions after it."""
    kafka = KafkaClient(target.stack.bootstrap)
    tail = max(count // 5, 2)
    tasks: list[asyncio.Task[None]] = []
    fault_task: asyncio.Task[None] | None = None
    try:
        async with httpx.AsyncClient(timeout=10) as client:

            def launch(i: int) -> None:
                if i % 2:
                    coro = submit_kafka(kafka, run, i, seen)
                else:
                    coro = submit_http(client, target, run, i, seen)
                tasks.append(asyncio.create_task(coro))
                seen.sent += 1
                on_sent(seen.sent)

            for i in range(count - tail):
                if i == count // 3:
                    fault_task = asyncio.create_task(fault())
                launch(i)
                await asyncio.sleep(1 / rate)
            if fault_task is None:
                fault_task = asyncio.create_task(fault())
            await fault_task
            for i in range(count - tail, count):
                launch(i)
                await asyncio.sleep(1 / rate)
            await asyncio.gather(*tasks)
    finally:
        for t in [*tasks, *([fault_task] if fault_task else [])]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await kafka.close()


async def resolve_loop(target: Target, *, run: str, seen: Observed, stop: asyncio.Event) -> None:
    """Every agent resolves their tickets of this run as they arrive, so that capacity frees up
    and queued tickets are drained while the fault happens."""
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            for agent in target.agents:
                headers = {"Authorization": f"Bearer {agent.token}"}
                try:
                    r = await client.get(
                        f"{target.urls['desk']}/v1/agent/tickets",
                        params={"limit": 500},
                        headers=headers,
                    )
                    seen.answer(r.status_code, "desk GET /v1/agent/tickets")
                    if r.status_code != 200:
                        continue
                    for t in r.json():
                        if parse_marker(t["subject"], run) is None:
                            continue
                        done = await client.post(
                            f"{target.urls['desk']}/v1/tickets/{t['ticket_id']}/resolve",
                            headers=headers,
                            json={"resolution": "Fixed during the chaos run"},
                        )
                        seen.answer(done.status_code, "desk POST /v1/tickets/{id}/resolve")
                except httpx.HTTPError:
                    pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.3)


async def sample_load(target: Target, *, seen: Observed, stop: asyncio.Event) -> None:
    """Compare each agent's live load in Redis with their capacity four times a second."""
    capacities = {a.agent_id: a.capacity for a in target.agents}
    redis = Redis.from_url(target.stack.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        while not stop.is_set():
            with contextlib.suppress(RedisError, OSError):
                loads = await target.loads(redis)
                excess = excess_load(loads, capacities)
                seen.peak_load = max(seen.peak_load, *loads.values())
                if excess > seen.over_capacity:
                    seen.over_capacity = excess
                    fullest = max(loads, key=lambda a: loads[a] - capacities[a])
                    seen.notes.append(
                        f"{fullest} at {loads[fullest]} of {capacities[fullest]} in Redis"
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.25)
    finally:
        await redis.aclose()
