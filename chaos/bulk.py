"""The bulk scenarios: incident SIGKILLed twice (and started again each time) while it releases
a bulk notice, and while it issues a compensation batch, to N learners (100,000 by default);
then each learner must have been reached exactly once.

They run on a stack of their own with incident alone (ports 25xxx, after the ticket scenarios'
stack stopped), with bench/incident.py's workload: the bench plays the LMS, desk, notify and
the acting systems, and counts each learner's messages on careloop.incidents.v1 and
careloop.remedies.v1. The notices are paced so that releasing them takes about
RELEASE_SECONDS whatever N is (a deployment paces them at its providers' limits); the remedies
are not paced, as in the service. The kills land when a quarter and when three fifths of the
learners were released, counted in incident's tables: what it committed.

In the summary: `sent` the learners asked for, `accepted` those the API said it will reach,
`lost` learners without a message, `duplicated` learners with two different messages (or a
message for someone not asked for), `resent` copies of the same message the outbox relay sent
again after a kill (its consumer drops them by their id), `stalled` messages incident never
released, `recovery s` from incident healthy after the second kill to its next release.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.incident import (
    CHANNEL_SHARES,
    Bulk,
    Reach,
    TopicWatch,
    incident_stack,
    notices_of,
    remedies_of,
    settled,
)
from chaos.domain import Outcome, broken
from deploy.local.harness import ServiceProcess
from shared import topics
from shared.events import CouponIssued, IncidentNoticeRequested

KILL_AT = (0.25, 0.6)
RELEASE_SECONDS = 90.0
Report = Callable[[str, int, int], None]  # phase, done, total


def paced_rates(n: int) -> dict[str, float]:
    """Per-channel rates that release n learners' notices in about RELEASE_SECONDS."""
    return {c: max(1.0, share * n / RELEASE_SECONDS) for c, share in CHANNEL_SHARES.items()}


class FaultMissed(Exception):
    """The release ended before a kill could land in it: the scenario proved nothing."""


async def kill_during(
    service: ServiceProcess,
    released: Callable[[], Awaitable[int]],
    total: int,
    notes: list[str],
    report: Report,
) -> float | None:
    """SIGKILL `service` at each of KILL_AT's shares of `total` released, starting it again
    each time; the seconds from healthy after the last kill to the next release (None when
    nothing was left to release by then)."""
    for share in KILL_AT:
        while (done := await released()) < share * total:
            report("releasing", done, total)
            await asyncio.sleep(0.1)
        if done >= total:
            raise FaultMissed(f"all {total:,} released before the kill at {share:.0%}")
        await asyncio.to_thread(service.kill)
        start = time.monotonic()
        service.start()
        await asyncio.to_thread(service.wait_healthy)
        notes.append(
            f"SIGKILL at {done:,} of {total:,} released; healthy again after "
            f"{time.monotonic() - start:.1f} s"
        )
    healthy_at, at_restart = time.monotonic(), await released()
    while (now_released := await released()) == at_restart < total:
        report("releasing", now_released, total)
        await asyncio.sleep(0.05)
    return time.monotonic() - healthy_at if at_restart < total else None


def outcome(
    name: str,
    *,
    reached: Reach,
    accepted: int,
    released: int,
    recovery: float | None,
    notes: list[str],
) -> Outcome:
    return Outcome(
        scenario=name,
        sent=reached.expected,
        accepted=accepted,
        lost=reached.missing + (reached.expected - accepted),
        broker_lost=0,
        duplicated=reached.twice + reached.strangers,
        over_capacity=0,
        stalled=accepted - released,
        unconfirmed=0,
        server_errors=0,
        recovery_seconds=recovery,
        notes=tuple(notes),
        resent=reached.resent,
    )


async def notice_under_kills(bulk: Bulk, service: ServiceProcess, report: Report) -> Outcome:
    """The announcement to every enrolled learner; two kills while its notices are released."""
    name = "bulk-notice"
    assert bulk.incident_id is not None  # run_bulk opened it
    stop = asyncio.Event()
    watch = TopicWatch(
        bulk.bootstrap,
        topics.INCIDENTS,
        frozenset({IncidentNoticeRequested.TYPE}),
        notices_of(bulk.incident_id),
    )
    watching = asyncio.create_task(watch.run(stop))
    notes: list[str] = []
    try:
        accepted = await bulk.announce()
        recovery = await kill_during(
            service, lambda: bulk.released("notices"), accepted, notes, report
        )
        await settled(
            watch,
            accepted,
            grace=5,
            timeout=120,
            progress=lambda d: report("on the topic", d, accepted),
        )
    finally:
        stop.set()
        await watching
    return outcome(
        name,
        reached=watch.reach(bulk.learners),
        accepted=accepted,
        released=await bulk.released("notices"),
        recovery=recovery,
        notes=notes,
    )


async def compensation_under_kills(bulk: Bulk, service: ServiceProcess, report: Report) -> Outcome:
    """Every learner's ticket linked to the incident, a coupon batch asked for and approved;
    two kills while its remedies are issued."""
    name = "bulk-remedies"
    await bulk.link_tickets(lambda d: report("tickets linked", d, bulk.n))
    batch_id, accepted = await bulk.compensate()
    stop = asyncio.Event()
    watch = TopicWatch(
        bulk.bootstrap, topics.REMEDIES, frozenset({CouponIssued.TYPE}), remedies_of(batch_id)
    )
    watching = asyncio.create_task(watch.run(stop))
    notes: list[str] = []

    async def released() -> int:
        return await bulk.released("remedies", batch_id)

    try:
        recovery = await kill_during(service, released, accepted, notes, report)
        await settled(
            watch,
            accepted,
            grace=5,
            timeout=120,
            progress=lambda d: report("on the topic", d, accepted),
        )
    finally:
        stop.set()
        await watching
    return outcome(
        name,
        reached=watch.reach(bulk.learners),
        accepted=accepted,
        released=await released(),
        recovery=recovery,
        notes=notes,
    )


BulkRun = Callable[[Bulk, ServiceProcess, Report], Awaitable[Outcome]]
# name: (what it does, how it runs)
BULK: dict[str, tuple[str, BulkRun]] = {
    "bulk-notice": (
        "SIGKILL incident twice during a bulk notice to N learners",
        notice_under_kills,
    ),
    "bulk-remedies": (
        "SIGKILL incident twice while a compensation batch to N learners is issued",
        compensation_under_kills,
    ),
}


def run_bulk(
    names: list[str], *, learners: int, logs: Path, report: Callable[[str], Report]
) -> list[Outcome]:
    """The bulk scenarios named, in order, on one stack: the compensation goes to the
    learners the notice reached (their tickets linked to the same incident)."""
    outcomes: list[Outcome] = []
    with incident_stack(logs, rates=paced_rates(learners), base=25000) as stack:
        service = stack.services[0]
        bulk = Bulk(stack.bootstrap, stack.dsn, f"http://127.0.0.1:{service.port}", learners)

        async def run_all() -> None:
            await bulk.enrol(lambda d: report("setting up")("learners enrolled", d, learners))
            await bulk.open_incident()
            for name in names:
                _, scenario = BULK[name]
                try:
                    outcomes.append(await scenario(bulk, service, report(name)))
                except (FaultMissed, TimeoutError, RuntimeError) as exc:
                    outcomes.append(broken(name, f"{type(exc).__name__}: {exc}"))

        asyncio.run(run_all())
    return outcomes
