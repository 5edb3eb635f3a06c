"""The running stack a scenario acts on: infrastructure processes, services, agents, and what
can be read back from it (tickets in Postgres, e-mails in the Maildir, live load in Redis)."""

import asyncio
import contextlib
import json
import signal
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from pathlib import Path

import asyncpg
import yaml
from redis.asyncio import Redis

from chaos.domain import Ticket, parse_marker
from deploy.local.harness import RunningStack, ServiceProcess, wait_for_port, wait_for_postgres

LOAD_PREFIX = "careloop:{routing}:load:"


@dataclass(frozen=True, slots=True)
class Agent:
    agent_id: str
    capacity: int
    token: str


def read_agents(path: Path) -> list[Agent]:
    """Agents, capacities and demo tokens from an agents file (deploy/local/agents.yaml shape)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["agents"]
    return [Agent(a["id"], int(a.get("capacity", 5)), a["token"]) for a in raw]


@dataclass
class Target:
    """A stack with the six services on it, whoever started it (the chaos command or a test)."""

    stack: RunningStack
    services: dict[str, ServiceProcess]
    urls: dict[str, str]
    agents: list[Agent]
    _mail_headers: dict[str, tuple[str | None, str | None, str | None]] = field(
        default_factory=dict
    )

    # --- reading back -------------------------------------------------------------------------

    def broker_data_lost_at(self, since: float) -> list[float]:
        """When, after `since`, any service's broker watch saw the broker's end offsets go back
        (it logs "kafka came back without its data"): the broker dropping records it had
        acknowledged."""
        seen = []
        for service in self.services.values():
            with contextlib.suppress(FileNotFoundError):
                for line in service.log_path.read_text(errors="replace").splitlines():
                    if "kafka came back without its data" not in line:
                        continue
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        at = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
                        if at > since:
                            seen.append(at)
        return sorted(seen)

    async def tickets(self, run: str) -> list[Ticket]:
        """Every ticket desk stored for `run`, with its first assignment from routing."""
        conn = await asyncpg.connect(self.stack.dsn, timeout=5)
        try:
            rows = await conn.fetch(
                """
                SELECT t.ticket_id::text AS ticket_id, t.number, t.subject,
                       extract(epoch FROM t.created_at)::float8 AS created_at,
                       extract(epoch FROM min(a.assigned_at))::float8 AS assigned_at
                FROM desk.tickets t
                LEFT JOIN routing.assignments a ON a.ticket_id = t.ticket_id
                WHERE t.subject LIKE $1
                GROUP BY t.ticket_id, t.number, t.subject
                """,
                f"%[chaos {run}:%",
            )
        finally:
            await conn.close()
        found = []
        for r in rows:
            index = parse_marker(r["subject"], run)
            if index is not None:
                found.append(
                    Ticket(r["ticket_id"], r["number"], index, r["assigned_at"], r["created_at"])
                )
        return found

    def mail_headers(self) -> list[tuple[str | None, str | None, str | None]]:
        """(X-Careloop-Kind, X-Careloop-Ticket, Message-ID) of every e-mail the SMTP sink kept; each file is
        read once, since a delivered message never changes."""
        parser = BytesHeaderParser()
        for folder in ("new", "cur"):
            for path in (self.stack.stack.mail_dir / folder).iterdir():
                if path.name in self._mail_headers:
                    continue
                with contextlib.suppress(FileNotFoundError), path.open("rb") as f:
                    head = parser.parse(f)
                    self._mail_headers[path.name] = (
                        head["X-Careloop-Kind"],
                        head["X-Careloop-Ticket"],
                        head["Message-ID"],
                    )
        return list(self._mail_headers.values())

    async def loads(self, redis: Redis) -> dict[str, int]:
        """Each agent's live load as routing holds it in Redis."""
        async with redis.pipeline(transaction=False) as pipe:
            for a in self.agents:
                pipe.scard(LOAD_PREFIX + a.agent_id)
            counts = await pipe.execute()
        return {a.agent_id: int(n) for a, n in zip(self.agents, counts, strict=True)}

    # --- faults on infrastructure ---------------------------------------------------------------

    def signal_infra(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to one infrastructure process (kafka, postgres, redis, smtp) and reap it."""
        proc = self.stack.processes[name]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def start_infra(self, name: str) -> None:
        """Start one infrastructure process again with the argv it had, appending to its log."""
        argv = self.stack.stack.commands()[name]
        with open(self.stack.stack.var / f"{name}.log", "ab") as log:
            self.stack.processes[name] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT
            )
        port = {
            "kafka": self.stack.stack.kafka_port,
            "postgres": self.stack.stack.pg_port,
            "redis": self.stack.stack.redis_port,
            "smtp": self.stack.stack.smtp_port,
        }[name]
        wait_for_port(port, timeout=60)

    async def wait_postgres(self) -> None:
        await wait_for_postgres(self.stack.dsn, timeout=60)

    async def wait_healthy(self, timeout: float = 90) -> list[str]:
        """Wait until every service answers /healthz 200; returns those that did not in time."""
        return [
            name
            for name, ok in zip(
                self.services,
                await asyncio.gather(
                    *(asyncio.to_thread(_healthy, s, timeout) for s in self.services.values())
                ),
                strict=True,
            )
            if not ok
        ]


def _healthy(service: ServiceProcess, timeout: float) -> bool:
    try:
        service.wait_healthy(timeout)
    except (TimeoutError, RuntimeError):
        return False
    return True
