"""notify answering on the learner's channel, against the real broker, database, SMTP sink and
the local providers server (WeChat, Weibo and SMS APIs): the events desk, routing and incident
would send are published by the test."""

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage, Message
from typing import Any, cast

import asyncpg
import httpx
import msgspec
import pytest

from deploy.local.harness import wait_for_port
from shared.events import (
    CaseConcluded,
    CaseRemedy,
    Category,
    Channel,
    Envelope,
    EventData,
    IncidentNoticeRequested,
    Learner,
    LearnerContext,
    Mentioned,
    NoticeKind,
    Priority,
    SurveyPeriodicRequested,
    TicketAssigned,
    TicketCreated,
    TicketMerged,
    TicketNoteAdded,
    TicketQueued,
    TicketReplied,
    TicketResolved,
    TicketRouted,
    new_event,
    now,
)
from shared.kafka import ensure_topics, make_broker, outgoing, publish_confirmed
from shared.settings import CommonSettings
from tests.support import RunningStack, ServiceProcess, eventually, port

MERGE_SECONDS = 3
PORTAL = "https://desk.example/t/eyJ0aWNrZXQiOiJ0ZXN0In0.c2lnbmF0dXJl"
WORKSPACE = "https://desk.careloop.example"
STATUS = "https://status.careloop.example/incidents/INC-0007"


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
            "CARELOOP_NOTIFY_DESK_URL": WORKSPACE,
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


async def _publish(settings: CommonSettings, *events: EventData | Envelope[Any]) -> None:
    """Publish each event (a new envelope each), or an envelope as it is."""
    await ensure_topics(settings)
    broker = make_broker(settings, client_id=f"test-notify-{uuid.uuid4().hex[:6]}")
    await broker.start()
    try:
        await publish_confirmed(
            broker,
            [
                outgoing(e if isinstance(e, Envelope) else new_event(e, producer="test"))
                for e in events
            ],
        )
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


# ---- held tickets, incident notices, mentions, merges, case outcomes ------------------------


def _held(t: TicketCreated) -> TicketRouted:
    """routing's ticket.routed for a ticket it held for an open incident."""
    return msgspec.structs.replace(
        _routed(t, agent_id=None), incident_id=uuid.uuid4(), incident_url=STATUS
    )


async def test_a_held_tickets_confirmation_points_to_the_status_page_on_email_and_wechat(
    stack: RunningStack, settings: CommonSettings, providers: str, notify: ServiceProcess
) -> None:
    address = f"learner-{uuid.uuid4().hex[:8]}@example.com"
    openid = f"oWx{uuid.uuid4().hex[:20]}"
    by_mail = _created(
        channel=Channel.EMAIL, learner=Learner(name="Li Lei", email=address), language="en"
    )
    by_wechat = _created(
        channel=Channel.WECHAT, learner=Learner(name="微信用户", wechat_openid=openid)
    )

    await _publish(settings, by_mail, _held(by_mail), by_wechat, _held(by_wechat))

    body = (await _mail(stack, by_mail.number, "confirmation")).get_content()
    assert (
        f"This is a known problem ({by_mail.number}) we are working on; follow it at {STATUS}."
        " No need to write again."
    ) in body
    assert "first response" not in body
    [wechat] = await _sent(providers, channel="wechat", to=openid)
    assert (
        f"我们已知晓此问题（{by_wechat.number}），正在处理，进展请看 {STATUS}。无需重复提交。"
    ) in wechat["text"]
    assert "首次回复" not in wechat["text"]


def _notice(
    learner: Learner, channel: str, *, ticket_id: uuid.UUID | None, locale: str = "zh"
) -> Envelope[IncidentNoticeRequested]:
    """incident's notice as it relays it: the event's id is the notice's id."""
    notice_id = uuid.uuid4()
    words = (
        (
            "【故障通知】PY101 视频无法播放",
            "PY101 的视频暂时无法播放，技术团队正在修复。",
            "最新进展请看：",
        )
        if locale == "zh"
        else (
            "[Known problem] PY101 videos",
            "PY101 videos do not play; we are on it.",
            "Follow the progress at ",
        )
    )
    event = new_event(
        IncidentNoticeRequested(
            ticket_id=ticket_id,
            notice_id=notice_id,
            incident_id=uuid.uuid4(),
            kind=NoticeKind.ANNOUNCEMENT,
            learner=learner,
            channel=channel,
            locale=locale,
            title=words[0],
            body=f"{words[1]}\n\n{words[2]}{STATUS}",
            status_url=STATUS,
            requested_at=now(),
        ),
        producer="incident",
    )
    return msgspec.structs.replace(event, event_id=notice_id)


async def test_incident_notices_reach_learners_with_and_without_a_ticket_once_each(
    stack: RunningStack, settings: CommonSettings, providers: str, notify: ServiceProcess
) -> None:
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    enrolled = f"enrolled-{uuid.uuid4().hex[:8]}@example.com"
    address = f"learner-{uuid.uuid4().hex[:8]}@example.com"
    ticket = _created(
        channel=Channel.EMAIL, learner=Learner(name="Li Lei", email=address), language="en"
    )
    by_sms = _notice(Learner(name="王芳", phone=phone), "sms", ticket_id=None)
    by_mail = _notice(Learner(name="Ann", email=enrolled), "email", ticket_id=None, locale="en")
    about_ticket = _notice(
        Learner(name="Li Lei", email=address), "email", ticket_id=ticket.ticket_id, locale="en"
    )

    # relayed twice, as incident may after a crash: each notice goes once
    await _publish(settings, ticket, _routed(ticket, agent_id="agent-1"))
    await _publish(settings, by_sms, by_mail, about_ticket, by_sms, by_mail, about_ticket)

    [sms] = await _sent(providers, channel="sms", to=phone)
    assert sms["text"] == (
        f"【故障通知】PY101 视频无法播放：PY101 的视频暂时无法播放，技术团队正在修复。 进展：{STATUS}"
    )

    async def to(recipient: str) -> list[Message]:
        return [m for m in stack.mails() if m["To"] == recipient]

    [alone] = await eventually(lambda: to(enrolled), timeout=30)
    assert alone["X-Careloop-Kind"] == "incident_notice" and alone["X-Careloop-Ticket"] is None
    assert alone["In-Reply-To"] is None
    assert alone["Subject"] == "[Known problem] PY101 videos"
    assert cast(EmailMessage, alone).get_content() == (
        "Dear Ann,\n\nPY101 videos do not play; we are on it.\n\n"
        f"Follow the progress at {STATUS}\n\ncareloop support\n"
    )
    threaded = await _mail(stack, ticket.number, "incident_notice")
    root = f"<confirmation.{ticket.ticket_id}.{ticket.ticket_id}@careloop>"
    assert threaded["In-Reply-To"] == root
    assert f"Your request {ticket.number} follows it too." in threaded.get_content()

    conn = await asyncpg.connect(stack.dsn)
    try:
        rows = await conn.fetch(
            "SELECT kind, status FROM notify.deliveries WHERE delivery_key = ANY($1::text[])",
            [f"incident_notice:{e.event_id}" for e in (by_sms, by_mail, about_ticket)],
        )
    finally:
        await conn.close()
    assert sorted((r["kind"], r["status"]) for r in rows) == [("incident_notice", "sent")] * 3
    assert len(await to(enrolled)) == 1


async def test_a_periodic_survey_reaches_the_learner_once_with_its_link(
    stack: RunningStack, settings: CommonSettings, notify: ServiceProcess
) -> None:
    """survey's follow-up programme asks notify to send a learner their periodic survey: one
    e-mail with the link, however often the request is relayed."""
    address = f"periodic-{uuid.uuid4().hex[:8]}@example.com"
    url = f"https://survey.example/s/{uuid.uuid4().hex}"
    asked = SurveyPeriodicRequested(
        survey_id=uuid.uuid4(),
        learner=Learner(name="韩梅梅", email=address),
        locale="zh",
        period="2026-10+3m",
        survey_url=url,
        requested_at=now(),
    )
    event = new_event(asked, producer="survey")
    await _publish(settings, event, event)

    async def to() -> list[Message]:
        return [m for m in stack.mails() if m["To"] == address]

    [mail] = await eventually(to, timeout=30)
    assert mail["Subject"] == "【学习回访】请告诉我们您的学习体验"
    assert mail["X-Careloop-Ticket"] is None
    body = cast(EmailMessage, mail).get_content()
    assert f"填写问卷： {url}" in body and "韩梅梅" in body
    conn = await asyncpg.connect(stack.dsn)
    try:
        status = await conn.fetchval(
            "SELECT status FROM notify.deliveries WHERE delivery_key = $1",
            f"incident_notice:{asked.survey_id}",
        )
    finally:
        await conn.close()
    assert status == "sent" and len(await to()) == 1


async def test_a_ticket_its_incident_resolved_gets_no_confirm_request(
    stack: RunningStack, settings: CommonSettings, notify: ServiceProcess
) -> None:
    address = f"learner-{uuid.uuid4().hex[:8]}@example.com"
    ticket = _created(channel=Channel.WEB, learner=Learner(name="Li", email=address), language="en")
    resolved = TicketResolved(
        ticket_id=ticket.ticket_id,
        number=ticket.number,
        agent_id="sam",
        resolution="The video service is back.",
        confirm_url="https://desk.example/confirm/x",
        created_at=ticket.created_at,
        resolved_at=now(),
        resolution_code="incident",
    )
    # the reply after it, on the same ticket (same partition), shows it was handled
    reply = TicketReplied(
        ticket_id=ticket.ticket_id,
        number=ticket.number,
        reply_id=uuid.uuid4(),
        agent_id="sam",
        body="Sorry for the trouble.",
        first_response=True,
        created_at=ticket.created_at,
        replied_at=now(),
    )

    await _publish(settings, ticket, _held(ticket), resolved, reply)

    await _mail(stack, ticket.number, "reply")
    kinds = [d["kind"] for d in await _deliveries(stack, ticket.ticket_id)]
    assert "confirm_request" not in kinds and "reply" in kinds


async def test_a_note_emails_each_mentioned_agent_once_with_the_workspace_link(
    stack: RunningStack, settings: CommonSettings, notify: ServiceProcess
) -> None:
    ana = f"ana-{uuid.uuid4().hex[:8]}@careloop.example"
    ticket = _created(channel=Channel.WEB, learner=Learner(name="李雷", email="li@example.com"))
    note = new_event(
        TicketNoteAdded(
            ticket_id=ticket.ticket_id,
            number=ticket.number,
            note_id=uuid.uuid4(),
            agent_id="gus",
            body="@ana 请看一下退款记录 <订单 #4411>\n学员已经等了三天。",
            mentions=(
                Mentioned(agent_id="ana", name="Ana", email=ana),
                Mentioned(agent_id="bo", name="Bo"),  # no address: nothing to send
            ),
            added_at=now(),
        ),
        producer="desk",
    )

    await _publish(settings, ticket, _routed(ticket, agent_id="gus"), note, note)

    async def to_ana() -> list[Message]:
        return [m for m in stack.mails() if m["To"] == ana]

    [mail] = await eventually(to_ana, timeout=30)
    assert mail["X-Careloop-Kind"] == "mention"
    assert mail["Subject"] == f"[{ticket.number}] gus 在内部备注中提到了您"
    assert mail["Reply-To"] is None and mail["Message-ID"].endswith("@agents.careloop>")
    body = cast(EmailMessage, mail).get_content()
    assert "@ana 请看一下退款记录 <订单 #4411>\n学员已经等了三天。" in body
    assert f"在工作台中查看：{WORKSPACE}/tickets/{ticket.number}" in body
    mentions = [d for d in await _deliveries(stack, ticket.ticket_id) if d["kind"] == "mention"]
    assert len(mentions) == 1


async def test_the_learner_of_a_merged_duplicate_is_told_on_their_channel(
    stack: RunningStack, settings: CommonSettings, providers: str, notify: ServiceProcess
) -> None:
    openid = f"oWx{uuid.uuid4().hex[:20]}"
    duplicate = _created(
        channel=Channel.WECHAT, learner=Learner(name="微信用户", wechat_openid=openid)
    )
    merged = TicketMerged(
        ticket_id=duplicate.ticket_id,
        number=duplicate.number,
        into_ticket_id=uuid.uuid4(),
        into_number="CL-000702",
        by="ana",
        moved=2,
        portal_url="https://desk.example/t/into",
        merged_at=now(),
    )

    await _publish(settings, duplicate, _routed(duplicate, agent_id="ana"), merged)

    # the confirmation and the merge notice, in whichever order the sends finished
    sent = await _sent(providers, channel="wechat", to=openid, count=2)
    told = [m["text"] for m in sent if "已合并" in m["text"]]
    assert told == [
        f"微信用户，您好！您的工单 {duplicate.number} 与 CL-000702 是同一个问题，我们已合并，"
        "后续将在 CL-000702 中回复您：https://desk.example/t/into"
    ]


async def test_a_case_outcome_renders_on_every_channel(
    stack: RunningStack, settings: CommonSettings, providers: str, notify: ServiceProcess
) -> None:
    suffix = uuid.uuid4().hex[:12]
    learners = {
        "email": Learner(name="Li Lei", email=f"case-{suffix}@example.com"),
        "wechat": Learner(name="微信用户", wechat_openid=f"oWx{suffix}"),
        "weibo": Learner(name="微博用户", weibo_uid=f"50{uuid.uuid4().int % 10**8:08d}"),
        "sms": Learner(name="来电用户", phone=f"+86137{uuid.uuid4().int % 10**8:08d}"),
    }
    channels = {"email": Channel.EMAIL, "wechat": Channel.WECHAT, "weibo": Channel.WEIBO}
    tickets = {
        name: _created(channel=channels.get(name, Channel.HOTLINE), learner=learner)
        for name, learner in learners.items()
    }
    remedy = CaseRemedy(remedy_id=uuid.uuid4(), type="lessons", lessons=2, course_id="PY101")
    events: list[EventData] = []
    for t in tickets.values():
        concluded = CaseConcluded(
            ticket_id=t.ticket_id,
            number=t.number,
            case_id=uuid.uuid4(),
            finding="upheld",
            outcome="老师迟到属实，我们已提醒授课老师。",
            remedies=(remedy,),
            portal_url=PORTAL,
            concluded_at=now(),
        )
        events += [t, _routed(t, agent_id="ana"), concluded]

    await _publish(settings, *events)

    mail = await _mail(stack, tickets["email"].number, "case_outcome")
    assert mail["Subject"] == f"[{tickets['email'].number}] 投诉处理结果：投诉属实"
    assert "我们为您提供：补课 2 节 (PY101)。" in mail.get_content()
    for channel, to in (
        ("wechat", learners["wechat"].wechat_openid),
        ("weibo", learners["weibo"].weibo_uid),
        ("sms", learners["sms"].phone),
    ):
        assert to is not None
        _, outcome = await _sent(providers, channel=channel, to=to, count=2)
        assert f"工单 {tickets[channel].number}" in outcome["text"]
        assert "投诉属实" in outcome["text"] and "补课 2 节 (PY101)" in outcome["text"]
