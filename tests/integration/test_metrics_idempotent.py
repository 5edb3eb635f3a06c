"""metrics' consumer without inbox rows: a repeated or stale event changes and counts nothing.

The events go through the real broker to metrics' own handlers, in its real schema; each
test's consumer has a name of its own, so its plumbing counters say when it has read all.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from prometheus_client import REGISTRY

from shared.events import (
    Category,
    Channel,
    Envelope,
    Learner,
    Priority,
    TicketAssigned,
    TicketCreated,
    TicketReplied,
    TicketRouted,
    TicketTriaged,
    new_event,
    now,
)
from shared.settings import CommonSettings
from tests.integration.metrics_feed import Publish, metrics_database, metrics_feed
from tests.support import RunningStack


@pytest.fixture
async def metrics_pool(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    async with metrics_database(stack) as pool:
        yield pool


@pytest.fixture
async def deliver(settings: CommonSettings, metrics_pool: asyncpg.Pool) -> AsyncIterator[Publish]:
    async with metrics_feed(settings, metrics_pool) as publish:
        yield publish


def created_count(category: Category = Category.TECHNICAL) -> float:
    labels = {"channel": "web", "category": category, "priority": "high"}
    return REGISTRY.get_sample_value("careloop_tickets_created_total", labels) or 0


def first_responses() -> float:
    labels = {"priority": "high"}
    return REGISTRY.get_sample_value("careloop_ticket_first_response_seconds_count", labels) or 0


class Ticket:
    """One ticket's events, each made once: publishing one again is a redelivery."""

    def __init__(self) -> None:
        self.id = uuid.uuid4()
        self.at = now()
        self.triage: dict[str, Any] = {
            "ticket_id": self.id,
            "channel": Channel.WEB,
            "category": Category.TECHNICAL,
            "priority": Priority.HIGH,
            "team": "tech_support",
            "language": "en",
            "first_response_due_at": self.at + timedelta(hours=4),
            "resolution_due_at": self.at + timedelta(days=1),
        }
        self.created = new_event(
            TicketCreated(
                ticket_id=self.id,
                number="CL-1",
                channel=Channel.WEB,
                learner=Learner(name="Lin", email="lin@example.com"),
                subject="Video freezes",
                description="It stops after a minute",
                language="en",
                created_at=self.at,
            ),
            producer="desk",
        )
        self.triaged = new_event(TicketTriaged(**self.triage), producer="routing")

    def routed(self, agent_id: str | None) -> Envelope[Any]:
        return new_event(
            TicketRouted(**self.triage, agent_id=agent_id, routed_at=now()), producer="routing"
        )

    def assigned(self, agent_id: str, team: str) -> Envelope[Any]:
        return new_event(
            TicketAssigned(
                ticket_id=self.id,
                agent_id=agent_id,
                team=team,
                priority=Priority.HIGH,
                assigned_at=now(),
            ),
            producer="routing",
        )

    def first_reply(self) -> Envelope[Any]:
        return new_event(
            TicketReplied(
                ticket_id=self.id,
                number="CL-1",
                reply_id=uuid.uuid4(),
                agent_id="ana",
                body="Try another browser",
                first_response=True,
                created_at=self.at,
                replied_at=now(),
            ),
            producer="desk",
        )


async def row(pool: asyncpg.Pool, ticket_id: UUID) -> dict[str, Any]:
    found = await pool.fetchrow("SELECT * FROM tickets WHERE ticket_id = $1", ticket_id)
    assert found is not None
    return dict(found)


async def inbox_rows(pool: asyncpg.Pool, events: list[Envelope[Any]]) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])", [e.event_id for e in events]
    )
    return count


async def test_a_routed_ticket_delivered_twice_is_counted_once(
    deliver: Publish, metrics_pool: asyncpg.Pool
) -> None:
    ticket = Ticket()
    routed = ticket.routed("ana")
    before = created_count()

    await deliver([ticket.created, routed])
    once = await row(metrics_pool, ticket.id)
    await deliver([ticket.created, routed])  # a redelivery after a crash before the commit

    assert created_count() == before + 1
    assert await row(metrics_pool, ticket.id) == once
    assert once["status"] == "assigned"
    assert once["team"] == "tech_support"
    assert (once["channel"], once["category"], once["priority"]) == ("web", "technical", "high")
    assert await inbox_rows(metrics_pool, [ticket.created, routed]) == 0


async def test_stale_copies_after_newer_events_change_and_count_nothing(
    deliver: Publish, metrics_pool: asyncpg.Pool
) -> None:
    ticket = Ticket()
    routed, reply = ticket.routed(None), ticket.first_reply()
    escalated = ticket.assigned("sue", "supervisors")
    before, responses = created_count(), first_responses()

    await deliver([ticket.created, routed, escalated, reply])
    newest = await row(metrics_pool, ticket.id)
    await deliver([routed, ticket.created, reply])  # the relays re-send them later

    assert await row(metrics_pool, ticket.id) == newest
    assert (newest["status"], newest["team"]) == ("assigned", "supervisors")
    assert newest["first_responded_at"] == reply.data.replied_at
    assert created_count() == before + 1
    assert first_responses() == responses + 1


async def test_a_ticket_triaged_and_then_routed_is_counted_once_and_placed(
    deliver: Publish, metrics_pool: asyncpg.Pool
) -> None:
    ticket = Ticket()
    before = created_count()

    await deliver([ticket.created, ticket.triaged])
    assert (await row(metrics_pool, ticket.id))["status"] == "new"
    await deliver([ticket.routed("ana")])

    assert created_count() == before + 1
    assert (await row(metrics_pool, ticket.id))["status"] == "assigned"


async def test_a_routing_that_arrives_before_the_creation_keeps_its_status(
    deliver: Publish, metrics_pool: asyncpg.Pool
) -> None:
    ticket = Ticket()

    await deliver([ticket.routed(None)])  # another topic: no order between the two
    await deliver([ticket.created])

    found = await row(metrics_pool, ticket.id)
    assert (found["status"], found["team"]) == ("queued", "tech_support")
    assert found["created_at"] == ticket.at
