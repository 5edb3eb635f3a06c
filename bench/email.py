"""E-mail in: learners' mails sent to intake's SMTP gateway over a few SMTP connections, each
followed to ticket.created, its assignment and its confirmation as the Kafka bursts are.

The mails are what a support address receives, a mix in turn: UTF-8 plain text from Gmail,
GBK from Foxmail (multipart with an HTML rendering and a screenshot attached), HTML-only
from Outlook, and a Gmail reply with the quoted history under it. Each has its own
Message-ID and sender, so each is a new ticket; its id is the one intake derives from the
Message-ID (services.intake.channels.email), and the watcher matches it by the Kafka key.

A connection sends its share of the mails one after another in one SMTP session, as a mail
server relaying a queue does. The gateway answers 250 only once Kafka acknowledged the
submission, so "accepted" is the gateway's rate with the broker's round trip in it.
"""

import asyncio
import base64
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import aiosmtplib
from rich.progress import Progress

from bench.loop import Tracking, measure
from bench.report import flow
from bench.stack import BenchStack
from deploy.local.harness import wait_for_port
from services.intake.domain import ticket_id_for
from shared.events import Channel

SUPPORT = "support@careloop.example"
CONNECTIONS = 8
KINDS = ("utf8_plain", "gbk_foxmail", "html_only", "quoted_reply")
NAMES = {  # who writes each kind, in turn
    "utf8_plain": ("王小明", "陈静", "赵磊"),
    "gbk_foxmail": ("李娜", "张伟", "刘洋"),
    "html_only": ("Kevin Wu", "Emily Zhao", "Daniel Sun"),
    "quoted_reply": ("Sophie Lin", "Grace Huang", "Tom Xu"),
}
SENT = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Mail:
    """One learner's mail as bytes on the wire, and the ticket intake will make of it."""

    kind: str
    ticket: bytes
    sender: str
    raw: bytes


def _message_id(kind: str, run: str, i: int) -> str:
    """A Message-ID shaped like the mailer's own, unique to this run and mail."""
    domain = {
        "utf8_plain": "mail.gmail.com",
        "gbk_foxmail": "qq.com",
        "html_only": "SG2PR06MB1234.apcprd06.prod.outlook.com",
        "quoted_reply": "mail.gmail.com",
    }[kind]
    unique = uuid.uuid5(uuid.NAMESPACE_OID, f"{run}:{i}").hex[:12]
    return f"{kind[:2].upper()}{run}{i:07d}.{unique}@{domain}"


def _utf8_plain(msg: EmailMessage, i: int, name: str) -> None:
    msg.set_content(
        "您好，\n\n我报名的《雅思口语强化班》第 3 课的回放视频一直无法播放，"
        "点开后转圈一分钟就提示“网络错误”。换了 Chrome 和手机 App 都一样，"
        f"其他课程的视频是正常的。学员编号 L{100000 + i}。\n\n"
        f"麻烦尽快帮我看一下，下周就要考试了，谢谢！\n\n{name}\n",
        cte="base64",
    )


def _gbk_foxmail(msg: EmailMessage, i: int, name: str) -> None:
    text = (
        "老师您好：\n\n"
        "我上周三购买了《考研英语全程班》，支付宝被扣了两次款（各 1980 元），"
        f"订单号 2026112{i:07d}。请帮忙退还重复扣的那一笔，截图在附件里。\n\n"
        f"谢谢！\n{name}\n"
    )
    html = (
        "<html><body>"
        + "".join(f"<div>{line or '<br>'}</div>" for line in text.split("\n"))
        + "</body></html>"
    )
    msg["X-Mailer"] = "Foxmail 7.2.25.228[cn]"
    msg.make_mixed()
    body = EmailMessage()
    # Foxmail writes GBK and declares it gb2312, in base64.
    body.set_content(text.encode("gbk"), "text", "plain", cte="base64")
    body.set_param("charset", "gb2312")
    rendering = EmailMessage()
    rendering.set_content(html.encode("gbk"), "text", "html", cte="base64")
    rendering.set_param("charset", "gb2312")
    body.make_alternative()
    body.attach(rendering)
    msg.attach(body)
    screenshot = b"\x89PNG\r\n\x1a\n" + random.Random(i).randbytes(24 * 1024)
    msg.add_attachment(screenshot, "image", "png", filename="扣款截图.png")


def _html_only(msg: EmailMessage, i: int, name: str) -> None:
    msg["X-Mailer"] = "Microsoft Outlook 16.0"
    msg.set_content(
        "<html><head><style>p{margin:0}</style></head><body>"
        "<p>Hello,</p><p>&nbsp;</p>"
        "<p>I need to move my one-to-one Business English lessons from Tuesday and "
        "Thursday mornings to the evening (after 19:00 Beijing time), starting next week."
        "</p><p>&nbsp;</p>"
        f"<p>My learner number is L{100000 + i}. Could you tell me which teachers are "
        f"free then?</p><p>&nbsp;</p><p>Best regards,<br>{name}</p>"
        "<div><hr><b>From:</b> Bright Learning &lt;news@bright.example&gt;<br>"
        "<b>Sent:</b> Friday, 27 November 2026 18:02</div></body></html>",
        subtype="html",
        cte="quoted-printable",
    )


def _quoted_reply(msg: EmailMessage, i: int, name: str) -> None:
    # A reply to a mail careloop did not send: a new ticket, with the history to cut.
    msg["In-Reply-To"] = f"<CAJ{i:08d}quoted@mail.gmail.com>"
    msg["References"] = f"<CAJ{i:08d}quoted@mail.gmail.com>"
    new = (
        "I still cannot log in to the app: it says my password is wrong, but I reset it "
        f"twice today and the reset link works. Could someone check my account?\n\n{name}\n"
    )
    quoted = (
        "On Sun, 29 Nov 2026 at 21:14, Bright Learning <no-reply@bright.example> wrote:\n"
        "> Your password has been reset.\n> If this was not you, contact support.\n"
    )
    msg.set_content(new + "\n" + quoted, cte="quoted-printable")
    msg.add_alternative(
        f'<div dir="ltr">{new.replace(chr(10), "<br>")}</div><br>'
        '<div class="gmail_quote"><div class="gmail_attr">On Sun, 29 Nov 2026 at 21:14, '
        "Bright Learning wrote:<br></div><blockquote>Your password has been reset."
        "</blockquote></div>",
        subtype="html",
        cte="quoted-printable",
    )


_SUBJECTS = {
    "utf8_plain": "课程回放视频无法播放",
    "gbk_foxmail": "重复扣款，申请退款",
    "html_only": "Rescheduling my lessons",
    "quoted_reply": "Re: Your password has been reset",
}
_BODIES = {
    "utf8_plain": _utf8_plain,
    "gbk_foxmail": _gbk_foxmail,
    "html_only": _html_only,
    "quoted_reply": _quoted_reply,
}
_DOMAINS = {
    "utf8_plain": "gmail.com",
    "gbk_foxmail": "qq.com",
    "html_only": "outlook.com",
    "quoted_reply": "gmail.com",
}


def _encoded_word(text: str, charset: str) -> str:
    """`text` as an RFC 2047 encoded word in `charset`, as the mailer wrote it."""
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def mail(run: str, i: int) -> Mail:
    """The i-th mail of a run: its kind in turn, its own sender and Message-ID."""
    kind = KINDS[i % len(KINDS)]
    sender = f"learner{i}.{run}@{_DOMAINS[kind]}"
    name, subject = NAMES[kind][i // len(KINDS) % len(NAMES[kind])], _SUBJECTS[kind]
    mid = _message_id(kind, run, i)
    msg = EmailMessage()
    msg["To"] = f"Careloop Support <{SUPPORT}>"
    msg["Date"] = format_datetime(SENT + timedelta(seconds=i))
    msg["Message-ID"] = f"<{mid}>"
    msg["MIME-Version"] = "1.0"
    _BODIES[kind](msg, i, name)
    if kind == "gbk_foxmail":
        # Foxmail encodes the name and the subject in GBK, declared as gb2312; the email
        # package would re-encode them in UTF-8, so they are written as they come.
        head = (
            f"From: {_encoded_word(name, 'gb2312')} <{sender}>\r\n"
            f"Subject: {_encoded_word(subject, 'gb2312')}\r\n"
        ).encode()
    else:
        msg["From"] = formataddr((name, sender))
        msg["Subject"] = subject
        head = b""
    ticket = ticket_id_for(channel=Channel.EMAIL, source=None, external_id=mid)
    return Mail(kind, str(ticket).encode(), sender, head + msg.as_bytes(policy=policy.SMTP))


async def _session(
    port: int,
    mails: Sequence[Mail],
    t: Tracking,
    accepted: dict[bytes, float],
    refused: Counter[str],
) -> None:
    """One SMTP connection sending `mails` one after another, noting when each went out and
    when the gateway answered 250; any other answer is counted by its code."""
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
    await smtp.connect()
    try:
        for m in mails:
            t.submitted[m.ticket] = time.perf_counter()
            try:
                await smtp.sendmail(m.sender, [SUPPORT], m.raw)
            except aiosmtplib.SMTPResponseException as exc:
                refused[f"{exc.code} {exc.message[:80]}"] += 1
                continue
            accepted[m.ticket] = time.perf_counter()
            t.counters["accepted"] = len(accepted)
    finally:
        await smtp.quit()


async def email_burst(
    stack: BenchStack,
    *,
    n: int,
    connections: int = CONNECTIONS,
    progress: Progress,
    stall_seconds: float,
) -> dict[str, Any]:
    """n mails into intake's SMTP gateway over `connections` connections, then followed to
    their tickets' confirmation like a Kafka burst (loop.measure: CPU and WAL alike)."""
    run = uuid.uuid4().hex[:8]
    mails = [mail(run, i) for i in range(n)]
    wait_for_port(stack.mail_gateway_port)

    async def send(t: Tracking) -> dict[str, Any]:
        accepted: dict[bytes, float] = {}
        refused: Counter[str] = Counter()
        start = time.perf_counter()
        await asyncio.gather(
            *(
                _session(stack.mail_gateway_port, mails[c::connections], t, accepted, refused)
                for c in range(connections)
            )
        )
        return {
            "submit_seconds": time.perf_counter() - start,
            "connections": connections,
            "mail_bytes": sum(len(m.raw) for m in mails),
            "kinds": dict(Counter(m.kind for m in mails)),
            "refused": dict(refused),
            "stages": {
                "accepted": flow(
                    expected=n,
                    latencies=[at - t.submitted[k] for k, at in accepted.items()],
                    seconds=(max(accepted.values()) - start) if accepted else 0.0,
                )
            },
        }

    return await measure(
        stack,
        n=n,
        load=send,
        label=f"e-mail {n:,}",
        progress=progress,
        stall_seconds=stall_seconds,
        counters=("accepted",),
    )
