"""`python -m bench [-n 2000]`: throughput and latency from submission to created, assigned and
confirmation sent, next to the raw broker round trip measured in the same run.

It starts its own stack and the six services on ports 24xxx (shifted by
CARELOOP_TEST_PORT_SHIFT), so nothing else is disturbed and every run starts from empty. Figures are wall-clock on whatever else the machine is doing: compare
the ratios within one run, not absolute numbers across runs.
"""

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy.local.harness import SERVICES, ServiceProcess, running_stack
from services.intake.domain import ticket_id_for
from shared import topics
from shared.events import Channel, decode
from shared.kafka import ensure_topics
from shared.settings import CommonSettings

AGENTS = Path(__file__).with_name("agents.yaml")


def port(number: int) -> int:
    """A bench port, shifted by CARELOOP_TEST_PORT_SHIFT so that a bench can run beside other
    stacks (tests, chaos, another bench)."""
    return number + int(os.environ.get("CARELOOP_TEST_PORT_SHIFT", "0"))


PORTS = {name: port(24081 + i) for i, name in enumerate(SERVICES)}
SUBJECTS = (
    ("The video player freezes", "Playback stops in the browser after a minute"),
    ("申请退款", "课程重复扣费，请退款"),
    ("Change my class time", "I need to reschedule my lessons to the evening"),
    ("账号异常登录", "有陌生设备登录我的账号，密码被改了"),
)


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50_ms": qs[49] * 1000,
        "p95_ms": qs[94] * 1000,
        "p99_ms": qs[98] * 1000,
        "max_ms": max(samples) * 1000,
    }


async def consume_until(
    bootstrap: str, topic: str, stop: Callable[[], bool], on_record: Callable[[Any, float], None]
) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        while not stop():
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                now = time.perf_counter()
                for r in records:
                    on_record(r, now)
    finally:
        await consumer.stop()


async def broker_round_trip(bootstrap: str, n: int) -> dict[str, Any]:
    """The floor: produce n messages with acks=all and consume them back, no careloop in between."""
    topic = f"careloop.bench.raw.{uuid.uuid4().hex[:6]}"
    await ensure_topics(CommonSettings(kafka_bootstrap=bootstrap), [topic])
    sent: dict[bytes, float] = {}
    latencies: list[float] = []

    def record(r: Any, now: float) -> None:
        latencies.append(now - sent[r.key])

    done = lambda: len(latencies) >= n  # noqa: E731
    reader = asyncio.create_task(consume_until(bootstrap, topic, done, record))
    await asyncio.sleep(1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    start = time.perf_counter()
    futures = []
    for i in range(n):
        key = f"{i}".encode()
        sent[key] = time.perf_counter()
        futures.append(await producer.send(topic, b"x" * 400, key=key))
    await asyncio.gather(*futures)
    await reader
    elapsed = time.perf_counter() - start
    await producer.stop()
    return {"messages": n, "seconds": elapsed, "per_second": n / elapsed, **percentiles(latencies)}


async def smtp_floor(port: int, n: int, connections: int = 4) -> dict[str, Any]:
    """The e-mail floor: n plain messages straight into the SMTP sink over `connections`
    connections (notify's default), no careloop in between."""

    async def one_connection(count: int) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        for i in range(count):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = (
                "bench@example.com",
                "l@example.com",
                f"floor {i}",
            )
            msg.set_content("floor")
            await smtp.send_message(msg)
        await smtp.quit()

    start = time.perf_counter()
    await asyncio.gather(*(one_connection(n // connections) for _ in range(connections)))
    elapsed = time.perf_counter() - start
    sent = n // connections * connections
    return {"messages": sent, "seconds": elapsed, "per_second": sent / elapsed}


async def ticket_loop(bootstrap: str, n: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    submitted: dict[uuid.UUID, float] = {}
    stages: dict[str, dict[uuid.UUID, float]] = {
        "created": {},
        "assigned": {},
        "confirmation_sent": {},
    }

    def on_event(
        stage: str, event_type: str, kind: str | None = None
    ) -> Callable[[Any, float], None]:
        def record(r: Any, now: float) -> None:
            e = decode(r.value)
            if e.type != event_type or (kind and e.data.kind != kind):
                return
            if e.data.ticket_id in submitted:
                stages[stage].setdefault(e.data.ticket_id, now)

        return record

    done = lambda: all(len(s) >= n for s in stages.values())  # noqa: E731
    readers = [
        asyncio.create_task(
            consume_until(bootstrap, topics.TICKETS, done, on_event("created", "ticket.created"))
        ),
        asyncio.create_task(
            consume_until(bootstrap, topics.ROUTING, done, on_event("assigned", "ticket.assigned"))
        ),
        asyncio.create_task(
            consume_until(
                bootstrap,
                topics.NOTIFY,
                done,
                on_event("confirmation_sent", "notification.sent", "confirmation"),
            )
        ),
    ]
    await asyncio.sleep(1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    start = time.perf_counter()
    futures = []
    for i in range(n):
        external_id = f"bench-{run}-{i}"
        subject, description = SUBJECTS[i % len(SUBJECTS)]
        message = {
            "source": "bench",
            "external_id": external_id,
            "name": f"Learner {i}",
            "email": f"learner{i}@example.com",
            "subject": subject,
            "description": description,
        }
        ticket_id = ticket_id_for(channel=Channel.SERVICE, source="bench", external_id=external_id)
        submitted[ticket_id] = time.perf_counter()
        futures.append(
            await producer.send(
                topics.INBOUND, json.dumps(message).encode(), key=external_id.encode()
            )
        )
    await asyncio.gather(*futures)
    published = time.perf_counter() - start
    await producer.stop()
    await asyncio.wait_for(asyncio.gather(*readers), timeout=600)
    result: dict[str, Any] = {"tickets": n, "publish_seconds": published}
    for stage, seen in stages.items():
        last = max(seen.values())
        result[stage] = {
            "seconds": last - start,
            "per_second": n / (last - start),
            **percentiles([t - submitted[k] for k, t in seen.items()]),
        }
    return result


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid` and of its children that are still running."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1] is the parent
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def cpu_per_ticket(pids: dict[str, int], before: dict[str, float], n: int) -> dict[str, float]:
    return {name: (cpu_seconds(pid) - before[name]) * 1000 / n for name, pid in pids.items()}


def report(raw: dict[str, Any], smtp: dict[str, Any], loop: dict[str, Any]) -> str:
    rows = [("raw broker round trip", raw)] + [
        (f"submitted → {s}", loop[s]) for s in ("created", "assigned", "confirmation_sent")
    ]
    lines = [
        f"{'path':32} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    for name, r in rows:
        lines.append(
            f"{name:32} {r['per_second']:8.0f} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['p99_ms']:8.1f} {r['max_ms']:8.1f}"
        )
    base = raw["p50_ms"]
    lines.append("")
    lines.append(
        "p50 latency as a multiple of the raw broker round trip: "
        + ", ".join(
            f"{s} ×{loop[s]['p50_ms'] / base:.0f}"
            for s in ("created", "assigned", "confirmation_sent")
        )
    )
    lines.append(
        f"SMTP sink floor: {smtp['per_second']:.0f} messages/s over 4 connections; confirmations "
        f"reached {loop['confirmation_sent']['per_second'] / smtp['per_second']:.0%} of it"
    )
    lines.append(
        "throughput as a share of the raw broker's: "
        + ", ".join(
            f"{s} {loop[s]['per_second'] / raw['per_second']:.1%}"
            for s in ("created", "assigned", "confirmation_sent")
        )
    )
    cpu = loop["cpu_ms_per_ticket"]
    lines.append(
        f"CPU per ticket, {sum(cpu.values()):.2f} ms in all: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=2000, help="tickets to push (default 2000)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="careloop-bench-logs-"))
    with running_stack(
        kafka_port=port(24092), pg_port=port(24432), redis_port=port(24379), smtp_port=port(24025)
    ) as stack:
        env = {
            **stack.env,
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            "CARELOOP_LOG_LEVEL": "WARNING",
            **{f"CARELOOP_{name.upper()}_HTTP_PORT": str(port) for name, port in PORTS.items()},
        }
        services = [
            ServiceProcess(name, PORTS[name], env, logs / f"{name}.log") for name in SERVICES
        ]
        for s in services:
            s.start()
        try:
            for s in services:
                s.wait_healthy()
            raw = asyncio.run(broker_round_trip(stack.bootstrap, args.n))
            smtp = asyncio.run(smtp_floor(stack.stack.smtp_port, min(args.n, 2000)))
            pids = {s.name: s.proc.pid for s in services if s.proc is not None}
            pids |= {name: p.pid for name, p in stack.processes.items()}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            loop = asyncio.run(ticket_loop(stack.bootstrap, args.n))
            loop["cpu_ms_per_ticket"] = cpu_per_ticket(pids, before, args.n)
        finally:
            for s in services:
                s.stop()
    print(f"{args.n} tickets; service logs in {logs}")
    print(report(raw, smtp, loop))
    if args.json:
        args.json.write_text(json.dumps({"raw": raw, "smtp": smtp, "loop": loop}, indent=2))


if __name__ == "__main__":
    main()
