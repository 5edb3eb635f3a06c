"""`python -m chaos [--scenario NAME ...] [--tickets N] [--learners N] [--list]`: the fault suite.

It starts its own stack and the services on ports 25xxx (shifted by
CARELOOP_TEST_PORT_SHIFT), then runs each scenario against it: a bounded stream of submissions
over HTTP and Kafka while the fault happens, then a count of what careloop lost, duplicated or
put over an agent's capacity, and how long it took to assign a ticket again. The bulk
scenarios (chaos/bulk.py) follow on a stack of their own with incident alone: a bulk notice and
a compensation batch to --learners learners with incident SIGKILLed twice during each, then a
count of the learners missed or reached twice. The exit status is 1 when any of those counts is
not zero.
"""

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from chaos.bulk import BULK, run_bulk
from chaos.domain import Outcome, broken, exit_code
from chaos.scenarios import SCENARIOS, run_scenario
from chaos.target import Target, read_agents
from deploy.local.harness import SERVICES, ServiceProcess, running_stack

AGENTS = Path(__file__).with_name("agents.yaml")


def port(number: int) -> int:
    return number + int(os.environ.get("CARELOOP_TEST_PORT_SHIFT", "0"))


def summary(outcomes: list[Outcome]) -> Table:
    table = Table(title="careloop chaos", title_justify="left")
    for column in (
        "scenario",
        "sent",
        "accepted",
        "lost",
        "broker lost",
        "duplicated",
        "resent",
        "over capacity",
        "stalled",
        "unconfirmed",
        "5xx",
        "recovery s",
    ):
        table.add_column(column, justify="left" if column == "scenario" else "right")

    def bad(n: int) -> str:
        return f"[bold red]{n}[/]" if n else "0"

    for o in outcomes:
        table.add_row(
            f"[red]{o.scenario}[/]" if o.failed else o.scenario,
            str(o.sent),
            str(o.accepted),
            bad(o.lost),
            str(o.broker_lost),
            bad(o.duplicated),
            str(o.resent),
            bad(o.over_capacity),
            bad(o.stalled),
            bad(o.unconfirmed),
            bad(o.server_errors),
            "never" if o.recovery_seconds is None else f"{o.recovery_seconds:.1f}",
        )
    return table


def line(o: Outcome) -> str:
    """One scenario's result as it finishes (the table comes at the end)."""
    if o.error:
        return f"{o.scenario}: could not run to its end: {o.error}"
    recovery = "never" if o.recovery_seconds is None else f"{o.recovery_seconds:.1f} s"
    return (
        f"{o.scenario}: {'FAILED' if o.failed else 'ok'}: {o.accepted} accepted, {o.lost} lost, "
        f"{o.broker_lost} lost by the broker, {o.duplicated} duplicated, {o.resent} resent, "
        f"{o.over_capacity} over capacity, {o.stalled} stalled, {o.unconfirmed} unconfirmed, "
        f"{o.server_errors} 5xx, recovery {recovery}"
    )


async def run_all(
    target: Target, names: list[str], tickets: int, console: Console
) -> list[Outcome]:
    outcomes = []
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[phase]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task("scenarios", total=len(names), phase="")
        for name in names:
            task = progress.add_task(name, total=tickets, phase="starting")

            def report(phase: str, done: int, total: int, task: TaskID = task) -> None:
                progress.update(task, completed=done, total=max(total, 1), phase=phase)

            unhealthy = await target.wait_healthy(timeout=60)
            if unhealthy:
                console.print(f"[yellow]before {name}: not healthy: {', '.join(unhealthy)}[/]")
            try:
                outcome = await run_scenario(
                    target, SCENARIOS[name], tickets=tickets, report=report
                )
            except Exception as exc:  # one broken scenario must not hide the others' results
                outcome = broken(name, f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            progress.console.print(line(outcome))
            progress.update(task, phase="[red]failed[/]" if outcome.failed else "[green]ok[/]")
            progress.advance(overall)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="bin/careloop chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, *BULK],
        metavar="NAME",
        help="run only this scenario (repeatable; default: all, see --list)",
    )
    parser.add_argument(
        "--tickets", type=int, default=150, help="submissions per scenario (default 150)"
    )
    parser.add_argument(
        "--learners",
        type=int,
        default=100_000,
        help="learners of the bulk scenarios' notice and compensation batch (default 100000)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a restarting broker is expected
    if args.list:
        for scenario in SCENARIOS.values():
            console.print(f"{scenario.name:16} {scenario.about}")
        for name, (about, _) in BULK.items():
            console.print(f"{name:16} {about}")
        return
    chosen = args.scenario or [*SCENARIOS, *BULK]
    names = [n for n in chosen if n in SCENARIOS]
    bulk = [n for n in chosen if n in BULK]
    logs = Path(tempfile.mkdtemp(prefix="careloop-chaos-logs-"))
    started = time.monotonic()
    outcomes = run_tickets(names, args.tickets, logs, console) if names else []
    if bulk:
        outcomes += run_bulk_scenarios(bulk, args.learners, logs, console)
    console.print(summary(outcomes))
    for o in outcomes:
        if o.error:
            console.print(f"  [red]{o.scenario}: could not run to its end: {o.error}[/]")
        for note in o.notes:
            console.print(f"  {o.scenario}: {note}")
    console.print(f"{time.monotonic() - started:.0f} s; service logs in {logs}")
    sys.exit(exit_code(outcomes))


def run_bulk_scenarios(
    names: list[str], learners: int, logs: Path, console: Console
) -> list[Outcome]:
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[phase]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        tasks: dict[str, TaskID] = {}

        def reporter(name: str) -> Callable[[str, int, int], None]:
            def report(phase: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=total, phase=phase)
                progress.update(tasks[name], completed=done, total=max(total, 1), phase=phase)

            return report

        outcomes = run_bulk(names, learners=learners, logs=logs, report=reporter)
        for o in outcomes:
            progress.console.print(line(o))
    return outcomes


def run_tickets(names: list[str], tickets: int, logs: Path, console: Console) -> list[Outcome]:
    """The ticket scenarios on the stack with every service."""
    ports = dict(zip(SERVICES, range(port(25081), port(25089)), strict=True))
    with running_stack(port(25000)) as stack:
        env = {
            **stack.env,
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            "CARELOOP_LOG_LEVEL": "WARNING",
            "CARELOOP_NOTIFY_CLAIM_SECONDS": "10",
            # The stream comes from one address faster than a person would: limits off.
            "CARELOOP_INTAKE_RATE_PER_ADDRESS": "0",
            "CARELOOP_INTAKE_RATE_PER_SOURCE": "0",
            **{f"CARELOOP_{name.upper()}_HTTP_PORT": str(p) for name, p in ports.items()},
        }
        services = {
            name: ServiceProcess(name, ports[name], env, logs / f"{name}.log") for name in SERVICES
        }
        for s in services.values():
            s.start()
        try:
            for s in services.values():
                s.wait_healthy()
            target = Target(
                stack,
                services,
                {name: f"http://127.0.0.1:{p}" for name, p in ports.items()},
                read_agents(AGENTS),
            )
            return asyncio.run(run_all(target, names, tickets, console))
        finally:
            for s in services.values():
                s.stop()


if __name__ == "__main__":
    main()
