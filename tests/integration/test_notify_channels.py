"""notify answering on the learner's channel, against the real broker, database, SMTP sink and
the local providers server (WeChat, Weibo and SMS APIs): the events desk and routing would
send are published by the test."""

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage, Message
from typing import Any, cast

import asyncpg
import httpx
import pytest

from deploy.local.harness import wait_for_port
from shared.events import (
    Category,
    Channel,
    EventData,
    Learner,
    LearnerContext,
    Priority,
    TicketAssigned,
    TicketCreated,
    TicketQueued,
    TicketReplied,
    TicketRouted,
    new_event,
    now,
)
from shared.kafka import ensure_topics, make_broker, outgoing, publish_confirmed
from shared.settings import CommonSettings
from tests.support import RunningStack, ServiceProcess, eventually, port

MERGE_SECONDS = 3
PORTAL = "https://desk.example/t/eyJ0aWNrZXQiOiJ0ZXN0In0.c2lnbmF0dXJl"


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local providers server, as `bin/careloop run` starts it."""
    providers_port = port(22695)
    log = tmp_path_factory.mktemp("providers") / "providers.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.local.providers", "--port", str(providers_port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(providers_port)
        yield f"http://127.0.0.1:{providers_port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def notify(
    stack: RunningStack, providers: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "notify",
        port(22184),
        {
            **stack.env,
            "CARELOOP_NOTIFY_HTTP_PORT": str(port(22184)),
            "CARELOOP_NOTIFY_TRIAGE_GRACE_SECONDS": "2",
            "CARELOOP_NOTIFY_ARTICLES_GRACE_SECONDS": "0",  # no knowledge service here
            "CARELOOP_NOTIFY_PROGRESS_MERGE_SECONDS": str(MERGE_SECONDS),
            "CARELOOP_NOTIFY_REPLY_TO": "careloop <help@careloop.example>",
            "CARELOOP_WECHAT_API_BASE": providers,
            "CARELOOP_WEIBO_API_BASE": providers,
            "CARELOOP_SMS_API_BASE": providers,
        },
        tmp_path_factory.mktemp("notify") / "notify.log",
    )
    service.start()
    try:
        service.wait_healthy()
        yield service
    finally:
        service.stop()


def _number() -> str:
    return f"CL-{uuid.uuid4().int % 10**6:06d}"


def _created(
    *,
    channel: Channel,
    learner: Learner,
    language: str = "zh",
    context: LearnerContext | None = None,
) -> TicketCreated:
    return TicketCreated(
        ticket_id=uuid.uuid4(),
        number=_number(),
        channel=channel,
        learner=learner,
        subject="视频无法播放" if language == "zh" else "The video will not play",
        description="第三章的视频一直在加载" if language == "zh" else "Chapter 3 keeps loading",
        language=language,
        created_at=now(),
        learner_context=context,
        portal_url=PORTAL,
    )


def _routed(t: TicketCreated, *, agent_id: str | None) -> TicketRouted:
    return TicketRouted(
        ticket_id=t.ticket_id,
        channel=t.channel,
        category=Category.TECHNICAL,
        priority=Priority.HIGH,
        team="tech",
        language=t.language,
        first_response_due_at=t.created_at + timedelta(hours=2),
        resolution_due_at=t.created_at + timedelta(hours=24),
        agent_id=agent_id,
        routed_at=now(),
    )


async def _publish(settings: CommonSettings, *events: EventData) -> None:
    await ensure_topics(settings)
    broker = make_broker(settings, client_id=f"test-notify-{uuid.uuid4().hex[:6]}")
    await broker.start()
    try:
        await publish_confirmed(broker, [outgoing(new_event(e, producer="test")) for e in events])
    finally:
        await broker.stop()


async def _sent(providers: str, *, channel: str, to: str, count: int = 1) -> list[dict[str, Any]]:
    async def received() -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{providers}/_sent", params={"channel": channel, "to": to})
        messages: list[dict[str, Any]] = answer.json()
        return messages if len(messages) >= count else []

    messages: list[dict[str, Any]] = await eventually(received, timeout=30)
    return messages


async def _mail(stack: RunningStack, number: str, kind: str) -> EmailMessage:
    """The one e-mail of `kind` about ticket `number`, once it arrived."""

    async def received() -> list[Message]:
        return [
            m
            for m in stack.mails()
            if m["X-Careloop-Ticket"] == number and m["X-Careloop-Kind"] == kind
        ]

    [mail] = await eventually(received, timeout=30)
    return cast(EmailMessage, mail)  # read with the default policy


async def _deliveries(stack: RunningStack, ticket_id: uuid.UUID) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.dsn)
    try:
        return await conn.fetch(
            "SELECT kind, channel, status, sent_at FROM notify.deliveries"
            " WHERE ticket_id = $1 ORDER BY id",
            ticket_id,
        )
    finally:
        await conn.close()


async def test_a_wechat_ticket_is_answered_on_wechat_in_chinese_with_the_expected_wait(
    stack: RunningStack, settings: CommonSettings, providers: str, notify: ServiceProcess
) -> None:
    openid = f"oWx{uuid.uuid4().hex[:20]}"
    ticket = _created(
        channel=Channel.WECHAT, learner=Learner(name="微信用户", wechat_openid=openid)
    )

    await _publish(settings, ticket, _routed(ticket, agent_id=None))

    [confirmation] = await _sent(providers, channel="wechat", to=openid)
    text = confirmation["text"]
    assert f"工单号 {ticket.number}" in text
    assert "优先级：高。正在排队等候客服专员" in text
    assert "我们将在 2 小时内（北京时间 " in text
    assert PORTAL in text

    reply = TicketReplied(
        ticket_id=ticket.ticket_id,
        number=ticket.number,
        reply_id=uuid.uuid4(),
        agent_id="agent-1",
        body="请清除浏览器缓存后重试。",
        first_response=True,
        created_at=ticket.created_at,
        replied_at=now(),
        portal_url=PORTAL,
    )
    await _publish(settings, reply)

    _, answer = await _sent(providers, channel="wechat", to=openid, count=2)
    assert answer["text"].startswith(f"工单 {ticket.number} 的回复：\n请清除浏览器缓存后重试。")
    assert [
        (d["kind"], d["channel"], d["status"]) for d in await _deliveries(stack, ticket.ticket_id)
    ] == [
        ("confirmation", "wechat", "sent"),
        ("reply", "wechat", "sent"),
    ]


async def test_an_email_ticket_gets_reply_to_the_number_in_the_subject_and_one_thread(
    stack: RunningStack, settings: CommonSettings, notify: ServiceProcess
) -> None:
    address = f"learner-{uuid.uuid4().hex[:8]}@example.com"
    ticket = _created(
        channel=Channel.EMAIL, learner=Learner(name="Li Lei", email=address), language="en"
    )

    await _publish(settings, ticket, _routed(ticket, agent_id="agent-7"))
    confirmation = await _mail(stack, ticket.number, "confirmation")

    root = f"<confirmation.{ticket.ticket_id}.{ticket.ticket_id}@careloop>"
    assert confirmation["Reply-To"] == "careloop <help@careloop.example>"
    assert confirmation["Subject"] == f"[{ticket.number}] We have received your request"
    assert confirmation["Message-ID"] == root
    body = confirmation.get_content()
    assert "Priority: high. It is with one of our agents." in body
    assert "Beijing time" in body and PORTAL in body

    reply_id = uuid.uuid4()
    await _publish(
        settings,
        TicketReplied(
            ticket_id=ticket.ticket_id,
            number=ticket.number,
            reply_id=reply_id,
            agent_id="agent-7",
            body="Please clear your browser cache.",
            first_response=True,
            created_at=ticket.created_at,
            replied_at=now(),
            portal_url=PORTAL,
        ),
    )
    reply = await _mail(stack, ticket.number, "reply")
    assert reply["Subject"].startswith(f"[{ticket.number}] Re: ")
    assert reply["Message-ID"] == f"<reply.{reply_id}.{ticket.ticket_id}@careloop>"
    assert (reply["In-Reply-To"], reply["References"]) == (root, root)


async def test_a_queued_ticket_later_placed_is_told_the_expected_wait_then_who_has_it(
    stack: RunningStack, settings: CommonSettings, notify: ServiceProcess
) -> None:
    address = f"learner-{uuid.uuid4().hex[:8]}@example.com"
    ticket = _created(channel=Channel.WEB, learner=Learner(name="李雷", email=address))
    await _publish(settings, ticket, _routed(ticket, agent_id="agent-1"))
    await _mail(stack, ticket.number, "confirmation")
    [confirmation_sent] = [d["sent_at"] for d in await _deliveries(stack, ticket.ticket_id)]

    # The agent went offline: the ticket waits in the queue again, then another agent takes it.
    queued = TicketQueued(
        ticket_id=ticket.ticket_id, team="tech", priority=Priority.HIGH, queued_at=now()
    )
    assigned = TicketAssigned(
        ticket_id=ticket.ticket_id,
        agent_id="agent-2",
        team="tech",
        priority=Priority.HIGH,
        assigned_at=now(),
    )

    async def after_the_merge_window() -> bool:
        return now() - confirmation_sent > timedelta(seconds=MERGE_SECONDS + 0.5)

    await eventually(after_the_merge_window, timeout=MERGE_SECONDS + 5)
    await _publish(settings, queued)
    wait = await _mail(stack, ticket.number, "queued")
    assert wait["Subject"] == f"[{ticket.number}] 您的问题正在排队处理"
    assert "正在排队等候客服专员。\n预计等待约 " in wait.get_content()
    assert "北京时间" in wait.get_content() and PORTAL in wait.get_content()

    await _publish(settings, assigned)
    placed = await _mail(stack, ticket.number, "assigned")
    assert "已交由客服专员处理" in placed.get_content()


async def test_an_assignment_right_after_the_confirmation_sends_nothing_more(
    stack: RunningStack, settings: CommonSettings, notify: ServiceProcess
) -> None:
    address = f"learner-{uuid.uuid4().hex[:8]}@example.com"
    ticket = _created(channel=Channel.WEB, learner=Learner(name="Li", email=address), language="en")
    assigned = TicketAssigned(
        ticket_id=ticket.ticket_id,
        agent_id="agent-3",
        team="tech",
        priority=Priority.HIGH,
        assigned_at=now(),
    )

    await _publish(settings, ticket, _routed(ticket, agent_id=None), assigned)

    confirmation = await _mail(stack, ticket.number, "confirmation")
    # Both events came within the merge window: the confirmation says who has the ticket.
    assert "It is with one of our agents." in confirmation.get_content()
    assert [d["kind"] for d in await _deliveries(stack, ticket.ticket_id)] == ["confirmation"]


async def test_a_hotline_caller_is_answered_by_sms_and_a_vip_preferring_wechat_on_wechat(
    stack: RunningStack, settings: CommonSettings, providers: str, notify: ServiceProcess
) -> None:
    phone = f"+86138{uuid.uuid4().int % 10**8:08d}"
    openid = f"oWx{uuid.uuid4().hex[:20]}"
    caller = _created(channel=Channel.HOTLINE, learner=Learner(name="来电用户", phone=phone))
    vip = _created(
        channel=Channel.EMAIL,
        learner=Learner(name="Ann", email="ann@example.com", wechat_openid=openid),
        language="zh",
        context=LearnerContext(
            learner_id="L-1001",
            locale="en",
            tier="vip",
            preferred_channel=Channel.WECHAT,
            updated_at=now(),
        ),
    )

    await _publish(
        settings, caller, _routed(caller, agent_id="agent-1"), vip, _routed(vip, agent_id=None)
    )

    [sms] = await _sent(providers, channel="sms", to=phone)
    assert sms["text"].startswith(f"工单{caller.number}已受理（优先级：高），已交由客服专员处理")
    assert sms["text"].endswith(f"查看进度：{PORTAL}")
    [wechat] = await _sent(providers, channel="wechat", to=openid)
    assert wechat["text"].startswith(f'Hello Ann, we have received "{vip.subject}"')


async def test_an_anonymous_suggestion_gets_no_confirmation(
    stack: RunningStack, settings: CommonSettings, notify: ServiceProcess
) -> None:
    anonymous = _created(channel=Channel.SUGGESTION_BOX, learner=Learner(name="匿名"))

    await _publish(settings, anonymous, _routed(anonymous, agent_id=None))

    async def recorded() -> asyncpg.Record | None:
        conn = await asyncpg.connect(stack.dsn)
        try:
            return await conn.fetchrow(
                "SELECT reply_channel, priority FROM notify.recipients WHERE ticket_id = $1",
                anonymous.ticket_id,
            )
        finally:
            await conn.close()

    async def handled() -> asyncpg.Record | None:
        row = await recorded()
        return row if row is not None and row["priority"] is not None else None

    row = await eventually(handled, timeout=30)
    assert row["reply_channel"] is None
    assert await _deliveries(stack, anonymous.ticket_id) == []


async def test_a_wechat_learner_out_of_the_48_hour_window_is_given_up_at_once(
    stack: RunningStack, settings: CommonSettings, providers: str, notify: ServiceProcess
) -> None:
    openid = f"oWx{uuid.uuid4().hex[:20]}"
    async with httpx.AsyncClient() as client:
        await client.post(f"{providers}/_control", json={"wechat_out_of_window": [openid]})
    ticket = _created(
        channel=Channel.WECHAT, learner=Learner(name="微信用户", wechat_openid=openid)
    )

    await _publish(settings, ticket, _routed(ticket, agent_id=None))

    async def given_up() -> asyncpg.Record | None:
        conn = await asyncpg.connect(stack.dsn)
        try:
            return await conn.fetchrow(
                "SELECT attempts, last_error FROM notify.deliveries"
                " WHERE ticket_id = $1 AND status = 'failed'",
                ticket.ticket_id,
            )
        finally:
            await conn.close()

    failed = await eventually(given_up, timeout=30)
    assert failed["attempts"] == 1
    assert "48 hours" in failed["last_error"]
