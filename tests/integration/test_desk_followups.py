"""desk decides where a learner's message goes, against the real database: a follow-up on its
ticket (once, however often it is delivered), a reopening, a new ticket linked to the first
for a stranger or a closed ticket, a thread by contact for WeChat, one ticket for the same
text on two channels; and learner snapshots matched to tickets, the newest winning.

Records go straight to desk's consumer, as Kafka delivers them (see test_desk_events).
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.desk import handlers, repo
from services.desk.domain import Caller
from services.desk.settings import DeskSettings
from shared.agents import Role
from shared.db import create_pool
from shared.events import (
    Channel,
    Envelope,
    Learner,
    TicketSubmitted,
    decode,
    decode_snapshot,
    new_event,
    now,
)
from shared.inbox import EventConsumer
from shared.kafka import make_broker
from shared.migrate import migrate
from shared.settings import CommonSettings
from tests.integration.test_desk_events import record
from tests.support import RunningStack

DESK = DeskSettings(link_secret="test-secret")
Deliver = Callable[..., Coroutine[Any, Any, None]]
AGENT = Caller(agent_id="ana", name="Ana", role=Role.AGENT)


@pytest.fixture(scope="module")
async def desk_pool(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(migrate, stack.dsn, "desk")
    pool = await create_pool(stack.service_dsn("desk"), schema="desk")
    yield pool
    await pool.close()


@pytest.fixture
def deliver(desk_pool: asyncpg.Pool, settings: CommonSettings) -> Deliver:
    consumer = EventConsumer(
        name="desk",
        handlers=handlers.event_handlers(DESK),
        pool=lambda: desk_pool,
        broker=make_broker(settings, client_id="test-desk-followups"),
        idempotent=frozenset(handlers.IDEMPOTENT),
    )

    async def deliver(*events: Envelope[Any]) -> None:
        await consumer.consume([record(e) for e in events])

    return deliver


def unique() -> str:
    return uuid.uuid4().hex[:10]


def message(
    *,
    ticket_id: uuid.UUID | None = None,
    channel: Channel = Channel.EMAIL,
    learner: Learner,
    text: str,
    message_id: uuid.UUID | None = None,
    reply_to: str | None = None,
    by_contact: bool = False,
) -> Envelope[TicketSubmitted]:
    return new_event(
        TicketSubmitted(
            ticket_id=ticket_id or uuid.uuid4(),
            channel=channel,
            learner=learner,
            subject=text[:40],
            description=text,
            language="zh",
            submitted_at=now(),
            message_id=message_id or uuid.uuid4(),
            reply_to=reply_to,
            by_contact=by_contact,
        ),
        producer="intake",
    )


async def staged(pool: asyncpg.Pool, event_type: str, key: uuid.UUID) -> list[Any]:
    """The events of `event_type` desk staged for a ticket, decoded (no relay runs here)."""
    rows = await pool.fetch(
        "SELECT payload FROM outbox WHERE key = $1 AND event_type = $2 ORDER BY id",
        str(key),
        event_type,
    )
    return [decode(bytes(r["payload"])).data for r in rows]


async def messages(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT body FROM messages WHERE ticket_id = $1 ORDER BY created_at", ticket_id
    )
    return [r["body"] for r in rows]


async def test_a_chat_conversation_is_one_ticket_and_each_message_is_appended_once(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    learner = Learner(name="王芳", learner_id=f"L-{unique()}")
    conversation = uuid.uuid4()
    first = message(ticket_id=conversation, channel=Channel.CHAT, learner=learner, text="你好")
    second = message(
        ticket_id=conversation, channel=Channel.CHAT, learner=learner, text="直播课进不去"
    )

    await deliver(first, second)
    await deliver(second, first)  # redelivered, in any order

    ticket = await repo.get_ticket(desk_pool, conversation)
    assert ticket is not None and ticket["description"] == "你好"
    assert await messages(desk_pool, conversation) == ["直播课进不去"]
    [received] = await staged(desk_pool, "ticket.message_received", conversation)
    assert (received.body, received.reopened, received.number) == (
        "直播课进不去",
        False,
        ticket["number"],
    )
    assert received.portal_url.startswith(f"{DESK.public_url}/t/")
    assert len(await staged(desk_pool, "ticket.created", conversation)) == 1


async def test_a_reply_on_a_resolved_ticket_reopens_it(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    learner = Learner(name="Li Lei", email=f"{unique()}@example.com")
    opened = message(learner=learner, text=f"Refund for order {unique()}")
    await deliver(opened)
    ticket_id = opened.data.ticket_id
    async with desk_pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE tickets SET status = 'assigned', assignee_id = 'ana' WHERE ticket_id = $1",
            ticket_id,
        )
        await handlers.resolve(
            conn,
            ticket_id=ticket_id,
            agent=AGENT,
            resolution="Refunded",
            public_url=DESK.public_url,
            links=handlers.links_for(DESK),
        )

    await deliver(message(ticket_id=ticket_id, learner=learner, text="The money never arrived"))

    ticket = await repo.get_ticket(desk_pool, ticket_id)
    assert ticket is not None and ticket["status"] == "reopened"
    [reopened] = await staged(desk_pool, "ticket.reopened", ticket_id)
    assert (reopened.reason, reopened.previous_agent_id) == ("learner_message", "ana")
    [received] = await staged(desk_pool, "ticket.message_received", ticket_id)
    assert received.reopened is True


async def test_a_stranger_replying_to_a_ticket_number_gets_a_new_linked_ticket(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    owner = Learner(name="Li Lei", email=f"{unique()}@example.com")
    opened = message(learner=owner, text=f"Certificate missing {unique()}")
    await deliver(opened)
    first = await repo.get_ticket(desk_pool, opened.data.ticket_id)
    assert first is not None

    stranger = Learner(name="Someone", email=f"{unique()}@example.net")
    reply = message(learner=stranger, text="I have the same problem", reply_to=first["number"])
    await deliver(reply)
    await deliver(reply)

    assert await messages(desk_pool, first["ticket_id"]) == []
    linked = await desk_pool.fetch(
        "SELECT * FROM tickets WHERE related_ticket_id = $1", first["ticket_id"]
    )
    assert [(t["description"], json.loads(json.dumps(t["learner"]))["email"]) for t in linked] == [
        ("I have the same problem", stranger.email)
    ]
    [created] = await staged(desk_pool, "ticket.created", linked[0]["ticket_id"])
    assert created.related_ticket_id == first["ticket_id"]


async def test_wechat_messages_continue_the_open_ticket_and_after_it_closed_start_a_new_one(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    learner = Learner(name="微信用户", wechat_openid=f"o{unique()}")

    def wechat(text: str) -> Envelope[TicketSubmitted]:
        return message(channel=Channel.WECHAT, learner=learner, text=text, by_contact=True)

    first = wechat("课程回放打不开")
    await deliver(first)
    await deliver(wechat("还是打不开，急"))
    ticket_id = first.data.ticket_id
    assert await messages(desk_pool, ticket_id) == ["还是打不开，急"]

    await desk_pool.execute("UPDATE tickets SET status = 'closed' WHERE ticket_id = $1", ticket_id)
    later = wechat("另一个问题：发票")
    await deliver(later)

    tickets = await desk_pool.fetch(
        "SELECT ticket_id, related_ticket_id, description FROM tickets "
        "WHERE learner->>'wechat_openid' = $1 ORDER BY created_at",
        learner.wechat_openid,
    )
    assert [(t["description"], t["related_ticket_id"]) for t in tickets] == [
        ("课程回放打不开", None),
        ("另一个问题：发票", None),  # names no ticket: a new question, not a reply
    ]


async def test_the_same_text_on_two_channels_is_one_ticket(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    learner = Learner(name="Li Lei", email=f"{unique()}@example.com")
    text = f"I was charged twice for order {unique()}"
    by_mail = message(learner=learner, text=text)
    by_form = new_event(
        TicketSubmitted(
            ticket_id=uuid.uuid4(),
            channel=Channel.WEB,
            learner=learner,
            subject="Charged twice",
            description=f"  {text} ",
            language="en",
            submitted_at=now(),
        ),
        producer="intake",
    )

    await deliver(by_mail)
    await deliver(by_form)
    await deliver(by_form)  # redelivered: noted once

    assert await repo.get_ticket(desk_pool, by_form.data.ticket_id) is None
    rows = await desk_pool.fetch(
        "SELECT kind, detail FROM history WHERE ticket_id = $1 ORDER BY id",
        by_mail.data.ticket_id,
    )
    assert [(r["kind"], r["detail"].get("channel")) for r in rows] == [
        ("created", None),
        ("also_received", "web"),
    ]


async def test_a_ticket_carries_the_learner_the_lms_described_and_the_newest_snapshot_wins(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    learner_id = f"L-{unique()}"
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    at = now()

    def snapshot(tier: str, updated_at: Any) -> Any:
        return decode_snapshot(
            json.dumps(
                {
                    "learner_id": learner_id,
                    "name": "张伟",
                    "phone": phone[3:],  # the LMS writes it without the country code
                    "tier": tier,
                    "courses": [
                        {"course_id": "py-101", "progress_pct": 40, "next_class_at": at.isoformat()}
                    ],
                    "updated_at": updated_at.isoformat(),
                }
            )
        )

    async with desk_pool.acquire() as conn, conn.transaction():
        assert await repo.upsert_learners(conn, [snapshot("vip", at)]) == 1
        assert (
            await repo.upsert_learners(conn, [snapshot("standard", at - timedelta(hours=1))]) == 0
        )

    call = message(channel=Channel.HOTLINE, learner=Learner(name=phone, phone=phone), text="电话")
    await deliver(call)

    ticket = await repo.get_ticket(desk_pool, call.data.ticket_id)
    assert ticket is not None and ticket["learner_id"] == learner_id
    [created] = await staged(desk_pool, "ticket.created", call.data.ticket_id)
    assert (created.learner.learner_id, created.learner_context.tier) == (learner_id, "vip")
    assert [c.course_id for c in created.learner_context.courses] == ["py-101"]
    [mine] = await repo.tickets_of_learner(desk_pool, learner_id)
    assert mine["ticket_id"] == call.data.ticket_id
