"""notify's e-mail guarantees against the real SMTP sink (aiosmtpd) and PostgreSQL: any script
and length goes, an address a server cannot take fails at once without holding up its batch,
and a database that goes away right after the server's 250 does not make notify send twice."""

import asyncio
import email
import email.policy
import json
import mailbox
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from deploy.local.harness import wait_for_port, wait_for_postgres
from shared.events import Channel, Learner, TicketCreated, TicketReplied, new_event, now
from shared.kafka import ensure_topics, make_broker, outgoing, publish_confirmed
from shared.migrate import migrate
from shared.settings import CommonSettings
from tests.support import RunningStack, ServiceProcess, eventually, port

# 340 characters of Chinese on one line: 1,020 bytes of UTF-8, past SMTP's 998-octet line limit.
LONG_CHINESE_REPLY = ("您好，我们已经为您重置了密码，请重新登录后修改。" * 15)[:340]


def start_notify(stack: RunningStack, log: Path, **env: str) -> ServiceProcess:
    service = ServiceProcess(
        "notify",
        port(22084),
        {
            **stack.env,
            "CARELOOP_NOTIFY_HTTP_PORT": str(port(22084)),
            "CARELOOP_NOTIFY_ARTICLES_GRACE_SECONDS": "0",  # no knowledge service here
            **env,
        },
        log,
    )
    service.start()
    try:
        service.wait_healthy()
    except BaseException:
        service.stop()
        raise
    return service


@pytest.fixture
def sink_without_smtputf8(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The stack's sink program (aiosmtpd's Maildir handler) started without `-u`: a server
    that offers 8BITMIME but not SMTPUTF8, like many in the wild."""
    maildir, sink_port = tmp_path / "mail", port(22026)
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{sink_port}"]
    argv += ["-c", "aiosmtpd.handlers.Mailbox", str(maildir)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(sink_port)
        yield sink_port, maildir
    finally:
        proc.terminate()
        proc.wait(10)


def read_maildir(maildir: Path) -> list[Message]:
    box = mailbox.Maildir(str(maildir), create=False)
    return [
        email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        for key in box.iterkeys()
    ]


async def queue_replies(dsn: str, recipients: list[tuple[str, str]]) -> dict[str, int]:
    """Reply deliveries to (number, address) pairs, written in one transaction so that one
    sender leases them as one batch, in this order; returns each number's delivery id."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            ids = {}
            for number, address in recipients:
                ticket_id = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO notify.recipients (ticket_id, number, name, email, language,"
                    " subject, created_at, channel, reply_channel)"
                    " VALUES ($1, $2, 'Li Lei', $3, 'en', 'Help', now(), 'web', 'email')",
                    ticket_id,
                    number,
                    address,
                )
                ids[number] = await conn.fetchval(
                    "INSERT INTO notify.deliveries (delivery_key, ticket_id, kind, payload,"
                    " channel) VALUES ($1, $2, 'reply', $3::jsonb, 'email') RETURNING id",
                    f"reply:{uuid.uuid4()}",
                    ticket_id,
                    json.dumps({"body": f"Answer for {number}"}),
                )
        return ids
    finally:
        await conn.close()


async def delivery(dsn: str, delivery_id: int) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT status, attempts, last_error FROM notify.deliveries WHERE id = $1",
            delivery_id,
        )
        assert row is not None
        return row
    finally:
        await conn.close()


def numbers(count: int) -> list[str]:
    return [f"CL-{uuid.uuid4().int % 10**9:09d}" for _ in range(count)]


# ---- any script, any length -----------------------------------------------------------------


async def test_a_long_chinese_reply_is_delivered_and_decodes_to_the_same_text(
    stack: RunningStack, settings: CommonSettings, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    notify = start_notify(stack, tmp_path / "notify.log")
    ticket_id, [number] = uuid.uuid4(), numbers(1)
    created = TicketCreated(
        ticket_id=ticket_id,
        number=number,
        channel=Channel.WEB,
        learner=Learner(name="王丽", email="wangli@example.com"),
        subject="账号被盗了",
        description="有陌生设备登录",
        language="zh",
        created_at=now(),
    )
    replied = TicketReplied(
        ticket_id=ticket_id,
        number=number,
        reply_id=uuid.uuid4(),
        agent_id="alice",
        body=LONG_CHINESE_REPLY,
        first_response=True,
        created_at=created.created_at,
        replied_at=now(),
    )
    broker = make_broker(settings, client_id="test-notify-delivery")
    await broker.start()
    try:
        await publish_confirmed(
            broker,
            [outgoing(new_event(e, producer="test")) for e in (created, replied)],
        )

        async def reply() -> list[Message]:
            return [
                m
                for m in stack.mails()
                if m["X-Careloop-Ticket"] == number and m["X-Careloop-Kind"] == "reply"
            ]

        [mail] = await eventually(reply, timeout=30)
    finally:
        await broker.stop()
        notify.stop()
    assert LONG_CHINESE_REPLY in mail.get_content()
    assert mail["Subject"] == f"[{number}] 回复：账号被盗了"


# ---- international addresses ----------------------------------------------------------------


async def test_a_non_ascii_recipient_fails_at_once_without_smtputf8_and_its_batch_goes(
    stack: RunningStack, sink_without_smtputf8: tuple[int, Path], tmp_path: Path
) -> None:
    sink_port, maildir = sink_without_smtputf8
    log = tmp_path / "notify.log"
    notify = start_notify(
        stack, log, CARELOOP_SMTP_PORT=str(sink_port), CARELOOP_NOTIFY_SENDERS="1"
    )
    try:
        bad, *good = numbers(6)
        ids = await queue_replies(
            stack.dsn,
            [(bad, "用户@例子.中国")]
            + [(n, f"learner{i}@example.com") for i, n in enumerate(good)],
        )

        async def all_good_delivered() -> set[str]:
            got = {m["X-Careloop-Ticket"] for m in read_maildir(maildir)}
            return got if set(good) <= got else set()

        started = time.monotonic()
        await eventually(all_good_delivered, timeout=20)
        assert time.monotonic() - started < 15, "the batch waited for the bad address"
        failed = await delivery(stack.dsn, ids[bad])
    finally:
        notify.stop()
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert "SMTPUTF8" in failed["last_error"]
    assert bad not in {m["X-Careloop-Ticket"] for m in read_maildir(maildir)}
    assert "用户@" not in log.read_text(), "the address was logged unmasked"


async def test_an_internationalised_domain_goes_idna_encoded_to_a_server_without_smtputf8(
    stack: RunningStack, sink_without_smtputf8: tuple[int, Path], tmp_path: Path
) -> None:
    sink_port, maildir = sink_without_smtputf8
    notify = start_notify(stack, tmp_path / "notify.log", CARELOOP_SMTP_PORT=str(sink_port))
    try:
        [number] = numbers(1)
        await queue_replies(stack.dsn, [(number, "user@bücher.de")])

        async def delivered() -> list[Message]:
            return [m for m in read_maildir(maildir) if m["X-Careloop-Ticket"] == number]

        [mail] = await eventually(delivered, timeout=20)
    finally:
        notify.stop()
    assert mail["X-RcptTo"] == "user@xn--bcher-kva.de"
    assert mail["To"] == "user@xn--bcher-kva.de"


async def test_a_non_ascii_recipient_goes_with_smtputf8_where_the_server_offers_it(
    stack: RunningStack, tmp_path: Path
) -> None:
    notify = start_notify(stack, tmp_path / "notify.log")  # the stack's sink runs with -u
    try:
        [number] = numbers(1)
        await queue_replies(stack.dsn, [(number, "用户@例子.中国")])

        async def delivered() -> list[Message]:
            return [m for m in stack.mails() if m["X-Careloop-Ticket"] == number]

        [mail] = await eventually(delivered, timeout=20)
    finally:
        notify.stop()
    assert mail["X-RcptTo"] == "用户@例子.中国"
    assert mail["To"] == "用户@例子.中国"


# ---- PostgreSQL away right after the 250 ------------------------------------------------------


@dataclass
class StopsPostgresAfterTheFirstMessage:
    """An SMTP sink that takes every message and, before its 250 to the first one for ticket
    `target`, stops PostgreSQL (immediate shutdown): notify gets the 250 while it cannot
    record "sent"."""

    stack: RunningStack
    target: str
    received: list[Message] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(message)
        if message["X-Careloop-Ticket"] == self.target and not self.stopped.is_set():
            postgres = self.stack.processes["postgres"]
            postgres.send_signal(signal.SIGQUIT)
            postgres.wait(30)
            self.stopped.set()
        return "250 OK"


def restart_postgres(stack: RunningStack) -> None:
    with open(stack.stack.var / "postgres.log", "ab") as log:
        stack.processes["postgres"] = subprocess.Popen(
            stack.stack.commands()["postgres"], stdout=log, stderr=subprocess.STDOUT
        )
    asyncio.run(wait_for_postgres(stack.dsn, timeout=60))


@pytest.mark.faults
async def test_postgres_stopping_right_after_the_250_does_not_make_notify_send_twice(
    stack: RunningStack, tmp_path: Path
) -> None:
    first, second = numbers(2)
    sink = StopsPostgresAfterTheFirstMessage(stack, target=first)
    controller = Controller(sink, hostname="127.0.0.1", port=port(22027))
    controller.start()
    lease = 2
    notify = start_notify(
        stack,
        tmp_path / "notify.log",
        CARELOOP_SMTP_PORT=str(port(22027)),
        CARELOOP_NOTIFY_CLAIM_SECONDS=str(lease),
        CARELOOP_NOTIFY_SENDERS="4",
    )
    try:
        ids = await queue_replies(
            stack.dsn, [(first, "first@example.com"), (second, "second@example.com")]
        )
        stopped = await asyncio.to_thread(sink.stopped.wait, 30)
        assert stopped, "notify never sent"
        await asyncio.sleep(3 * lease)  # down for longer than the lease
        await asyncio.to_thread(restart_postgres, stack)

        async def both_sent() -> bool:
            rows = [await delivery(stack.dsn, ids[n]) for n in (first, second)]
            return all(r["status"] == "sent" for r in rows)

        await eventually(both_sent, timeout=30)
        await asyncio.sleep(2 * lease)  # a re-send, if any, has the time to show
    finally:
        notify.stop()
        controller.stop()
        if stack.processes["postgres"].poll() is not None:
            await asyncio.to_thread(restart_postgres, stack)
    ours = [m["X-Careloop-Ticket"] for m in sink.received]
    assert sorted(t for t in ours if t in (first, second)) == sorted([first, second])


# ---- bounded attempts, leases that hold -------------------------------------------------------


async def test_a_delivery_whose_attempts_all_ended_without_an_outcome_is_given_up_unsent(
    stack: RunningStack, tmp_path: Path
) -> None:
    await asyncio.to_thread(migrate, stack.dsn, "notify")
    [number] = numbers(1)
    ids = await queue_replies(stack.dsn, [(number, "learner@example.com")])
    conn = await asyncpg.connect(stack.dsn)
    try:  # eight attempts so far, the last one's sender gone without a word
        await conn.execute(
            "UPDATE notify.deliveries SET attempts = 8, claim_token = gen_random_uuid(),"
            " claimed_until = now() - interval '1 hour' WHERE id = $1",
            ids[number],
        )
    finally:
        await conn.close()
    notify = start_notify(
        stack,
        tmp_path / "notify.log",
        CARELOOP_NOTIFY_MAX_ATTEMPTS="8",
        CARELOOP_NOTIFY_CLAIM_SECONDS="1",
    )
    try:

        async def given_up() -> asyncpg.Record | None:
            row = await delivery(stack.dsn, ids[number])
            return row if row["status"] != "pending" else None

        row = await eventually(given_up, timeout=20)
    finally:
        notify.stop()
    assert (row["status"], row["attempts"]) == ("failed", 9)
    assert "without a recorded outcome" in row["last_error"]
    assert number not in {m["X-Careloop-Ticket"] for m in stack.mails()}


@dataclass
class SlowSink:
    """An SMTP sink that takes `seconds` to answer each message."""

    seconds: float
    received: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        await asyncio.sleep(self.seconds)
        self.received.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


async def test_a_batch_slower_than_its_lease_keeps_it_and_nothing_goes_twice(
    stack: RunningStack, tmp_path: Path
) -> None:
    lease = 2
    sink = SlowSink(seconds=0.75 * lease)
    controller = Controller(sink, hostname="127.0.0.1", port=port(22028))
    controller.start()
    notify = start_notify(
        stack,
        tmp_path / "notify.log",
        CARELOOP_SMTP_PORT=str(port(22028)),
        CARELOOP_NOTIFY_CLAIM_SECONDS=str(lease),
        CARELOOP_NOTIFY_SENDERS="3",
    )
    try:
        ours = numbers(3)
        ids = await queue_replies(stack.dsn, [(n, f"{n}@example.com") for n in ours])

        async def all_sent() -> bool:
            rows = [await delivery(stack.dsn, ids[n]) for n in ours]
            return all(r["status"] == "sent" for r in rows)

        await eventually(all_sent, timeout=30)
        await asyncio.sleep(2 * lease)  # a copy from a second sender, if any, has time to show
    finally:
        notify.stop()
        controller.stop()
    got = [m["X-Careloop-Ticket"] for m in sink.received if m["X-Careloop-Ticket"] in ours]
    assert sorted(got) == sorted(ours)
