"""SIGKILL desk, then routing, in the middle of a stream: every ticket created once, assigned once,
confirmed by e-mail exactly once."""

import asyncio
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared import topics
from shared.events import Envelope, decode
from tests.e2e.conftest import Platform
from tests.support import eventually

TICKETS = 120


def of_type(event_type: str) -> Callable[[Envelope[Any]], bool]:
    return lambda e: e.type == event_type


def assignment(e: Envelope[Any]) -> bool:
    """A ticket given to an agent: a new ticket routed to one, or a later ticket.assigned (one
    routed to nobody first waited in the queue)."""
    return e.type == "ticket.assigned" or (
        e.type == "ticket.routed" and e.data.agent_id is not None
    )


class Topic:
    """Distinct events (by event id) on a topic that `counts` picks, grouped by ticket."""

    def __init__(self, bootstrap: str, topic: str, counts: Callable[[Envelope[Any]], bool]) -> None:
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        self.counts = counts
        self.by_ticket: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        self.data: dict[uuid.UUID, Any] = {}

    async def poll(self) -> None:
        for records in (await self.consumer.getmany(timeout_ms=300, max_records=5000)).values():
            for r in records:
                e = decode(r.value)
                if self.counts(e):
                    self.by_ticket[e.data.ticket_id].add(e.event_id)
                    self.data[e.data.ticket_id] = e.data


async def stream(platform: Platform, run: str, count: int) -> None:
    """Submissions from another service over careloop.inbound.v1, a dozen a second."""
    producer = AIOKafkaProducer(bootstrap_servers=platform.stack.bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(count):
            message = {
                "source": "lms",
                "external_id": f"{run}-{i}",
                "name": f"Learner {i}",
                "email": f"learner{i}@example.com",
                "subject": f"crash-{run} video will not play {i}",
                "description": "The video player freezes in the browser",
            }
            await producer.send_and_wait(
                topics.INBOUND, json.dumps(message).encode(), key=f"{run}-{i}".encode()
            )
            await asyncio.sleep(0.08)
    finally:
        await producer.stop()


def confirmations(platform: Platform, numbers: set[str]) -> Counter[str]:
    """Confirmation e-mails the sink received, per ticket number, for `numbers`."""
    return Counter(
        m["X-Careloop-Ticket"]
        for m in platform.stack.mails()
        if m["X-Careloop-Kind"] == "confirmation" and m["X-Careloop-Ticket"] in numbers
    )


async def test_killing_desk_and_routing_mid_stream_loses_and_repeats_nothing(
    platform: Platform,
) -> None:
    run = uuid.uuid4().hex[:8]
    desk, routing = platform.services["desk"], platform.services["routing"]

    async def chaos() -> None:
        await asyncio.sleep(2)
        desk.kill()
        desk.start()
        await asyncio.sleep(3)
        routing.kill()
        routing.start()

    await asyncio.gather(stream(platform, run, TICKETS), chaos())
    await asyncio.to_thread(desk.wait_healthy)
    await asyncio.to_thread(routing.wait_healthy)

    created = Topic(platform.stack.bootstrap, topics.TICKETS, of_type("ticket.created"))
    assigned = Topic(platform.stack.bootstrap, topics.ROUTING, assignment)
    for t in (created, assigned):
        await t.consumer.start()
    try:

        def ours() -> dict[uuid.UUID, Any]:
            return {k: d for k, d in created.data.items() if d.subject.startswith(f"crash-{run}")}

        async def all_created_and_assigned() -> bool:
            await created.poll()
            await assigned.poll()
            mine = ours()
            return len(mine) == TICKETS and all(t in assigned.by_ticket for t in mine)

        await eventually(all_created_and_assigned, timeout=120, interval=0.5)

        async def all_confirmed() -> bool:
            numbers = {d.number for d in ours().values()}
            return set(confirmations(platform, numbers)) == numbers

        await eventually(all_confirmed, timeout=60, interval=0.5)
        await asyncio.sleep(3)  # give a duplicate, if any, the time to show
        await created.poll()
        await assigned.poll()
    finally:
        for t in (created, assigned):
            await t.consumer.stop()

    mine = ours()
    assert len(mine) == TICKETS
    assert all(len(created.by_ticket[t]) == 1 for t in mine), "a ticket was created twice"
    assert len({d.number for d in mine.values()}) == TICKETS
    assert all(len(assigned.by_ticket[t]) == 1 for t in mine), "a ticket was assigned twice"
    numbers = {d.number for d in mine.values()}
    assert confirmations(platform, numbers) == Counter(numbers), "a confirmation twice or never"


async def test_killing_notify_mid_stream_loses_no_confirmation(platform: Platform) -> None:
    """SMTP is not transactional: a kill between the server's 250 and the "sent" mark may
    send that one message again (at most one per sender connection), never lose one."""
    run = uuid.uuid4().hex[:8]
    notify = platform.services["notify"]
    created = Topic(platform.stack.bootstrap, topics.TICKETS, of_type("ticket.created"))
    await created.consumer.start()

    async def chaos() -> None:
        for _ in range(2):
            await asyncio.sleep(2)
            notify.kill()
            notify.start()

    try:
        await asyncio.gather(stream(platform, run, 60), chaos())
        await asyncio.to_thread(notify.wait_healthy)

        async def numbers() -> set[str]:
            await created.poll()
            mine = {d.number for d in created.data.values() if d.subject.startswith(f"crash-{run}")}
            return mine if len(mine) == 60 else set()

        ours = await eventually(numbers, timeout=60, interval=0.5)

        async def all_confirmed() -> bool:
            return set(confirmations(platform, ours)) == ours

        await eventually(all_confirmed, timeout=90, interval=0.5)
        await asyncio.sleep(3)
    finally:
        await created.consumer.stop()

    sent = confirmations(platform, ours)
    duplicates = sum(sent.values()) - len(ours)
    assert set(sent) == ours
    assert duplicates <= 2 * 4, f"{duplicates} duplicates from 2 kills of 4 senders"
