"""A private, throwaway stack and service processes, for tests and the benchmark.

Everything runs on loopback on ports of its own, under a fresh folder in /tmp, so it never
touches a developer's `bin/careloop run` stack.
"""

import asyncio
import contextlib
import email
import email.policy
import mailbox
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import asyncpg
import httpx

from deploy.local.stack import Stack

ROOT = Path(__file__).resolve().parent.parent.parent
SERVICES = (
    "intake",
    "desk",
    "routing",
    "notify",
    "survey",
    "metrics",
    "knowledge",
    "incident",
)


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


async def wait_for_postgres(dsn: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await asyncpg.connect(dsn)
            await conn.close()
            return
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@dataclass
class RunningStack:
    stack: Stack
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Settings for service processes: a local run, each service with its own role, less
        metrics' scheduled reports (a fresh database makes three at once, seconds of CPU that
        tests, the benchmark and the fault suite do not measure; tests of reports call them),
        and less incident's opening of incidents by itself: the tests', the benchmark's and the
        fault suite's streams of alike tickets are spikes on an empty baseline, and an open
        incident holds its tickets off agents (tests of incidents open them)."""
        return {
            **self.stack.service_env(),
            "CARELOOP_REPORTS_SCHEDULE": "",
            "CARELOOP_INCIDENT_AUTO_OPEN": "false",
        }

    @property
    def dsn(self) -> str:
        """The admin's DSN (a superuser): for fixtures and for looking into any schema."""
        return self.stack.dsn()

    def service_dsn(self, service: str) -> str:
        """The DSN of `service`'s own role, which reaches only its own schema."""
        return self.stack.dsn(service)

    @property
    def bootstrap(self) -> str:
        return self.env["CARELOOP_KAFKA_BOOTSTRAP"]

    @property
    def redis_url(self) -> str:
        return self.env["CARELOOP_REDIS_URL"]

    def mails(self) -> list[Message]:
        """Every e-mail the SMTP sink received, headers decoded as a mail reader would."""
        box = mailbox.Maildir(str(self.stack.mail_dir), create=False)
        return [
            email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
            for key in box.iterkeys()
        ]

    def stop(self) -> None:
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


# A private stack's ports: its base (22000 for the integration tests, 23000 end-to-end, 24000
# the benchmark, 25000 the fault suite, 26000 the browser tests) plus these.
PORT_OFFSETS = {
    "kafka_port": 92,
    "pg_port": 432,
    "redis_port": 379,
    "smtp_port": 25,
    "mail_gateway_port": 525,
    "imap_port": 143,
    "providers_port": 90,
    "prometheus_port": 909,  # started only by the tests that need it (stack.observability)
    "alertmanager_port": 993,
}


@contextlib.contextmanager
def running_stack(base: int) -> Iterator[RunningStack]:
    """Start the infrastructure processes on ports `base` + PORT_OFFSETS; stop and remove
    them after."""
    var = Path(tempfile.mkdtemp(prefix="careloop-test-"))
    os.chmod(var, 0o755)  # PostgreSQL runs as its own user when we are root
    stack = Stack(var=var, **{name: base + offset for name, offset in PORT_OFFSETS.items()})
    stack.prepare()
    running = RunningStack(stack)
    try:
        for name, argv in stack.commands().items():
            with open(var / f"{name}.log", "wb") as log:  # the child keeps its own copy
                running.processes[name] = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT
                )
        for port in (
            stack.kafka_port,
            stack.redis_port,
            stack.smtp_port,
            stack.pg_port,
            stack.providers_port,
        ):
            wait_for_port(port)
        asyncio.run(wait_for_postgres(running.dsn))
        yield running
    finally:
        running.stop()
        shutil.rmtree(var, ignore_errors=True)


@dataclass
class ServiceProcess:
    """One careloop service as a real process, killable and restartable."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} not healthy after {timeout}s: see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no offset commits, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
