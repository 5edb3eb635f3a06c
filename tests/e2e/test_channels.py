"""The channels end to end, through public interfaces only: a learner e-mails support, gets the
confirmation, replies to it, and the reply lands on the ticket; a resolved ticket is reopened by
a WeChat message; a hotline call record becomes a ticket matched to the learner the LMS
described, answered by SMS."""

import asyncio
import hashlib
import json
import re
import smtplib
import time
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared import topics
from shared.signing import sign
from tests.e2e.conftest import Platform
from tests.support import eventually

SAM = {"Authorization": "Bearer e2e-sam-token"}
WECHAT_TOKEN = "careloop-local-wechat-token"  # the local run's default
CALLCENTRE_SECRET = "demo-callcentre-secret"  # the local run's demo secret for `callcentre`


async def ticket(client: httpx.AsyncClient, platform: Platform, ref: str) -> dict[str, Any] | None:
    r = await client.get(f"{platform.url('desk')}/v1/tickets/{ref}", headers=SAM)
    return r.json() if r.status_code == 200 else None


def send_mail(platform: Platform, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", platform.stack.stack.mail_gateway_port, timeout=10) as smtp:
        smtp.send_message(message)


async def test_a_learner_emails_support_and_her_reply_to_the_confirmation_lands_on_the_ticket(
    platform: Platform,
) -> None:
    learner = f"chen.{uuid.uuid4().hex[:8]}@example.com"
    first = EmailMessage()
    first["From"] = f"陈静 <{learner}>"
    first["To"] = "support@careloop.example"
    first["Subject"] = "直播课没有声音"
    first["Message-ID"] = make_msgid(domain="example.com")
    first.set_content("老师好，今晚的直播课一直没有声音，换了浏览器也不行。", charset="gb18030")
    await asyncio.to_thread(send_mail, platform, first)

    def confirmation() -> Any:
        return next(
            (
                m
                for m in platform.stack.mails()
                if m["To"] == learner and m["X-Careloop-Kind"] == "confirmation"
            ),
            None,
        )

    confirmed = await eventually(lambda: asyncio.to_thread(confirmation), timeout=60)
    number = confirmed["X-Careloop-Ticket"]
    assert f"[{number}]" in confirmed["Subject"]
    assert confirmed["Reply-To"]

    reply = EmailMessage()
    reply["From"] = f"陈静 <{learner}>"
    reply["To"] = confirmed["Reply-To"]
    reply["Subject"] = f"Re: {confirmed['Subject']}"
    reply["Message-ID"] = make_msgid(domain="example.com")
    reply["In-Reply-To"] = confirmed["Message-ID"]
    reply["References"] = confirmed["Message-ID"]
    reply.set_content(
        "补充：我用的是手机 App。\n\n在 2026年11月30日 10:00，careloop 写道：\n> 我们已收到您的问题\n",
        charset="utf-8",
    )
    await asyncio.to_thread(send_mail, platform, reply)

    async with httpx.AsyncClient(timeout=10) as client:

        async def reply_landed() -> dict[str, Any] | None:
            t = await ticket(client, platform, number)
            if t and any(c["kind"] == "message" for c in t["conversation"]):
                return t
            return None

        landed = await eventually(reply_landed, timeout=60)
    [description, message] = [
        (c["kind"], c["body"].strip()) for c in landed["conversation"] if c["kind"] != "reply"
    ]
    assert description == ("description", "老师好，今晚的直播课一直没有声音，换了浏览器也不行。")
    assert message == ("message", "补充：我用的是手机 App。")  # the quoted history is cut
    assert landed["channel"] == "email"


def wechat_push(platform: Platform, *, openid: str, text: str) -> str:
    """POST a text message the way WeChat's servers push one (plain mode); the passive reply."""
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:8]
    signature = hashlib.sha1("".join(sorted([WECHAT_TOKEN, ts, nonce])).encode()).hexdigest()
    xml = (
        "<xml><ToUserName><![CDATA[gh_careloop]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{ts}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
        f"<MsgId>{time.time_ns()}</MsgId></xml>"
    )
    r = httpx.post(
        f"{platform.url('intake')}/channels/wechat",
        params={"signature": signature, "timestamp": ts, "nonce": nonce},
        content=xml.encode(),
        headers={"content-type": "text/xml"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.text


async def test_a_resolved_ticket_is_reopened_by_a_wechat_message(platform: Platform) -> None:
    openid = f"oE2E{uuid.uuid4().hex[:12]}"
    answer = await asyncio.to_thread(
        wechat_push, platform, openid=openid, text="课程回放打不开，一直转圈"
    )
    number = re.search(r"CL-\d{6,}", answer)
    assert number, answer  # the passive reply names the ticket

    async with httpx.AsyncClient(timeout=10) as client:
        placed = await eventually(
            lambda: _when(ticket(client, platform, number[0]), lambda t: t["assignee_id"]),
            timeout=60,
        )
        resolved = await client.post(
            f"{platform.url('desk')}/v1/tickets/{number[0]}/resolve",
            headers=SAM,
            json={"resolution": "已修复回放服务"},
        )
        assert resolved.status_code == 200, resolved.text

        later = await asyncio.to_thread(wechat_push, platform, openid=openid, text="还是打不开")
        assert number[0] in later  # the follow-up is answered with the same ticket's number

        # reopened, then placed again at once: the history shows it, whatever the status now
        reopened = await eventually(
            lambda: _when(
                ticket(client, platform, number[0]),
                lambda t: any(
                    h["kind"] == "reopened" and h["detail"] == {"reason": "learner_message"}
                    for h in t["history"]
                ),
            ),
            timeout=60,
        )
        assert reopened["ticket_id"] == placed["ticket_id"]
        assert [c["body"] for c in reopened["conversation"] if c["kind"] == "message"] == [
            "还是打不开"
        ]
        # notify answered on WeChat, through the provider's customer-service API
        sent_response = await eventually(
            lambda: _when(
                client.get(
                    f"http://127.0.0.1:{platform.stack.stack.providers_port}/_sent",
                    params={"channel": "wechat", "to": openid},
                ),
                lambda r: r.json(),
            ),
            timeout=60,
        )
        assert any(number[0] in json.dumps(m, ensure_ascii=False) for m in sent_response.json())


async def test_a_hotline_call_record_becomes_a_ticket_of_the_learner_the_lms_described(
    platform: Platform,
) -> None:
    """The LMS's snapshot names the learner by a number without +86; the call centre sends
    it with one: desk matches them, and notify answers the caller by SMS."""
    learner_id = f"L-{uuid.uuid4().hex[:8]}"
    mobile = f"139{uuid.uuid4().int % 10**8:08d}"
    async with httpx.AsyncClient(timeout=10) as client:
        before = await stored_snapshots(client, platform)
    producer = AIOKafkaProducer(bootstrap_servers=platform.stack.bootstrap, acks="all")
    await producer.start()
    try:
        snapshot = {
            "learner_id": learner_id,
            "name": "刘洋",
            "phone": mobile,
            "tier": "vip",
            "locale": "zh",
            "updated_at": "2026-11-30T09:00:00+08:00",
        }
        await producer.send_and_wait(
            topics.LEARNERS, json.dumps(snapshot).encode(), key=learner_id.encode()
        )
    finally:
        await producer.stop()

    call_id = f"call-{uuid.uuid4().hex[:8]}"
    record = json.dumps(
        {
            "call_id": call_id,
            "caller_number": f"+86 {mobile}",
            "agent": "hotline-07",
            "started_at": "2026-11-30T10:00:00+08:00",
            "ended_at": "2026-11-30T10:06:00+08:00",
            "ivr_choice": "2-退款",
            "recording_url": "https://calls.example.com/rec/1.mp3",
            "summary": "学员来电：上周购买的课程重复扣费两次，要求退还一笔。",
        },
        ensure_ascii=False,
    ).encode()
    async with httpx.AsyncClient(timeout=10) as client:
        url = f"{platform.url('intake')}/v1/hotline/calls"
        forged = await client.post(
            url,
            content=record,
            headers={**sign("wrong-secret", record), "content-type": "application/json"},
        )
        assert forged.status_code == 401

        async def snapshot_stored() -> bool:
            return await stored_snapshots(client, platform) > before

        await eventually(snapshot_stored, timeout=30)
        accepted = await client.post(
            url,
            content=record,
            headers={**sign(CALLCENTRE_SECRET, record), "content-type": "application/json"},
        )
        assert accepted.status_code == 202, accepted.text
        ticket_id = accepted.json()["ticket_id"]

        created = await eventually(lambda: ticket(client, platform, ticket_id), timeout=60)
        assert (created["channel"], created["learner_id"]) == ("hotline", learner_id)
        assert created["call"]["recording_url"] == "https://calls.example.com/rec/1.mp3"
        sms_response = await eventually(
            lambda: _when(
                client.get(
                    f"http://127.0.0.1:{platform.stack.stack.providers_port}/_sent",
                    params={"channel": "sms", "to": f"+86{mobile}"},
                ),
                lambda r: r.json(),
            ),
            timeout=60,
        )
        assert created["number"] in json.dumps(sms_response.json(), ensure_ascii=False)


async def stored_snapshots(client: httpx.AsyncClient, platform: Platform) -> float:
    """How many learner snapshots desk stored so far (its own counter, on /metrics)."""
    text = (await client.get(f"{platform.url('desk')}/metrics")).text
    found = re.search(r'^careloop_learner_snapshots_total\{outcome="stored"\} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


async def _when(awaitable: Any, check: Any) -> Any:
    """What `awaitable` gives when `check` of it is truthy, else None (for `eventually`)."""
    value = await awaitable
    return value if value is not None and check(value) else None
