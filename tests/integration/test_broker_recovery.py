"""The broker may come and go: services notice, recreate topics, rejoin and lose nothing more."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from deploy.local.harness import wait_for_port
from deploy.local.stack import Stack
from tests.support import RunningStack, ServiceProcess, eventually, port

KAFKA_PORT = port(22292)
PORTS = {"intake": port(22181), "desk": port(22182)}


def _start_broker(stack: RunningStack) -> subprocess.Popen[bytes]:
    argv = Stack(var=stack.stack.var, kafka_port=KAFKA_PORT).commands()["kafka"]
    broker = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(KAFKA_PORT)
    return broker


@pytest.fixture
def broker(stack: RunningStack) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The broker of this test alone, in a list so the test can replace it."""
    brokers = [_start_broker(stack)]
    yield brokers
    brokers[-1].kill()
    brokers[-1].wait(10)


@pytest.fixture
def services(
    stack: RunningStack, broker: list[subprocess.Popen[bytes]], tmp_path: Path
) -> Iterator[dict[str, ServiceProcess]]:
    env = {
        **stack.env,
        "CARELOOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{KAFKA_PORT}",
        "CARELOOP_KAFKA_WATCH_SECONDS": "0.5",
        "CARELOOP_INTAKE_PUBLISH_TIMEOUT_SECONDS": "2",
        "CARELOOP_INTAKE_RATE_PER_ADDRESS": "0",  # this one client posts 80 within a minute
        **{f"CARELOOP_{name.upper()}_HTTP_PORT": str(p) for name, p in PORTS.items()},
    }
    running = {
        name: ServiceProcess(name, p, env, tmp_path / f"{name}.log") for name, p in PORTS.items()
    }
    for s in running.values():
        s.start()
    try:
        for s in running.values():
            s.wait_healthy()
        yield running
    finally:
        for s in running.values():
            s.stop()


def _submit(n: int, tag: str) -> set[str]:
    accepted = set()
    for i in range(n):
        answer = httpx.post(
            f"http://127.0.0.1:{PORTS['intake']}/v1/tickets",
            json={
                "name": "Li Lei",
                "email": f"{tag}-{i}@example.com",
                "subject": "Video will not play",
                "description": "Lesson 3 stays black",
                "external_id": f"{tag}-{i}",
            },
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        accepted.add(answer.json()["ticket_id"])
    return accepted


def _health(service: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{PORTS[service]}/healthz", timeout=10)


@pytest.mark.faults
async def test_after_a_broker_restart_that_lost_everything_services_rejoin_and_new_tickets_flow(
    stack: RunningStack, broker: list[subprocess.Popen[bytes]], services: dict[str, ServiceProcess]
) -> None:
    conn = await asyncpg.connect(stack.dsn)

    async def stored(ids: set[str]) -> bool:
        rows = await conn.fetch(
            "SELECT ticket_id::text FROM desk.tickets WHERE ticket_id = ANY($1::uuid[])",
            list(ids),
        )
        return len(rows) == len(ids)

    try:
        before = _submit(60, f"before-{time.time_ns()}")
        await eventually(lambda: stored(before))

        broker[-1].kill()
        broker[-1].wait(10)
        await eventually(lambda: _async(_health("desk").status_code == 503), timeout=15)
        broker.append(_start_broker(stack))  # the local broker comes back empty

        await eventually(lambda: _async(_health("desk").status_code == 200), timeout=90)
        health = _health("desk").json()["checks"]
        assert health["kafka_topics"] and health["kafka_consumers"]
        after = _submit(20, f"after-{time.time_ns()}")
        await eventually(lambda: stored(after), timeout=60)
    finally:
        await conn.close()


async def _async(value: bool) -> bool:
    return value
