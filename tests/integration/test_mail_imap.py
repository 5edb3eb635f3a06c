"""The IMAP poller against a real Dovecot: unseen mail becomes submissions on the real Kafka,
and a mail is flagged \\Seen only once its outcome is settled."""

import asyncio
import imaplib
import shutil
import tempfile
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from deploy.local.dovecot import Dovecot, running_dovecot
from services.intake.channels.email import MailSettings
from services.intake.channels.imap import OutboundSmtp, Poller
from services.intake.domain import ticket_id_for
from shared.events import Channel
from tests.integration.test_mail_gateway import (
    REPLIED,
    by_message,
    fixture,
    intake_context,
    submissions_until,
)
from tests.support import RunningStack, eventually, port

IMAP_PORT = port(22143)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    # Not pytest's tmp_path: its folders are private, and Dovecot's own users must reach it.
    folder = Path(tempfile.mkdtemp(prefix="careloop-dovecot-"))
    try:
        with running_dovecot(folder, IMAP_PORT) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def poller_settings(dovecot: Dovecot, **overrides: object) -> MailSettings:
    values: dict[str, object] = {
        "imap_host": "127.0.0.1",
        "imap_port": dovecot.port,
        "imap_user": dovecot.user,
        "imap_password": dovecot.password,
        "imap_interval_seconds": 60,
        "max_bytes": 64 * 1024,
        "gateway_hostname": "careloop.test",
        **overrides,
    }
    return MailSettings.model_validate(values)


def outbound(stack: RunningStack) -> OutboundSmtp:
    return OutboundSmtp(host="127.0.0.1", port=stack.stack.smtp_port)


def unseen(dovecot: Dovecot, native: str) -> bool:
    """Whether the mail with Message-ID `native` is still unseen in the INBOX."""
    client = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    try:
        client.login(dovecot.user, dovecot.password)
        client.select("INBOX", readonly=True)
        _, [found] = client.search(None, "HEADER", "Message-ID", f'"{native}"')
        assert found, f"{native} is not in the INBOX"
        _, [unseen_found] = client.search(None, "UNSEEN", "HEADER", "Message-ID", f'"{native}"')
        return bool(unseen_found)
    finally:
        client.logout()


async def poll_once(poller: Poller) -> int:
    client = await poller.connect()
    try:
        return await poller.poll_once(client)
    finally:
        await client.logout()


async def test_unseen_mail_becomes_submissions_and_is_flagged_seen(
    stack: RunningStack, dovecot: Dovecot
) -> None:
    foxmail, foxmail_id = fixture("foxmail_reply_gbk.eml")
    auto_reply, auto_id = fixture("auto_reply_out_of_office.eml")
    dsn, dsn_id = fixture("bounce_dsn.eml")
    html_only, html_id = fixture("big5_html_only.eml")
    for raw in (foxmail, auto_reply, dsn, html_only):
        dovecot.deliver(raw)

    async with intake_context(stack) as ctx:
        poller = Poller(ctx=ctx, settings=poller_settings(dovecot), smtp=outbound(stack))
        assert await poll_once(poller) >= 4
    submitted = await submissions_until(stack, by_message(html_id))

    [reply] = [s for s in submitted if by_message(foxmail_id)(s)]
    assert reply.ticket_id == REPLIED and reply.learner.name == "王喆"
    [new] = [s for s in submitted if by_message(html_id)(s)]
    assert new.ticket_id == ticket_id_for(channel=Channel.EMAIL, source=None, external_id=html_id)
    assert new.description.startswith("您好：\n\n我想把「資料結構」課程改到週末班")
    assert not any(by_message(auto_id)(s) or by_message(dsn_id)(s) for s in submitted)
    assert not any(unseen(dovecot, n) for n in (foxmail_id, auto_id, dsn_id, html_id))


async def test_an_oversized_mail_is_bounced_to_its_sender_and_not_stored(
    stack: RunningStack, dovecot: Dovecot
) -> None:
    raw, native = fixture("netease_gb2312_qp.eml")
    big = raw + b"\r\n" + b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU2Nzg5YWJjZGVm\r\n" * 300
    marker, marker_id = fixture("outlook_gb18030.eml")
    dovecot.deliver(big)
    dovecot.deliver(marker)

    async with intake_context(stack) as ctx:
        settings = poller_settings(dovecot, max_bytes=8 * 1024)
        await poll_once(Poller(ctx=ctx, settings=settings, smtp=outbound(stack)))
    submitted = await submissions_until(stack, by_message(marker_id))

    assert not any(by_message(native)(s) for s in submitted)
    assert not unseen(dovecot, native)
    bounce = await eventually(lambda: _bounce_to(stack, native), timeout=10)
    assert bounce["To"] == "lina_study@163.com"
    assert bounce["Auto-Submitted"] == "auto-replied"
    assert bounce["In-Reply-To"] == f"<{native}>"
    text = bounce.get_body(("plain",)).get_content()
    assert "超过了大小上限" in text and "the limit is 8,192 bytes" in text


async def _bounce_to(stack: RunningStack, native: str) -> Message | None:
    found = [m for m in stack.mails() if m.get("In-Reply-To") == f"<{native}>"]
    return found[0] if found else None


async def test_a_mail_kafka_did_not_acknowledge_stays_unseen_until_it_does(
    stack: RunningStack, dovecot: Dovecot
) -> None:
    raw, native = fixture("gmail_reply_utf8.eml")
    dovecot.deliver(raw)

    async with intake_context(stack, CARELOOP_INTAKE_PUBLISH_TIMEOUT_SECONDS="0.000001") as ctx:
        poller = Poller(ctx=ctx, settings=poller_settings(dovecot), smtp=outbound(stack))
        await poll_once(poller)
    assert unseen(dovecot, native)

    async with intake_context(stack) as ctx:
        poller = Poller(ctx=ctx, settings=poller_settings(dovecot), smtp=outbound(stack))
        await poll_once(poller)
    submitted = await submissions_until(stack, by_message(native))

    assert not unseen(dovecot, native)
    assert {s.ticket_id for s in submitted if by_message(native)(s)} == {REPLIED}


async def test_the_running_poller_hears_new_mail_through_idle_without_waiting_its_interval(
    stack: RunningStack, dovecot: Dovecot
) -> None:
    first, first_id = fixture("netease_gb2312_qp.eml")
    later, later_id = fixture("apple_mixed_attachments.eml")
    dovecot.deliver(first)

    async with intake_context(stack) as ctx:
        settings = poller_settings(dovecot, imap_interval_seconds=300)
        task = asyncio.create_task(Poller(ctx=ctx, settings=settings, smtp=outbound(stack)).run())
        try:
            await submissions_until(stack, by_message(first_id))
            await eventually(lambda: _seen(dovecot, first_id), timeout=10)
            dovecot.deliver(later)  # the poller is idling now: only a push can wake it
            submitted = await submissions_until(stack, by_message(later_id), timeout=15)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    assert any(by_message(later_id)(s) for s in submitted)


async def _seen(dovecot: Dovecot, native: str) -> bool:
    return not await asyncio.to_thread(unseen, dovecot, native)
