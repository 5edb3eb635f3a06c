"""desk while its database goes away and comes back: every route answers 503 with
Retry-After meanwhile (never 500), and works again without a restart."""

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local.harness import wait_for_port
from deploy.local.stack import Stack
from services.desk.app import create_app
from services.desk.settings import DeskSettings
from tests.integration.inprocess import ANA, environment, served, service_env
from tests.support import RunningStack, eventually, port

PG_PORT = port(22555)
ROUTES = (
    ("GET", "/v1/agent/me", ANA, None),
    ("GET", "/v1/agent/tickets", ANA, None),
    ("GET", "/v1/tickets/0190a3b2-7c1d-7e2f-8a3b-1234567890ab", ANA, None),
    ("POST", "/v1/tickets/0190a3b2-7c1d-7e2f-8a3b-1234567890ab/replies", ANA, {"body": "hi"}),
    ("POST", "/v1/confirmations/" + "a" * 32, {}, {"answer": "solved"}),
    ("GET", "/confirm/" + "a" * 32, {}, None),
)


class OwnPostgres:
    """A PostgreSQL of this test's own, so that stopping it disturbs no other test."""

    def __init__(self) -> None:
        self.var = Path(tempfile.mkdtemp(prefix="careloop-pg-away-"))
        os.chmod(self.var, 0o755)  # PostgreSQL runs as its own user when we are root
        self.stack = Stack(var=self.var, pg_port=PG_PORT)
        self.stack.prepare()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", PG_PORT), 1):
            raise RuntimeError(f"port {PG_PORT} is taken: another run's server would answer")
        argv = self.stack.commands()["postgres"]
        with open(self.var / "pg.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(PG_PORT)

    def stop(self) -> None:
        """A fast shutdown: sessions are terminated, as in a restart or failover."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.var, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    pg.start()
    yield pg
    pg.remove()


@pytest.fixture(scope="module")
async def desk(stack: RunningStack, postgres: OwnPostgres) -> AsyncIterator[httpx.AsyncClient]:
    env = {**service_env(stack), "CARELOOP_DESK_PG_DSN": postgres.stack.dsn("desk")}
    with environment(env):
        async with served(lambda: create_app(DeskSettings()), "desk") as client:
            yield client


async def answers(desk: httpx.AsyncClient) -> list[httpx.Response]:
    return [
        await desk.request(method, path, headers=headers, json=body)
        for method, path, headers, body in ROUTES
    ]


async def test_with_the_database_away_every_route_answers_503_and_then_recovers(
    desk: httpx.AsyncClient, postgres: OwnPostgres
) -> None:
    assert (await desk.get("/v1/agent/me", headers=ANA)).status_code == 200

    await asyncio.to_thread(postgres.stop)
    away = await answers(desk)
    await asyncio.to_thread(postgres.start)

    assert [r.status_code for r in away] == [503] * len(ROUTES), [r.text for r in away]
    assert all(r.headers["Retry-After"] for r in away)

    async def back() -> bool:
        return (await desk.get("/v1/agent/me", headers=ANA)).status_code == 200

    assert await eventually(back, timeout=30)


async def test_requests_in_flight_while_the_database_stops_get_503_never_500(
    desk: httpx.AsyncClient, postgres: OwnPostgres
) -> None:
    """Under load, pooled connections die mid-use or idle: each must still be a 503."""
    seen: collections.Counter[int] = collections.Counter()
    done = asyncio.Event()

    async def worker() -> None:
        while not done.is_set():
            seen.update(r.status_code for r in await answers(desk))

    workers = [asyncio.create_task(worker()) for _ in range(6)]
    await asyncio.sleep(0.5)
    await asyncio.to_thread(postgres.stop)
    await asyncio.sleep(1)
    await asyncio.to_thread(postgres.start)
    await asyncio.sleep(1)
    done.set()
    await asyncio.gather(*workers)

    assert set(seen) <= {200, 404, 503}, seen
    assert seen[503] > 0 and seen[200] > 0, seen
