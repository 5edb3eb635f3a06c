"""A fresh private stack with the six services for one phase of the benchmark, and the CPU
time its processes spent, read from /proc."""

import contextlib
import os
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from deploy.local.harness import SERVICES, RunningStack, ServiceProcess, running_stack

AGENTS = Path(__file__).with_name("agents.yaml")


def port(number: int) -> int:
    """A bench port, shifted by CARELOOP_TEST_PORT_SHIFT so that a bench can run beside other
    stacks (tests, chaos, another bench)."""
    return number + int(os.environ.get("CARELOOP_TEST_PORT_SHIFT", "0"))


SERVICE_PORTS = {name: port(24081 + i) for i, name in enumerate(SERVICES)}


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User plus system CPU seconds of each named process: its own, its children's that have
    ended (the kernel adds them to the parent once reaped) and its children's still running
    (PostgreSQL's backends). One pass over /proc for all of them."""
    tick = os.sysconf("SC_CLK_TCK")
    own: dict[int, float] = {}
    children: dict[int, float] = defaultdict(float)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        # After the name: state, parent, ..., utime (11), stime, cutime, cstime (14).
        spent = sum(int(f) for f in fields[11:15]) / tick
        own[int(stat.parent.name)] = spent
        children[int(fields[1])] += spent
    return {name: own.get(pid, 0.0) + children[pid] for name, pid in pids.items()}


def cpu_since(pids: dict[str, int], before: dict[str, float], *, per: int = 1) -> dict[str, float]:
    """CPU milliseconds of each process since `before`, divided by `per`."""
    now = cpu_seconds(pids)
    return {name: (now[name] - before[name]) * 1000 / per for name in pids}


@dataclass
class BenchStack:
    """The infrastructure and the six services, as the benchmark sees them."""

    stack: RunningStack
    services: list[ServiceProcess]

    @property
    def bootstrap(self) -> str:
        return self.stack.bootstrap

    @property
    def dsn(self) -> str:
        return self.stack.dsn

    @property
    def smtp_port(self) -> int:
        return self.stack.stack.smtp_port

    @property
    def mail_gateway_port(self) -> int:
        """intake's inbound SMTP gateway."""
        return self.stack.stack.mail_gateway_port

    def infra_pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.stack.processes.items()}

    def pids(self) -> dict[str, int]:
        """Every process of the stack, services and infrastructure, by name."""
        running = {s.name: s.proc.pid for s in self.services if s.proc is not None}
        return running | self.infra_pids()

    def stop_services(self) -> None:
        for s in self.services:
            s.stop()
        self.services = []


@contextlib.contextmanager
def bench_stack(
    logs: Path, *, phase: str, settings: Mapping[str, str] | None = None
) -> Iterator[BenchStack]:
    """A fresh stack with all six services healthy; everything stopped and removed after.

    Each phase gets its own, so a burst never starts behind what an earlier one left in the
    broker, the tables or the WAL. Service logs go to `logs/<phase>/`; `settings` are extra
    CARELOOP_ variables for the services."""
    folder = logs / phase
    folder.mkdir(parents=True, exist_ok=True)
    with running_stack(port(24000)) as stack:
        env = {
            **stack.env,
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            "CARELOOP_LOG_LEVEL": "WARNING",
            **{f"CARELOOP_{n.upper()}_HTTP_PORT": str(p) for n, p in SERVICE_PORTS.items()},
            **(settings or {}),
        }
        services = [
            ServiceProcess(name, SERVICE_PORTS[name], env, folder / f"{name}.log")
            for name in SERVICES
        ]
        bench = BenchStack(stack, services)
        try:
            for s in services:
                s.start()
            for s in services:
                s.wait_healthy()
            yield bench
        finally:
            bench.stop_services()


async def wal_lsn(conn: asyncpg.Connection) -> str:
    """PostgreSQL's current write-ahead log position."""
    lsn: str = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
    return lsn


async def wal_bytes_since(conn: asyncpg.Connection, lsn: str) -> int:
    """Bytes of write-ahead log written since `lsn`."""
    written: int = await conn.fetchval(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint", lsn
    )
    return written
