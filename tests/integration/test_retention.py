"""Retention (R7.3) against the real database: closed tickets are archived after the archive
period, and after the retention period their learner's personal data is pseudonymised —
name, contacts, LMS context, attachments, and contacts inside the text — once, however often
the job runs; a ticket closed more recently is left as it is. The LMS's snapshot of a learner
no ticket names any more goes too."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.desk import handlers, repo, retention
from services.desk.domain import Caller, pseudonym
from services.desk.settings import DeskSettings
from shared.agents import Role
from shared.db import create_pool
from shared.events import (
    Attachment,
    Channel,
    Envelope,
    Learner,
    LearnerSnapshot,
    TicketSubmitted,
    new_event,
    now,
)
from shared.inbox import EventConsumer
from shared.kafka import make_broker
from shared.migrate import migrate
from shared.settings import CommonSettings
from tests.integration.test_desk_events import record
from tests.support import RunningStack

DESK = DeskSettings(link_secret="test-secret")  # archive after 90 days, pseudonymise after 730
ANA = Caller(agent_id="ana", name="Ana", role=Role.SUPERVISOR, teams=("tech_support",))
Deliver = Callable[..., Coroutine[Any, Any, None]]


@pytest.fixture(scope="module")
async def desk_pool(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(migrate, stack.dsn, "desk")
    pool = await create_pool(stack.dsn, schema="desk")
    yield pool
    await pool.close()


@pytest.fixture
def deliver(desk_pool: asyncpg.Pool, settings: CommonSettings) -> Deliver:
    consumer = EventConsumer(
        name="desk",
        handlers=handlers.event_handlers(DESK),
        pool=lambda: desk_pool,
        broker=make_broker(settings, client_id="test-retention"),
        idempotent=frozenset(handlers.IDEMPOTENT),
    )

    async def deliver(*events: Envelope[Any]) -> None:
        await consumer.consume([record(e) for e in events])

    return deliver


def message(
    learner: Learner, text: str, *, reply_to: str | None = None
) -> Envelope[TicketSubmitted]:
    return new_event(
        TicketSubmitted(
            ticket_id=uuid.uuid4(),
            channel=Channel.EMAIL,
            learner=learner,
            subject="退款问题",
            description=text,
            language="zh",
            submitted_at=now(),
            message_id=uuid.uuid4(),
            reply_to=reply_to,
            attachments=(
                Attachment(
                    name="id-card.jpg",
                    content_type="image/jpeg",
                    size=1000,
                    url="https://files.example.com/a",
                ),
            ),
        ),
        producer="intake",
    )


async def worked_ticket(deliver: Deliver, pool: asyncpg.Pool, *, closed_days_ago: int) -> uuid.UUID:
    """A learner's ticket with a follow-up, a reply and a note, closed `closed_days_ago`."""
    tag = uuid.uuid4().hex[:6]
    learner = Learner(
        name=f"王小明{tag}",
        email=f"wxm.{tag}@example.com",
        phone="+8613800138000",
        learner_id=f"L-{tag}",
    )
    first = message(learner, f"我的退款还没到账，请打 13800138000 或发邮件 wxm.{tag}@example.com")
    await deliver(first)
    ticket_id = first.data.ticket_id
    number = await pool.fetchval("SELECT number FROM tickets WHERE ticket_id = $1", ticket_id)
    await deliver(message(learner, "补充：我的备用电话 +86 139 1234 5678", reply_to=number))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE tickets SET status = 'assigned', assignee_id = 'ana', team = 'tech_support' "
            "WHERE ticket_id = $1",
            ticket_id,
        )
        await handlers.reply(
            conn,
            ticket_id=ticket_id,
            agent=ANA,
            body=f"已给 wxm.{tag}@example.com 退款",
            links=handlers.links_for(DESK),
        )
        await handlers.add_note(conn, ticket_id=ticket_id, agent=ANA, body="学员电话 13800138000")
        await conn.execute(
            "UPDATE tickets SET status = 'closed', closed_at = now() - make_interval(days => $2) "
            "WHERE ticket_id = $1",
            ticket_id,
            closed_days_ago,
        )
    return ticket_id


async def texts(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> dict[str, Any]:
    t = await pool.fetchrow("SELECT * FROM tickets WHERE ticket_id = $1", ticket_id)
    assert t is not None
    return {
        "learner": t["learner"],
        "learner_id": t["learner_id"],
        "description": t["description"],
        "attachments": t["attachments"],
        "archived": t["archived_at"] is not None,
        "pseudonymised_at": t["pseudonymised_at"],
        "messages": [
            (json.dumps(r["learner"], ensure_ascii=False), r["body"], r["attachments"])
            for r in await pool.fetch("SELECT * FROM messages WHERE ticket_id = $1", ticket_id)
        ],
        "replies": [
            r["body"]
            for r in await pool.fetch("SELECT body FROM replies WHERE ticket_id = $1", ticket_id)
        ],
        "notes": [
            r["body"]
            for r in await pool.fetch("SELECT body FROM notes WHERE ticket_id = $1", ticket_id)
        ],
    }


async def run(pool: asyncpg.Pool) -> tuple[int, int]:
    async with pool.acquire() as conn, conn.transaction():
        return await retention.run_once(conn, DESK, limit=10_000)


async def test_retention_archives_then_pseudonymises_closed_tickets_once(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    expired = await worked_ticket(deliver, desk_pool, closed_days_ago=800)
    archived = await worked_ticket(deliver, desk_pool, closed_days_ago=100)
    recent = await worked_ticket(deliver, desk_pool, closed_days_ago=1)
    learner_ids = [
        await desk_pool.fetchval("SELECT learner_id FROM tickets WHERE ticket_id = $1", t)
        for t in (expired, recent)
    ]
    async with desk_pool.acquire() as conn:
        await repo.upsert_learners(
            conn,
            [
                LearnerSnapshot(learner_id=i, name="王小明", updated_at=now() - timedelta(days=800))
                for i in learner_ids
            ],
        )
    archived_before = await texts(desk_pool, archived)
    recent_before = await texts(desk_pool, recent)

    await run(desk_pool)

    gone = await texts(desk_pool, expired)
    name = pseudonym(expired)
    assert gone["learner"] == {"name": name}
    assert (gone["learner_id"], gone["attachments"], gone["archived"]) == (None, [], True)
    assert gone["description"].startswith("我的退款还没到账，请打 [phone] 或发邮件 [email]")
    assert gone["messages"] == [
        (json.dumps({"name": name}, ensure_ascii=False), "补充：我的备用电话 [phone]", [])
    ]
    assert gone["replies"] == ["已给 [email] 退款"]
    assert gone["notes"] == ["学员电话 [phone]"]
    assert {**await texts(desk_pool, archived), "archived": False} == archived_before
    assert (await texts(desk_pool, archived))["archived"]
    assert await texts(desk_pool, recent) == recent_before
    snapshots = await desk_pool.fetch(
        "SELECT learner_id FROM learners WHERE learner_id = ANY($1::text[])", learner_ids
    )
    assert [r["learner_id"] for r in snapshots] == learner_ids[1:]

    await run(desk_pool)

    assert await texts(desk_pool, expired) == gone
    kinds = await desk_pool.fetch(
        "SELECT kind FROM history WHERE ticket_id = $1 AND kind IN ('archived', 'pseudonymised')",
        expired,
    )
    assert sorted(k["kind"] for k in kinds) == ["archived", "pseudonymised"]
