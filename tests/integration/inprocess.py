"""desk and survey served in-process (ASGI, lifespan and all) against the real stack.

The apps run exactly as `python -m services.desk` would: their migrations, their own
database role, their consumers, outbox relays and clocks. Requests go through
httpx's ASGI transport, and a 500 comes back as a response rather than an exception.
"""

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from shared.events import (
    Category,
    Envelope,
    Priority,
    TicketRouted,
    TicketSubmitted,
    decode,
    new_event,
)
from shared.kafka import ensure_topics, make_broker, outgoing, publish_confirmed
from shared.settings import CommonSettings
from tests.support import RunningStack, eventually, fresh_groups

AGENTS = Path(__file__).with_name("agents.yaml")
ANA = {"Authorization": "Bearer test-ana-token"}
SUE = {"Authorization": "Bearer test-sue-token"}


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Settings as the service processes get them: in the environment."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def service_env(stack: RunningStack) -> dict[str, str]:
    return {
        **stack.env,
        "CARELOOP_AGENTS_FILE": str(AGENTS),
        "CARELOOP_SURVEY_DELAY_SECONDS": "0",
        "CARELOOP_SURVEY_POLL_SECONDS": "0.2",
    }


@contextlib.asynccontextmanager
async def served(app_factory: Callable[[], FastAPI], name: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app `app_factory` builds, with its lifespan running."""
    app = app_factory()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://{name}", timeout=30
        ) as client:
            yield client


async def publish(settings: CommonSettings, events: list[Envelope[Any]]) -> None:
    await ensure_topics(settings)
    broker = make_broker(settings, client_id="test-publisher")
    try:
        await broker.start()
        await publish_confirmed(broker, [outgoing(e) for e in events])
    finally:
        await broker.stop()


async def caught_up(bootstrap: str, group: str, topic: str, *, timeout: float = 60) -> None:
    """Wait until consumer group `group` has committed everything on `topic` now: a service
    started in a test session reads every earlier test's events first, and a counter read
    before it is done would still move."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        await consumer.start()
        await consumer.topics()  # the metadata partitions_for_topic reads
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)

        async def done() -> bool:
            committed = [await consumer.committed(tp) or 0 for tp in partitions]
            return all(c >= ends[tp] for c, tp in zip(committed, partitions, strict=True))

        await eventually(done, timeout=timeout, interval=0.3)
    finally:
        await consumer.stop()


async def skip_history(bootstrap: str, group: str) -> None:
    """Commit consumer group `group` at the end of every topic, as if it had handled
    everything: a service started in its group then reads only what comes after, not every
    earlier test's events (replaying them took minutes late in a session, and re-applied
    earlier tests' changes in the middle of a test)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        await consumer.start()
        partitions = [
            TopicPartition(t, p)
            for t in sorted(await consumer.topics())
            for p in consumer.partitions_for_topic(t) or ()
        ]
        if partitions:  # on a stack with no topics yet there is no history to skip
            consumer.assign(partitions)
            await consumer.commit(dict(await consumer.end_offsets(partitions)))
    finally:
        await consumer.stop()


async def groups_from_now(bootstrap: str, service: str) -> dict[str, str]:
    """`fresh_groups()` settings in which `service`'s group starts at every topic's end."""
    groups = fresh_groups()
    await skip_history(bootstrap, groups["CARELOOP_KAFKA_GROUP_PREFIX"] + service)
    return groups


async def find_event(
    bootstrap: str, topic: str, match: Callable[[Envelope[Any]], bool], *, timeout: float = 30
) -> Envelope[Any]:
    """The first event on `topic` (read from its start) that `match`es."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        await consumer.start()

        async def look() -> Envelope[Any] | None:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    with contextlib.suppress(Exception):
                        event = decode(r.value)
                        if match(event):
                            return event
            return None

        found: Envelope[Any] = await eventually(look, timeout=timeout, interval=0)
        return found
    finally:
        await consumer.stop()


async def routed_to_ana(
    settings: CommonSettings,
    desk: httpx.AsyncClient,
    submitted: TicketSubmitted,
    *,
    category: Category,
    priority: Priority,
) -> None:
    """The learner's ticket `submitted`, created by desk and routed to Ana in the complaints
    team (none of the other test agents' team: Ben cannot see it)."""
    ticket_id = submitted.ticket_id
    await publish(settings, [new_event(submitted, producer="test")])

    async def created() -> bool:
        return (await desk.get(f"/v1/tickets/{ticket_id}", headers=SUE)).status_code == 200

    await eventually(created)
    at = submitted.submitted_at
    routed = TicketRouted(
        ticket_id=ticket_id,
        channel=submitted.channel,
        category=category,
        priority=priority,
        team="complaints",
        language=submitted.language,
        first_response_due_at=at + timedelta(hours=2),
        resolution_due_at=at + timedelta(hours=24),
        agent_id="ana",
        routed_at=at,
    )
    await publish(settings, [new_event(routed, producer="test")])

    async def assigned() -> bool:
        r = await desk.get(f"/v1/tickets/{ticket_id}", headers=SUE)
        return r.status_code == 200 and r.json()["assignee_id"] == "ana"

    await eventually(assigned)
