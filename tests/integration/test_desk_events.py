"""desk's consumer against the real database: the types it applies without an inbox row
(`ticket.submitted`, `ticket.routed`) have the effect of one delivery however often they
come, and a stale copy that comes after newer events moves nothing back.

Records go straight to desk's EventConsumer, as Kafka would deliver them again after a
crash (the same record) or as a producer's outbox relay re-sends them (later, after newer
events of the same ticket); the Kafka path itself is covered in test_desk_http.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from aiokafka.structs import ConsumerRecord

from services.desk import handlers, repo
from services.desk.domain import Caller
from services.desk.settings import DeskSettings
from shared.agents import Role
from shared.db import create_pool
from shared.events import (
    Category,
    Channel,
    Envelope,
    Learner,
    Priority,
    TicketAssigned,
    TicketQueued,
    TicketRouted,
    TicketSubmitted,
    new_event,
    now,
)
from shared.inbox import EventConsumer
from shared.kafka import make_broker
from shared.migrate import migrate
from shared.settings import CommonSettings
from tests.support import RunningStack

Deliver = Callable[..., Coroutine[Any, Any, None]]
DESK = DeskSettings(link_secret="test-secret")


@pytest.fixture(scope="module")
async def desk_pool(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(migrate, stack.dsn, "desk")
    pool = await create_pool(stack.service_dsn("desk"), schema="desk")
    yield pool
    await pool.close()


@pytest.fixture
def deliver(desk_pool: asyncpg.Pool, settings: CommonSettings) -> Deliver:
    """Hand records to desk's consumer as one batch, the way the app wires it."""
    consumer = EventConsumer(
        name="desk",
        handlers=handlers.event_handlers(DESK),
        pool=lambda: desk_pool,
        broker=make_broker(settings, client_id="test-desk"),  # dead letters only: none here
        idempotent=frozenset(handlers.IDEMPOTENT),
    )

    async def deliver(*events: Envelope[Any]) -> None:
        await consumer.consume([record(e) for e in events])

    return deliver


def record(event: Envelope[Any]) -> ConsumerRecord[bytes, bytes]:
    value = event.to_json()
    return ConsumerRecord(
        event.topic, 0, 0, 0, 0, event.key.encode(), value, None, 0, len(value), []
    )


def submitted(ticket_id: uuid.UUID | None = None) -> Envelope[TicketSubmitted]:
    """A keyless web submission; each test's text differs, or desk would take a later one for
    the same learner's same words sent again (one ticket)."""
    ticket_id = ticket_id or uuid.uuid4()
    return new_event(
        TicketSubmitted(
            ticket_id=ticket_id,
            channel=Channel.WEB,
            learner=Learner(name="Li Lei", email="lilei@example.com", phone="+86 138 0000 0000"),
            subject="Cannot log in",
            description=f"The login page spins forever (attempt {ticket_id.hex[:8]})",
            language="en",
            submitted_at=now(),
        ),
        producer="intake",
    )


def routed(ticket_id: uuid.UUID, agent_id: str | None) -> Envelope[TicketRouted]:
    at = now()
    return new_event(
        TicketRouted(
            ticket_id=ticket_id,
            channel=Channel.WEB,
            category=Category.ACCOUNT_SECURITY,
            priority=Priority.HIGH,
            team="tech_support",
            language="en",
            matched=("log in",),
            first_response_due_at=at + timedelta(hours=1),
            resolution_due_at=at + timedelta(hours=24),
            agent_id=agent_id,
            routed_at=at,
        ),
        producer="routing",
    )


def assigned(ticket_id: uuid.UUID, agent_id: str) -> Envelope[TicketAssigned]:
    return new_event(
        TicketAssigned(
            ticket_id=ticket_id,
            agent_id=agent_id,
            team="tech_support",
            priority=Priority.HIGH,
            assigned_at=now(),
        ),
        producer="routing",
    )


def queued(ticket_id: uuid.UUID, team: str) -> Envelope[TicketQueued]:
    return new_event(
        TicketQueued(ticket_id=ticket_id, team=team, priority=Priority.HIGH, queued_at=now()),
        producer="routing",
    )


def copy_of(event: Envelope[Any]) -> Envelope[Any]:
    """The same payload under a new event id: what a producer publishing again sends."""
    return new_event(event.data, producer=event.producer)


async def ticket(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM tickets WHERE ticket_id = $1", ticket_id)
    assert row is not None
    return row


async def history(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    rows = await pool.fetch(
        "SELECT kind, detail FROM history WHERE ticket_id = $1 ORDER BY id", ticket_id
    )
    return [(r["kind"], r["detail"]) for r in rows]


async def announced(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> int:
    """How many ticket.created events desk staged for the ticket (no relay runs here)."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE key = $1 AND event_type = 'ticket.created'",
        str(ticket_id),
    )
    return count


async def inbox_rows(pool: asyncpg.Pool, *events: Envelope[Any]) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])", [e.event_id for e in events]
    )
    return count


async def test_a_submission_delivered_again_or_published_again_is_one_ticket(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    s = submitted()
    ticket_id = s.data.ticket_id

    await deliver(s, copy_of(s))
    first = await ticket(desk_pool, ticket_id)
    await deliver(s)
    await deliver(copy_of(s))

    again = await ticket(desk_pool, ticket_id)
    assert (again["number"], again["status"]) == (first["number"], "new")
    assert again["learner"] == {
        "name": "Li Lei",
        "email": "lilei@example.com",
        "phone": "+86 138 0000 0000",
    }
    assert again["attachments"] == []
    assert await history(desk_pool, ticket_id) == [("created", {"number": first["number"]})]
    assert await announced(desk_pool, ticket_id) == 1
    assert await inbox_rows(desk_pool, s) == 0, "idempotent by its ticket, not by an inbox row"


async def test_a_stale_submission_after_routing_leaves_the_ticket_where_routing_put_it(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    s = submitted()
    ticket_id = s.data.ticket_id
    await deliver(s)
    await deliver(routed(ticket_id, "ana"))
    await deliver(assigned(ticket_id, "sue"))

    await deliver(s)

    t = await ticket(desk_pool, ticket_id)
    assert (t["status"], t["assignee_id"], t["category"]) == (
        "assigned",
        "sue",
        "account_security",
    )
    assert [k for k, _ in await history(desk_pool, ticket_id)] == [
        "created",
        "triaged",
        "assigned",
        "assigned",
    ]
    assert await announced(desk_pool, ticket_id) == 1


async def test_a_routed_ticket_takes_its_triage_and_agent_with_their_history(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    s = submitted()
    ticket_id = s.data.ticket_id
    await deliver(s)

    r = routed(ticket_id, "ana")
    await deliver(r)

    t = await ticket(desk_pool, ticket_id)
    assert (t["status"], t["assignee_id"], t["team"]) == ("assigned", "ana", "tech_support")
    assert (t["category"], t["priority"]) == ("account_security", "high")
    assert t["first_response_due_at"] == r.data.first_response_due_at
    assert t["resolution_due_at"] == r.data.resolution_due_at
    assert (await history(desk_pool, ticket_id))[1:] == [
        ("triaged", {"category": "account_security", "priority": "high"}),
        ("assigned", {"agent_id": "ana"}),
    ]


async def test_a_ticket_routed_to_nobody_waits_in_its_teams_queue(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    s = submitted()
    ticket_id = s.data.ticket_id
    await deliver(s)

    await deliver(routed(ticket_id, None))

    t = await ticket(desk_pool, ticket_id)
    assert (t["status"], t["assignee_id"], t["team"]) == ("queued", None, "tech_support")
    assert (await history(desk_pool, ticket_id))[1:] == [
        ("triaged", {"category": "account_security", "priority": "high"}),
        ("queued", {"team": "tech_support"}),
    ]


async def test_a_queued_ticket_overflowed_to_a_backup_team_is_that_teams(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    s = submitted()
    ticket_id = s.data.ticket_id
    await deliver(s)
    await deliver(routed(ticket_id, None))

    await deliver(queued(ticket_id, "customer_service"))  # at risk: overflow to the backup team

    t = await ticket(desk_pool, ticket_id)
    assert (t["status"], t["assignee_id"], t["team"]) == ("queued", None, "customer_service")
    assert (await history(desk_pool, ticket_id))[-1] == ("queued", {"team": "customer_service"})


async def test_a_routing_delivered_again_or_published_again_writes_its_history_once(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    s = submitted()
    ticket_id = s.data.ticket_id
    await deliver(s)
    r = routed(ticket_id, "ana")

    await deliver(r, copy_of(r))
    await deliver(r)
    await deliver(copy_of(r))

    t = await ticket(desk_pool, ticket_id)
    assert (t["status"], t["assignee_id"]) == ("assigned", "ana")
    assert [k for k, _ in await history(desk_pool, ticket_id)] == [
        "created",
        "triaged",
        "assigned",
    ]
    assert await inbox_rows(desk_pool, r) == 0, "idempotent by its ticket, not by an inbox row"


async def test_a_stale_routing_after_a_re_placement_does_not_move_the_ticket_back(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    s = submitted()
    ticket_id = s.data.ticket_id
    await deliver(s)
    r = routed(ticket_id, "ana")
    await deliver(r)
    await deliver(queued(ticket_id, "supervisors"))  # escalated: off ana, to a supervisor
    await deliver(assigned(ticket_id, "sue"))

    await deliver(r)
    await deliver(copy_of(r))

    t = await ticket(desk_pool, ticket_id)
    assert (t["status"], t["assignee_id"]) == ("assigned", "sue")
    assert [k for k, _ in await history(desk_pool, ticket_id)] == [
        "created",
        "triaged",
        "assigned",
        "queued",
        "assigned",
    ]


async def test_a_stale_routing_after_the_ticket_was_resolved_changes_nothing(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    s = submitted()
    ticket_id = s.data.ticket_id
    await deliver(s)
    r = routed(ticket_id, "ana")
    await deliver(r)
    async with desk_pool.acquire() as conn, conn.transaction():
        await handlers.resolve(
            conn,
            ticket_id=ticket_id,
            agent=Caller(agent_id="ana", name="Ana", role=Role.AGENT),
            resolution="Cache cleared",
            public_url="http://desk.test",
            links=handlers.links_for(DESK),
        )

    await deliver(r)

    t = await ticket(desk_pool, ticket_id)
    assert (t["status"], t["assignee_id"]) == ("resolved", "ana")
    assert [k for k, _ in await history(desk_pool, ticket_id)] == [
        "created",
        "triaged",
        "assigned",
        "resolved",
    ]


async def test_a_stale_assignment_after_a_newer_one_is_skipped_by_its_inbox_row(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    s = submitted()
    ticket_id = s.data.ticket_id
    await deliver(s)
    await deliver(routed(ticket_id, None))
    to_ben = assigned(ticket_id, "ben")
    await deliver(to_ben)
    await deliver(queued(ticket_id, "supervisors"))
    await deliver(assigned(ticket_id, "sue"))

    await deliver(to_ben)

    t = await ticket(desk_pool, ticket_id)
    assert (t["status"], t["assignee_id"]) == ("assigned", "sue")
    assert [d.get("agent_id") for k, d in await history(desk_pool, ticket_id)][-3:] == [
        "ben",
        None,
        "sue",
    ]
    assert await inbox_rows(desk_pool, to_ben) == 1


async def test_a_ticket_triage_was_unsure_of_is_flagged_for_review(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    s = submitted()
    ticket_id = s.data.ticket_id
    await deliver(s)
    unsure = msgspec.structs.replace(
        routed(ticket_id, "ana").data,
        confidence=0.41,
        needs_review=True,
        reason="退款 or 投诉?",
        collaborators=("finance",),
    )
    await deliver(new_event(unsure, producer="routing"))

    t = await ticket(desk_pool, ticket_id)
    assert (t["needs_review"], round(t["triage_confidence"], 2), t["triage_reason"]) == (
        True,
        0.41,
        "退款 or 投诉?",
    )
    async with desk_pool.acquire() as conn:
        flagged = await repo.list_tickets(
            conn, assignee_id=None, statuses=["assigned"], limit=500, needs_review=True
        )
    assert ticket_id in {r["ticket_id"] for r in flagged}
    assert all(r["needs_review"] for r in flagged)
    assert t["collaborators"] == ["finance"]
    [triaged] = [d for k, d in await history(desk_pool, ticket_id) if k == "triaged"]
    assert triaged["collaborators"] == ["finance"] and triaged["needs_review"] is True
