"""`bin/careloop bench`: careloop's throughput, latency and cost next to raw floors measured in
the same run, and issue 6's targets as a table.

Phases, each on a fresh private stack (ports 24xxx, shifted by CARELOOP_TEST_PORT_SHIFT), so no
phase starts behind what an earlier one left in the broker, the tables or the WAL:

1. floors: the six services start, the whole stack's idle CPU is measured; the services stop;
   the raw relays (2 and 3 hops, with and without an INSERT per hop) and the SMTP sink alone;
2. one burst per --bursts size: all tickets published to careloop.inbound.v1 at once, each
   followed to ticket.created, its assignment and its confirmation e-mail;
3. e-mail in (--email-messages): that many learners' mails sent to intake's SMTP gateway over
   a few SMTP connections, each followed like a burst's ticket, and set next to the Kafka
   burst of the same size;
4. with --rate, a paced stream of that many tickets a second for --duration seconds;
5. routing's own cost (--routing-agents): the learned triage's CPU per ticket, and the CPU per
   assignment with 10, 100 and 1,000 agents, in the bench's process (no stack);
6. incident (--incident-learners): a bulk notice and a compensation batch to that many learners
   through incident's API, on a stack with incident alone, each learner counted once on the
   topic its message leaves on (bench/incident.py).

Figures are wall-clock on whatever else the machine is doing: compare the ratios within one
run, not absolute numbers across runs.
"""

import argparse
import asyncio
import json
import logging
import tempfile
import time
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import anchors, email, incident, loop, routing_cost
from bench.report import email_comparison, full_report
from bench.stack import BenchStack, bench_stack, cpu_seconds

NOTE = (
    "Each burst, the e-mail phase and the paced run start on a fresh stack (broker, "
    "PostgreSQL, Redis, SMTP sink, six services); the idle figure, the anchors and the SMTP "
    "sink's rate come from a first stack of their own, the anchors with careloop's services "
    "stopped. Rates run from the first submission to the last arrival; latencies from each "
    "submission (paced: from when it was due; e-mail: from when the mail went out) to the "
    "stage. CPU is user plus system time from /proc, per ticket."
)


def idle(stack: BenchStack, *, seconds: float, settle: float = 5) -> dict[str, Any]:
    """The whole stack's CPU, in cores, while nothing happens: after `settle` seconds for the
    services' start-up work to end, over `seconds`."""
    time.sleep(settle)
    pids = stack.pids()
    before, start = cpu_seconds(pids), time.monotonic()
    time.sleep(seconds)
    spent = {name: s - before[name] for name, s in cpu_seconds(pids).items()}
    elapsed = time.monotonic() - start
    return {
        "seconds": elapsed,
        "cores": sum(spent.values()) / elapsed,
        "per_process": {name: s / elapsed for name, s in spent.items()},
    }


async def floors(
    stack: BenchStack, *, messages: int, processes: bool, smtp_messages: int
) -> dict[str, Any]:
    relays = {
        name: await anchors.run_anchor(
            stack, name, messages=messages, processes=processes, timeout=60 + messages / 100
        )
        for name in (anchors.ANCHORS if messages else ())
    }
    figures: dict[str, Any] = {"anchors": relays} if relays else {}
    if smtp_messages:
        figures["smtp"] = await anchors.smtp_floor(stack.smtp_port, smtp_messages)
    return figures


def phase(
    console: Console,
    figures: dict[str, Any],
    name: str,
    run: Callable[[], Any],
) -> Any:
    """Run one phase; a phase that breaks is reported and the run goes on with the next."""
    console.print(f"[bold]{name}[/]")
    try:
        return run()
    except Exception as exc:
        console.print(f"[red]{name} failed: {type(exc).__name__}: {exc}[/]")
        figures.setdefault("errors", []).append(f"{name}: {type(exc).__name__}: {exc}")
        return None


def with_progress(
    console: Console,
    make: Callable[..., Coroutine[Any, Any, dict[str, Any]]],
) -> Callable[[BenchStack], dict[str, Any]]:
    """A phase's work that shows its progress bars on stderr while it runs."""

    def work(stack: BenchStack) -> dict[str, Any]:
        columns = (
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as bar:
            return asyncio.run(make(stack, progress=bar))

    return work


def sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="bin/careloop bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--bursts",
        type=sizes,
        default=[2000, 20000, 100000],
        help="burst sizes, comma-separated (default 2000,20000,100000; '' for none)",
    )
    parser.add_argument(
        "--rate", type=float, default=1000, help="paced tickets per second (default 1000; 0: off)"
    )
    parser.add_argument(
        "--duration", type=float, default=30, help="seconds of the paced run (default 30)"
    )
    parser.add_argument(
        "--email-messages",
        type=int,
        default=2000,
        help="mails into intake's SMTP gateway, compared with the Kafka burst of that size "
        "(default 2000; 0: no e-mail phase)",
    )
    parser.add_argument(
        "--email-connections",
        type=int,
        default=email.CONNECTIONS,
        help=f"SMTP connections the mails share (default {email.CONNECTIONS})",
    )
    parser.add_argument(
        "--paced-without-email",
        action="store_true",
        help="run the paced stream again with notify's senders off, on a fresh stack: the "
        "ticket path's latency without e-mail competing for the same cores",
    )
    parser.add_argument(
        "--anchor-messages",
        type=int,
        default=20000,
        help="messages through each raw relay (default 20000; 0: no anchors)",
    )
    parser.add_argument(
        "--relay-processes",
        action="store_true",
        help="run each middle hop of the raw relays in a process of its own (default: all hops "
        "in the bench's one event loop)",
    )
    parser.add_argument(
        "--smtp-messages", type=int, default=2000, help="messages into the SMTP sink alone"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=15,
        help="how long idle CPU is measured (default 15; 0: not measured, and with "
        "--anchor-messages 0 --smtp-messages 0 no floors phase at all)",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=120,
        help="give up on a phase when no ticket moved for this long (default 120)",
    )
    parser.add_argument(
        "--routing-agents",
        type=sizes,
        default=[10, 100, 1000],
        help="roster sizes routing's assignment cost is measured with, and the triage's CPU per "
        "ticket (default 10,100,1000; '' or 0 for neither)",
    )
    parser.add_argument(
        "--incident-learners",
        type=lambda text: int(text.replace("_", "")),
        default=100_000,
        help="learners of the incident phase's bulk notice and compensation batch "
        "(default 100000; 0: no incident phase)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    console = Console(stderr=True)
    logs = Path(tempfile.mkdtemp(prefix="careloop-bench-logs-"))
    figures: dict[str, Any] = {"note": NOTE, "bursts": []}

    def on_stack(
        name: str, work: Callable[[BenchStack], Any], settings: dict[str, str] | None = None
    ) -> Any:
        def run() -> Any:
            with bench_stack(logs, phase=name, settings=settings) as stack:
                return work(stack)

        return phase(console, figures, name, run)

    def floors_phase(stack: BenchStack) -> None:
        if args.idle_seconds:
            figures["idle"] = idle(stack, seconds=args.idle_seconds)
        stack.stop_services()
        if args.anchor_messages or args.smtp_messages:
            figures.update(
                asyncio.run(
                    floors(
                        stack,
                        messages=args.anchor_messages,
                        processes=args.relay_processes,
                        smtp_messages=args.smtp_messages,
                    )
                )
            )

    if args.idle_seconds or args.anchor_messages or args.smtp_messages:
        on_stack("floors", floors_phase)
    for n in args.bursts:
        work = partial(loop.burst, n=n, stall_seconds=args.stall_seconds)
        result = on_stack(f"burst-{n}", with_progress(console, work))
        if result is not None:
            figures["bursts"].append(result)
    if args.email_messages:
        work = partial(
            email.email_burst,
            n=args.email_messages,
            connections=args.email_connections,
            stall_seconds=args.stall_seconds,
        )
        figures["email"] = on_stack(f"email-{args.email_messages}", with_progress(console, work))
        if figures["email"] is not None:
            figures["email_vs_kafka"] = email_comparison(figures)
    if args.rate:
        work = partial(
            loop.paced, rate=args.rate, duration=args.duration, stall_seconds=args.stall_seconds
        )
        figures["paced"] = on_stack("paced", with_progress(console, work))
        if args.paced_without_email:
            # The same stream with notify's senders off (confirmations wait in PostgreSQL): the
            # ticket path's own latency, without the local SMTP sink and notify on the same cores.
            figures["paced_without_email"] = on_stack(
                "paced-without-email",
                with_progress(console, work),
                settings={"CARELOOP_NOTIFY_SENDERS": "0"},
            )
    if rosters := [n for n in args.routing_agents if n > 0]:
        figures["routing"] = phase(
            console, figures, "routing", partial(routing_cost.measure, rosters)
        )
    if args.incident_learners:
        n = args.incident_learners

        def incident_phase() -> Any:
            rates = dict.fromkeys(incident.DEFAULT_RATES, incident.UNPACED)
            with incident.incident_stack(logs, rates=rates) as stack:
                return with_progress(console, partial(incident.measure, n=n))(stack)

        figures["incident"] = phase(console, figures, f"incident-{n}", incident_phase)
    print(full_report(figures))
    for error in figures.get("errors", []):
        print(f"\n- phase failed: {error}")
    print(f"\nservice logs in {logs}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
