"""The SMTP gateway, fed by a real SMTP client (smtplib), says 250 only for what is on Kafka.

The gateway runs in this process on intake's context against the real broker and Redis; the
submissions are read back from careloop.intake.v1.
"""

import asyncio
import contextlib
import re
import smtplib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from services.intake.channels.email import MailSettings
from services.intake.channels.smtp_gateway import serve
from services.intake.domain import message_id_for, ticket_id_for
from services.intake.settings import IntakeSettings
from shared import topics
from shared.events import Channel, Envelope, TicketSubmitted, decode
from shared.kafka import ensure_topics
from shared.service import Context, new_context
from tests.integration.inprocess import environment
from tests.support import RunningStack, eventually, port

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
GATEWAY_PORT = port(22525)
SUPPORT = "support@careloop.example"
REPLIED = uuid.UUID("7f3c2a1e-5b6d-4c8e-9f01-2a3b4c5d6e7f")


def fixture(name: str) -> tuple[bytes, str]:
    """The fixture with a Message-ID of its own (Redis remembers ids for the whole session)."""
    native = f"{uuid.uuid4().hex}@mail.test.example"
    raw = re.sub(
        rb"^Message-I[dD]: [^\r\n]*",
        f"Message-ID: <{native}>".encode(),
        (FIXTURES / name).read_bytes(),
        count=1,
        flags=re.M,
    )
    return raw, native


@contextlib.asynccontextmanager
async def intake_context(stack: RunningStack, **env: str) -> AsyncIterator[Context[IntakeSettings]]:
    """intake's context as its lifespan opens it: the broker started, Redis connected."""
    with environment({**stack.env, **env}):
        settings = IntakeSettings()
    ctx = new_context("intake", settings)
    await ensure_topics(settings)
    await ctx.broker.start()
    ctx._redis = Redis.from_url(settings.redis_url)
    try:
        yield ctx
    finally:
        await ctx.broker.stop()
        await ctx._redis.aclose()


@contextlib.asynccontextmanager
async def gateway(stack: RunningStack, **env: str) -> AsyncIterator[MailSettings]:
    settings = MailSettings(
        gateway_port=GATEWAY_PORT,
        max_bytes=64 * 1024,
        rate_per_sender=3,
        recipients=("careloop.example",),
    )
    async with intake_context(stack, **env) as ctx:
        server = await serve(ctx, settings)
        try:
            yield settings
        finally:
            server.close()
            await server.wait_closed()


def send(raw: bytes, *, sender: str = "learner@example.com", to: str = SUPPORT) -> Any:
    """smtplib's sendmail to the gateway: {} when every recipient was accepted."""
    with smtplib.SMTP("127.0.0.1", GATEWAY_PORT, timeout=30) as client:
        return client.sendmail(sender, [to], raw)


async def submissions_until(
    stack: RunningStack, match: Callable[[TicketSubmitted], bool], *, timeout: float = 30
) -> list[TicketSubmitted]:
    """Every submission on careloop.intake.v1 from its start up to the first that `match`es."""
    consumer = AIOKafkaConsumer(
        topics.INTAKE,
        bootstrap_servers=stack.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[TicketSubmitted] = []
    try:

        async def look() -> bool:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    event: Envelope[Any] = decode(record.value)
                    seen.append(event.data)
            return any(match(s) for s in seen)

        await eventually(look, timeout=timeout, interval=0)
    finally:
        await consumer.stop()
    return seen


def by_message(native: str) -> Callable[[TicketSubmitted], bool]:
    wanted = message_id_for(Channel.EMAIL, None, native)
    return lambda s: s.message_id == wanted


async def test_a_foxmail_reply_is_on_kafka_when_the_gateway_says_250(stack: RunningStack) -> None:
    raw, native = fixture("foxmail_reply_gbk.eml")

    async with gateway(stack):
        refused = await asyncio.to_thread(send, raw, sender="wangzhe@qq.com")
        submitted = await submissions_until(stack, by_message(native))

    assert refused == {}
    [mail] = [s for s in submitted if by_message(native)(s)]
    assert mail.ticket_id == REPLIED and mail.reply_to == "CL-000123"
    assert mail.channel is Channel.EMAIL
    assert mail.learner.name == "王喆" and mail.learner.email == "wangzhe@qq.com"
    assert mail.description.startswith("您好，\n\n我按照你们说的清除了缓存")


async def test_a_new_mail_with_attachments_is_a_ticket_named_by_its_message_id(
    stack: RunningStack,
) -> None:
    raw, native = fixture("apple_mixed_attachments.eml")

    async with gateway(stack):
        await asyncio.to_thread(send, raw, sender="liu.yang@icloud.com")
        submitted = await submissions_until(stack, by_message(native))

    [mail] = [s for s in submitted if by_message(native)(s)]
    assert mail.ticket_id == ticket_id_for(channel=Channel.EMAIL, source=None, external_id=native)
    assert [(a.name, a.size, a.url) for a in mail.attachments] == [
        ("screenshot.png", 1032, None),
        ("银行回单.pdf", 3016, None),
    ]


async def test_an_auto_reply_and_a_bounce_are_accepted_and_become_nothing(
    stack: RunningStack,
) -> None:
    auto_reply, auto_native = fixture("auto_reply_out_of_office.eml")
    dsn, dsn_native = fixture("bounce_dsn.eml")
    after, after_native = fixture("netease_gb2312_qp.eml")

    async with gateway(stack):
        assert await asyncio.to_thread(send, auto_reply, sender="m.chen@partner.example") == {}
        assert await asyncio.to_thread(send, dsn, sender="") == {}
        await asyncio.to_thread(send, after, sender="lina_study@163.com")
        submitted = await submissions_until(stack, by_message(after_native))

    assert not any(by_message(auto_native)(s) or by_message(dsn_native)(s) for s in submitted)


async def test_an_oversized_mail_gets_552_at_data_and_is_not_stored(stack: RunningStack) -> None:
    raw, native = fixture("netease_gb2312_qp.eml")
    big = (
        raw
        + b"\r\n"
        + b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU2Nzg5YWJjZGVmZ2hpamtsbW5v\r\n" * 1200
    )
    marker, marker_native = fixture("big5_html_only.eml")

    def data_without_size() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", GATEWAY_PORT, timeout=30) as client:
            client.ehlo()
            client.mail("lina_study@163.com")  # no SIZE declared: the limit bites at DATA
            client.rcpt(SUPPORT)
            return client.data(big)

    async with gateway(stack):
        code, reply = await asyncio.to_thread(data_without_size)
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:
            await asyncio.to_thread(send, big)  # smtplib declares SIZE: refused at MAIL
        await asyncio.to_thread(send, marker)
        submitted = await submissions_until(stack, by_message(marker_native))

    assert code == 552, reply
    assert declared.value.smtp_code == 552
    assert not any(by_message(native)(s) for s in submitted)


async def test_a_recipient_that_is_not_support_gets_550(stack: RunningStack) -> None:
    raw, _ = fixture("netease_gb2312_qp.eml")

    async with gateway(stack):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            await asyncio.to_thread(send, raw, to="ceo@elsewhere.example")

    [(code, reply)] = refused.value.recipients.values()
    assert code == 550 and b"not a support address" in reply


async def test_a_mail_without_a_sender_address_gets_550_naming_the_problem(
    stack: RunningStack,
) -> None:
    raw = (
        b"To: support@careloop.example\r\nSubject: help\r\n"
        b"Message-ID: <no-from@test.example>\r\n\r\nLesson 4 will not open.\r\n"
    )

    async with gateway(stack):
        with pytest.raises(smtplib.SMTPDataError) as refused:
            await asyncio.to_thread(send, raw)

    assert refused.value.smtp_code == 550
    assert b"no From: address" in refused.value.smtp_error


async def test_a_sender_over_the_rate_limit_gets_450_with_when_to_retry(
    stack: RunningStack,
) -> None:
    sender = f"busy-{uuid.uuid4().hex[:8]}@example.com"

    def mail(n: int) -> bytes:
        return (
            f"From: Busy Learner <{sender}>\r\nTo: {SUPPORT}\r\nSubject: try {n}\r\n"
            f"Message-ID: <{uuid.uuid4()}@test.example>\r\n\r\nStill broken ({n}).\r\n"
        ).encode()

    async with gateway(stack):
        for n in range(3):
            assert await asyncio.to_thread(send, mail(n), sender=sender) == {}
        with pytest.raises(smtplib.SMTPDataError) as limited:
            await asyncio.to_thread(send, mail(4), sender=sender)

    assert limited.value.smtp_code == 450
    assert b"try again in" in limited.value.smtp_error


async def test_kafka_not_acknowledging_gets_451_and_the_retry_is_the_same_ticket(
    stack: RunningStack,
) -> None:
    raw, native = fixture("outlook_gb18030.eml")

    async with gateway(stack, CARELOOP_INTAKE_PUBLISH_TIMEOUT_SECONDS="0.000001"):
        with pytest.raises(smtplib.SMTPDataError) as unavailable:
            await asyncio.to_thread(send, raw, sender="zhaoxue@outlook.com")
    async with gateway(stack):
        assert await asyncio.to_thread(send, raw, sender="zhaoxue@outlook.com") == {}
        submitted = await submissions_until(stack, by_message(native))

    assert unavailable.value.smtp_code == 451
    tickets = {s.ticket_id for s in submitted if by_message(native)(s)}
    assert tickets == {ticket_id_for(channel=Channel.EMAIL, source=None, external_id=native)}
