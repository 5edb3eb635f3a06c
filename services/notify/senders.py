"""notify's senders: lease due deliveries, send each over SMTP, and record every outcome.

SMTP is not transactional. The one duplicate a fault can cause is a message the server took
(250) whose `sent` mark never commits, and there is at most one such message per connection:
after a 250 a connection may open the next message's envelope, but hands over its data (the
step that commits a message at the server) only once the previous mark is recorded. The
marks of all connections are written together by `SentMarks`, one statement and one commit
for whatever 250s arrived meanwhile; it retries, with backoff, until the database takes them.
A lease survives a PostgreSQL restart (see `repo.claim`), so no other sender re-sends a
delivery whose mark is still being recorded.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from email.utils import parseaddr
from functools import partial
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import structlog

from services.notify import repo
from services.notify.channels import EMAIL
from services.notify.channels.email import Failure, SmtpConnection, classify
from services.notify.domain import (
    SLA_KINDS,
    Address,
    agent_message_context,
    email_message,
    from_header,
    gives_up,
    message_context,
    recipient_address,
    record_backoff,
    render,
    retry_delay,
)
from services.notify.settings import NotifySettings
from shared import outbox
from shared.cancel import raise_if_cancelled
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import (
    Envelope,
    NotificationFailed,
    NotificationKind,
    NotificationSent,
    new_event,
    now,
)
from shared.logs import mask
from shared.service import Context

log = structlog.get_logger(__name__)
PRODUCER = "notify"
T = TypeVar("T")
# An idle sender looks for deliveries that came due without a NOTIFY at least this often.
IDLE_SECONDS = 30.0
# and no more often than this, so that a delivery due now but leased elsewhere is no busy loop.
MIN_WAIT_SECONDS = 0.1
# The database is away (down, restarting, shutting our session down): worth waiting for.
DATABASE_AWAY = (*TRANSIENT_DRIVER_ERRORS, asyncpg.exceptions.OperatorInterventionError)


class SentMarks:
    """The sent marks of every connection, written together: one statement and one commit
    for all the 250s that arrived while the previous write was under way."""

    def __init__(self) -> None:
        self._waiting: list[tuple[int, Envelope[Any], asyncio.Future[None]]] = []
        self._arrived = asyncio.Event()

    def add(self, delivery_id: int, event: Envelope[Any]) -> asyncio.Future[None]:
        """Queue the mark of `delivery_id` (with its notification.sent `event`); the future
        is done once the mark is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery_id, event, done))
        self._arrived.set()
        return done

    async def run(
        self, write: Callable[[list[tuple[int, Envelope[Any]]]], Awaitable[None]]
    ) -> None:
        """Write what is waiting, again and again; `write` waits out a database outage."""
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            batch, self._waiting = self._waiting, []
            try:
                await write([(delivery_id, event) for delivery_id, event, _ in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # not the database being away: each sender hears of it
                log.error("cannot record sent marks", count=len(batch), error=repr(exc))
                for *_, done in batch:
                    done.set_exception(exc)
                continue
            for *_, done in batch:
                done.set_result(None)


class Wakeup:
    """The database's NOTIFY of new deliveries and arrived triage, for every worker: one
    LISTEN connection, one event per worker (each clears its own when it finds nothing)."""

    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []
        self.listening = False

    def event(self) -> asyncio.Event:
        """A new worker's event, set on every NOTIFY."""
        event = asyncio.Event()
        self._events.append(event)
        return event

    def _wake(self) -> None:
        for event in self._events:
            event.set()

    async def run(self, ctx: Context[NotifySettings]) -> None:
        """Listen; listen again after the database left (meanwhile the workers look every
        second)."""
        while True:
            listener: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                listener = await asyncpg.connect(ctx.settings.pg_dsn.get_secret_value())
                listener.add_termination_listener(lambda *_, lost=lost: lost.set())
                await listener.add_listener("notify_deliveries", lambda *_: self._wake())
                self.listening = True
                self._wake()  # what was added while nobody listened
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot listen for deliveries; retrying", error=repr(exc))
                await asyncio.sleep(1)
            finally:
                self.listening = False
                if listener is not None and not listener.is_closed():
                    await listener.close()


def record_cap(settings: NotifySettings) -> float:
    """The longest wait between two tries to record an outcome the database refused."""
    return max(0.2, min(5.0, settings.claim_seconds / 4))


async def until_recorded(
    ctx: Context[NotifySettings],
    what: str,
    write: Callable[[asyncpg.Connection], Awaitable[T]],
) -> T:
    """Run `write` until the database takes it, waiting out an outage with backoff."""
    tries = 0
    while True:
        try:
            async with ctx.pool.acquire() as conn:
                return await write(conn)
        except DATABASE_AWAY as exc:
            tries += 1
            log.warning("cannot record; retrying", what=what, tries=tries, error=repr(exc))
            await asyncio.sleep(record_backoff(tries, cap=record_cap(ctx.settings)))


async def record_failure(
    ctx: Context[NotifySettings],
    *,
    token: UUID,
    d: asyncpg.Record,
    kind: NotificationKind,
    channel: str,
    failure: Failure,
) -> None:
    """Retry the delivery later with backoff, or give it up (a permanent failure, or the
    attempt limit reached) with its notification.failed event."""
    settings = ctx.settings
    reason = mask(failure.reason)[:500]
    give_up = gives_up(
        attempts=d["attempts"], max_attempts=settings.max_attempts, permanent=failure.permanent
    )
    log.warning(
        "delivery failed",
        delivery_id=d["id"],
        ticket_id=str(d["ticket_id"]),
        kind=kind,
        channel=channel,
        attempts=d["attempts"],
        error=reason,
        final=give_up,
    )
    if not give_up:
        delay = retry_delay(d["attempts"]).total_seconds()
        await until_recorded(
            ctx,
            "retry",
            lambda conn: repo.mark_retry(
                conn, d["id"], token=token, delay_seconds=delay, error=reason
            ),
        )
        return
    event = new_event(
        NotificationFailed(
            delivery_id=d["id"],
            ticket_id=d["ticket_id"],
            kind=kind,
            channel=channel,
            attempts=d["attempts"],
            error=reason,
            failed_at=now(),
        ),
        producer=PRODUCER,
    )

    async def give_up_for_good(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            if await repo.mark_failed(conn, d["id"], token=token, error=reason):
                await outbox.add(conn, [event])

    await until_recorded(ctx, "failure", give_up_for_good)


class Senders:
    """`settings.senders` SMTP connections, each working off leased batches of deliveries."""

    def __init__(self, settings: NotifySettings, wakeup: Wakeup) -> None:
        self._s = settings
        self._envelope_from = parseaddr(settings.mail_from)[1]
        self._from = from_header(settings.mail_from)
        self._reply_to = from_header(settings.reply_to or settings.mail_from)
        self._wakeup = wakeup
        self._wake = wakeup.event()
        self._marks = SentMarks()
        # Sent, and the `sent` mark not yet recorded: no sender of this process claims these.
        self._unrecorded: set[int] = set()

    async def run(self, ctx: Context[NotifySettings]) -> None:
        await asyncio.gather(
            self._marks.run(partial(self._record_sent, ctx)),
            *(self._sender(ctx, i) for i in range(self._s.senders)),
        )

    async def _sender(self, ctx: Context[NotifySettings], number: int) -> None:
        smtp = SmtpConnection(self._s)
        while True:
            raise_if_cancelled()
            try:
                token = uuid4()
                async with ctx.pool.acquire() as conn:
                    batch = await repo.claim(
                        conn,
                        token=token,
                        limit=self._s.send_batch,
                        senders=self._s.senders,
                        lease_seconds=self._s.claim_seconds,
                        triage_grace_seconds=self._s.triage_grace_seconds,
                        articles_grace_seconds=self._s.articles_grace_seconds,
                        exclude=sorted(self._unrecorded),
                    )
                    if not batch:
                        self._wake.clear()
                        idle = await self._idle_seconds(conn)
                if not batch:
                    await smtp.close()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(idle):
                            await self._wake.wait()
                    continue
                await self._work(ctx, smtp, token=token, batch=batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the claim or a record failed; leases run out, then retry
                log.warning("sender failed", sender=number, error=repr(exc))
                smtp.drop()
                await asyncio.sleep(1)

    async def _idle_seconds(self, conn: asyncpg.Connection) -> float:
        """How long an idle sender may sleep unless woken: until the first waiting delivery
        comes due, at most `IDLE_SECONDS`; every second while nobody listens for NOTIFY."""
        if not self._wakeup.listening:
            return 1.0
        due = await repo.seconds_to_next(
            conn,
            lease_seconds=self._s.claim_seconds,
            triage_grace_seconds=self._s.triage_grace_seconds,
            articles_grace_seconds=self._s.articles_grace_seconds,
            channels=[EMAIL],
            exclude=sorted(self._unrecorded),
        )
        return IDLE_SECONDS if due is None else min(IDLE_SECONDS, max(MIN_WAIT_SECONDS, due))

    async def _work(
        self,
        ctx: Context[NotifySettings],
        smtp: SmtpConnection,
        *,
        token: UUID,
        batch: Sequence[asyncpg.Record],
    ) -> None:
        """Each delivery of the batch in turn, renewing the lease before it can run out."""
        remaining = list(batch)
        renew_at = time.monotonic() + self._s.claim_seconds / 2
        previous: asyncio.Future[None] | None = None  # the last message's sent mark
        while remaining:
            if time.monotonic() >= renew_at:
                renewal = partial(
                    repo.renew,
                    delivery_ids=[d["id"] for d in remaining],
                    token=token,
                    lease_seconds=self._s.claim_seconds,
                )
                kept = await until_recorded(ctx, "lease", renewal)
                remaining = [d for d in remaining if d["id"] in kept]
                renew_at = time.monotonic() + self._s.claim_seconds / 2
                continue
            delivery = remaining.pop(0)
            reached, previous = await self._deliver(
                ctx, smtp, token=token, d=delivery, previous=previous
            )
            if not reached and remaining:
                release = partial(
                    repo.release,
                    delivery_ids=[d["id"] for d in remaining],
                    token=token,
                    delay_seconds=retry_delay(1).total_seconds(),
                    error="not attempted: the SMTP server could not be reached",
                )
                await until_recorded(ctx, "release", release)
                break
        if previous is not None:
            await previous

    async def _deliver(
        self,
        ctx: Context[NotifySettings],
        smtp: SmtpConnection,
        *,
        token: UUID,
        d: asyncpg.Record,
        previous: asyncio.Future[None] | None,
    ) -> tuple[bool, asyncio.Future[None] | None]:
        """Send one delivery and record its outcome. Returns whether the server could be
        reached, and the sent mark this connection must see recorded before its next data:
        this delivery's once the server took it, else still `previous`."""
        kind = NotificationKind(d["kind"])
        if d["attempts"] > self._s.max_attempts:  # earlier attempts ended without an outcome
            reason = f"gave up after {self._s.max_attempts} attempts without a recorded outcome"
            await record_failure(
                ctx, token=token, d=d, kind=kind, channel=EMAIL, failure=Failure(reason, True)
            )
            return True, previous
        try:
            smtputf8 = await smtp.ready()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            smtp.drop()
            failure = Failure(f"cannot reach the SMTP server: {classify(exc).reason}", False)
            await record_failure(ctx, token=token, d=d, kind=kind, channel=EMAIL, failure=failure)
            return False, previous
        try:
            to = recipient_address(d["email"], server_smtputf8=smtputf8)
            message = self._compose(kind, d, to)
        except Exception as exc:  # retrying cannot change an address or a template
            failure = classify(exc)
            if failure.permanent is False:
                failure = Failure(f"cannot compose: {exc!r}", permanent=True)
            await record_failure(ctx, token=token, d=d, kind=kind, channel=EMAIL, failure=failure)
            return True, previous
        try:
            await smtp.envelope(envelope_from=self._envelope_from, to=to)
            if previous is not None:
                await previous  # at most one message per connection without its mark
                previous = None
            await smtp.data(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if previous is not None and previous.done() and previous.exception() is not None:
                raise  # the previous mark failed: this sender stops and starts over
            failure = classify(exc)
            if failure.reconnect:
                smtp.drop()
            await record_failure(ctx, token=token, d=d, kind=kind, channel=EMAIL, failure=failure)
            return True, previous
        return True, self._sent(d=d, kind=kind)

    def _compose(self, kind: NotificationKind, d: asyncpg.Record, to: Address) -> bytes:
        values = {**dict(d), **d["payload"]}  # a notice's payload names its own language
        if kind in SLA_KINDS:
            context = agent_message_context(values)
        elif kind == NotificationKind.MENTION:
            context = values  # the note and its link, as desk wrote them
        else:
            context = message_context(
                values,
                kind=kind,
                now=now(),
                fallback_minutes=self._s.fallback_first_response_minutes,
            )
        return email_message(
            sender=self._from,
            reply_to=self._reply_to,
            to=to,
            rendered=render(kind, values["language"], context),
            delivery_key=d["delivery_key"],
            ticket_id=d["ticket_id"],
            number=d["number"],
            kind=kind,
        )

    def _sent(self, *, d: asyncpg.Record, kind: NotificationKind) -> asyncio.Future[None]:
        """The server took it: queue its sent mark; the future is done once it is recorded."""
        event = new_event(
            NotificationSent(
                delivery_id=d["id"],
                ticket_id=d["ticket_id"],
                kind=kind,
                channel=EMAIL,
                sent_at=now(),
            ),
            producer=PRODUCER,
        )
        self._unrecorded.add(d["id"])
        return self._marks.add(d["id"], event)

    async def _record_sent(
        self, ctx: Context[NotifySettings], sent: list[tuple[int, Envelope[Any]]]
    ) -> None:
        """Record every queued sent mark, however long the database takes to answer."""
        try:
            await until_recorded(ctx, "sent", lambda conn: repo.mark_sent(conn, sent))
        finally:
            self._unrecorded.difference_update(delivery_id for delivery_id, _ in sent)
