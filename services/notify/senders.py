"""notify's senders: lease due deliveries, send each over SMTP, and record every outcome.

SMTP is not transactional. The one duplicate a fault can cause is a message the server took
(250) whose `sent` mark never commits. So a sender that got a 250 holds on to it: it retries
the mark, with backoff, until the database takes it, and sends nothing else meanwhile; its
lease survives a PostgreSQL restart (see `repo.claim`), so no other sender re-sends it.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from email.utils import parseaddr
from functools import partial
from typing import TypeVar
from uuid import UUID, uuid4

import asyncpg
import structlog

from services.notify import repo
from services.notify.channels.email import Failure, SmtpConnection, classify
from services.notify.domain import (
    Address,
    confirmation_context,
    email_message,
    from_header,
    gives_up,
    recipient_address,
    record_backoff,
    render,
    retry_delay,
)
from services.notify.settings import NotifySettings
from shared import outbox
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import NotificationFailed, NotificationKind, NotificationSent, new_event, now
from shared.logs import mask
from shared.service import Context

log = structlog.get_logger(__name__)
PRODUCER = "notify"
T = TypeVar("T")
# The database is away (down, restarting, shutting our session down): worth waiting for.
DATABASE_AWAY = (*TRANSIENT_DRIVER_ERRORS, asyncpg.exceptions.OperatorInterventionError)


class Senders:
    """`settings.senders` SMTP connections, each working off leased batches of deliveries."""

    def __init__(self, settings: NotifySettings) -> None:
        self._s = settings
        self._envelope_from = parseaddr(settings.mail_from)[1]
        self._from = from_header(settings.mail_from)
        self._wake = asyncio.Event()
        # Sent, and the `sent` mark not yet recorded: no sender of this process claims these.
        self._unrecorded: set[int] = set()
        self._record_cap = max(0.2, min(5.0, settings.claim_seconds / 4))

    async def run(self, ctx: Context[NotifySettings]) -> None:
        await asyncio.gather(
            self._listen(ctx), *(self._sender(ctx, i) for i in range(self._s.senders))
        )

    async def _listen(self, ctx: Context[NotifySettings]) -> None:
        """Wake the senders when deliveries are added; listen again after the database left
        (meanwhile the senders look every second anyway)."""
        while True:
            listener: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                listener = await asyncpg.connect(ctx.settings.pg_dsn.get_secret_value())
                listener.add_termination_listener(lambda *_, lost=lost: lost.set())
                await listener.add_listener("notify_deliveries", lambda *_: self._wake.set())
                self._wake.set()  # what was added while nobody listened
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot listen for deliveries; retrying", error=repr(exc))
                await asyncio.sleep(1)
            finally:
                if listener is not None and not listener.is_closed():
                    await listener.close()

    async def _sender(self, ctx: Context[NotifySettings], number: int) -> None:
        smtp = SmtpConnection(self._s)
        while True:
            try:
                token = uuid4()
                async with ctx.pool.acquire() as conn:
                    batch = await repo.claim(
                        conn,
                        token=token,
                        limit=self._s.send_batch,
                        lease_seconds=self._s.claim_seconds,
                        triage_grace_seconds=self._s.triage_grace_seconds,
                        exclude=sorted(self._unrecorded),
                    )
                if not batch:
                    await smtp.close()
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                    continue
                await self._work(ctx, smtp, token=token, batch=batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the claim or a record failed; leases run out, then retry
                log.warning("sender failed", sender=number, error=repr(exc))
                smtp.drop()
                await asyncio.sleep(1)

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
        while remaining:
            if time.monotonic() >= renew_at:
                renewal = partial(
                    repo.renew,
                    delivery_ids=[d["id"] for d in remaining],
                    token=token,
                    lease_seconds=self._s.claim_seconds,
                )
                kept = await self._until_recorded(ctx, "lease", renewal)
                remaining = [d for d in remaining if d["id"] in kept]
                renew_at = time.monotonic() + self._s.claim_seconds / 2
                continue
            delivery = remaining.pop(0)
            if not await self._deliver(ctx, smtp, token=token, d=delivery) and remaining:
                release = partial(
                    repo.release,
                    delivery_ids=[d["id"] for d in remaining],
                    token=token,
                    delay_seconds=retry_delay(1).total_seconds(),
                    error="not attempted: the SMTP server could not be reached",
                )
                await self._until_recorded(ctx, "release", release)
                return

    async def _deliver(
        self, ctx: Context[NotifySettings], smtp: SmtpConnection, *, token: UUID, d: asyncpg.Record
    ) -> bool:
        """Send one delivery and record its outcome; False when the server cannot be reached."""
        kind = NotificationKind(d["kind"])
        if d["attempts"] > self._s.max_attempts:  # earlier attempts ended without an outcome
            reason = f"gave up after {self._s.max_attempts} attempts without a recorded outcome"
            await self._failed(ctx, token=token, d=d, kind=kind, failure=Failure(reason, True))
            return True
        try:
            smtputf8 = await smtp.ready()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            smtp.drop()
            failure = Failure(f"cannot reach the SMTP server: {classify(exc).reason}", False)
            await self._failed(ctx, token=token, d=d, kind=kind, failure=failure)
            return False
        try:
            to = recipient_address(d["email"], server_smtputf8=smtputf8)
            message = self._compose(kind, d, to)
        except Exception as exc:  # retrying cannot change an address or a template
            failure = classify(exc)
            if failure.permanent is False:
                failure = Failure(f"cannot compose: {exc!r}", permanent=True)
            await self._failed(ctx, token=token, d=d, kind=kind, failure=failure)
            return True
        try:
            await smtp.send(envelope_from=self._envelope_from, to=to, message=message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = classify(exc)
            if failure.reconnect:
                smtp.drop()
            await self._failed(ctx, token=token, d=d, kind=kind, failure=failure)
            return True
        await self._sent(ctx, d=d, kind=kind)
        return True

    def _compose(self, kind: NotificationKind, d: asyncpg.Record, to: Address) -> bytes:
        context = {**dict(d), **d["payload"]}
        if kind is NotificationKind.CONFIRMATION:
            context.update(
                confirmation_context(
                    context, fallback_minutes=self._s.fallback_first_response_minutes
                )
            )
        return email_message(
            sender=self._from,
            to=to,
            rendered=render(kind, d["language"], context),
            delivery_key=d["delivery_key"],
            number=d["number"],
            kind=kind,
        )

    async def _sent(self, ctx: Context[NotifySettings], *, d: asyncpg.Record, kind: str) -> None:
        """The server took it: record that, however long the database takes to answer."""
        event = new_event(
            NotificationSent(
                delivery_id=d["id"], ticket_id=d["ticket_id"], kind=kind, sent_at=now()
            ),
            producer=PRODUCER,
        )
        self._unrecorded.add(d["id"])
        try:
            await self._until_recorded(
                ctx, "sent", lambda conn: repo.mark_sent(conn, d["id"], event)
            )
        finally:
            self._unrecorded.discard(d["id"])

    async def _failed(
        self,
        ctx: Context[NotifySettings],
        *,
        token: UUID,
        d: asyncpg.Record,
        kind: NotificationKind,
        failure: Failure,
    ) -> None:
        reason = mask(failure.reason)[:500]
        give_up = gives_up(
            attempts=d["attempts"], max_attempts=self._s.max_attempts, permanent=failure.permanent
        )
        log.warning(
            "delivery failed",
            delivery_id=d["id"],
            ticket_id=str(d["ticket_id"]),
            kind=kind,
            attempts=d["attempts"],
            error=reason,
            final=give_up,
        )
        if not give_up:
            delay = retry_delay(d["attempts"]).total_seconds()
            await self._until_recorded(
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

        await self._until_recorded(ctx, "failure", give_up_for_good)

    async def _until_recorded(
        self,
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
                await asyncio.sleep(record_backoff(tries, cap=self._record_cap))
