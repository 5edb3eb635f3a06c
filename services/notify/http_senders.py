"""notify's second delivery path: SMS, WeChat and Weibo messages, each one HTTP call to its
provider (`services.notify.channels`), with the same leases, retries, backoff and permanent
failures as e-mail, and the same notification.sent / .failed events naming the channel.

Like SMTP, a provider's API is not transactional: the one duplicate a fault can cause is a
message the provider took whose `sent` mark never commits. Each mark is written as soon as its
call returns, and a lease survives a PostgreSQL restart (see `repo.claim`), so that is at most
the batch in flight when the process died. The SMS provider de-duplicates by the delivery's
key (`Idempotency-Key`), so a text is never sent twice.
"""

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import structlog

from services.notify import repo
from services.notify.channels import SMS, ChannelError, ChannelSender, http_senders
from services.notify.channels.email import Failure
from services.notify.channels.sms import SmsSettings, segments
from services.notify.domain import Undeliverable, message_context, render, sms_text
from services.notify.senders import (
    IDLE_SECONDS,
    MIN_WAIT_SECONDS,
    PRODUCER,
    Wakeup,
    record_failure,
    until_recorded,
)
from services.notify.settings import NotifySettings
from shared.cancel import raise_if_cancelled
from shared.events import NotificationKind, NotificationSent, new_event, now
from shared.service import Context

log = structlog.get_logger(__name__)


def compose(
    d: Mapping[str, Any], *, at: datetime, fallback_minutes: float, sms_max_segments: int
) -> str:
    """The text of delivery `d` on its channel: an SMS fitted to the segment limit, else the
    WeChat/Weibo text."""
    kind = d["kind"]
    # a notice's payload names its own language
    context = message_context(
        {**d, **d["payload"]}, kind=kind, now=at, fallback_minutes=fallback_minutes
    )
    language = context["language"]
    if d["channel"] == SMS:
        return sms_text(
            kind,
            language,
            context,
            fits=lambda text: segments(text) <= sms_max_segments,
        )
    return render(kind, language, context, channel=d["channel"]).body.strip()


def classify(exc: BaseException) -> Failure:
    """A sender's exception as the failure of one delivery: anything unforeseen is worth
    another try."""
    if isinstance(exc, Undeliverable):
        return Failure(str(exc), permanent=True)
    if isinstance(exc, ChannelError):
        return Failure(exc.reason, permanent=exc.permanent)
    if isinstance(exc, httpx.HTTPError):
        return Failure(f"provider unreachable: {exc!r}", permanent=False)
    return Failure(f"unexpected error: {exc!r}", permanent=False)


class HttpSenders:
    """Leases due deliveries of the HTTP channels in batches and sends a batch's messages at
    once, each through its channel's sender."""

    def __init__(self, settings: NotifySettings, wakeup: Wakeup) -> None:
        self._s = settings
        self._wakeup = wakeup
        self._wake = wakeup.event()
        self._sms_max_segments = SmsSettings().max_segments

    async def run(self, ctx: Context[NotifySettings]) -> None:
        channels = [c for c in self._s.channels if c != "email"]
        if not channels:
            return
        # The calls of one batch share the client's connections; each sender sets its timeout.
        async with httpx.AsyncClient() as client:
            senders = http_senders(channels, client)
            while True:
                raise_if_cancelled()
                try:
                    idle = await self._round(ctx, senders)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the claim failed; leases run out, then retry
                    log.warning("http sender failed", error=repr(exc))
                    idle = 1.0
                if idle:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(idle):
                            await self._wake.wait()

    async def _round(
        self, ctx: Context[NotifySettings], senders: dict[str, ChannelSender]
    ) -> float:
        """Send one leased batch; 0 when there was one, else how long to sleep unless woken."""
        token = uuid4()
        async with ctx.pool.acquire() as conn:
            batch = await repo.claim_http(
                conn,
                token=token,
                channels=list(senders),
                limit=self._s.http_batch,
                lease_seconds=self._s.claim_seconds,
                triage_grace_seconds=self._s.triage_grace_seconds,
                articles_grace_seconds=self._s.articles_grace_seconds,
            )
            if not batch:
                self._wake.clear()
                return await self._idle_seconds(conn, list(senders))
        await asyncio.gather(*(self._deliver(ctx, senders, token=token, d=d) for d in batch))
        return 0

    async def _idle_seconds(self, conn: asyncpg.Connection, channels: list[str]) -> float:
        if not self._wakeup.listening:
            return 1.0
        due = await repo.seconds_to_next(
            conn,
            lease_seconds=self._s.claim_seconds,
            triage_grace_seconds=self._s.triage_grace_seconds,
            articles_grace_seconds=self._s.articles_grace_seconds,
            channels=channels,
        )
        return IDLE_SECONDS if due is None else min(IDLE_SECONDS, max(MIN_WAIT_SECONDS, due))

    async def _deliver(
        self,
        ctx: Context[NotifySettings],
        senders: dict[str, ChannelSender],
        *,
        token: UUID,
        d: asyncpg.Record,
    ) -> None:
        kind = NotificationKind(d["kind"])
        channel = d["channel"]
        if d["attempts"] > self._s.max_attempts:  # earlier attempts ended without an outcome
            reason = f"gave up after {self._s.max_attempts} attempts without a recorded outcome"
            failure = Failure(reason, permanent=True)
            await record_failure(ctx, token=token, d=d, kind=kind, channel=channel, failure=failure)
            return
        try:
            if not d["address"]:
                raise Undeliverable(f"the learner has no {channel} address")
            text = compose(
                dict(d),
                at=now(),
                fallback_minutes=self._s.fallback_first_response_minutes,
                sms_max_segments=self._sms_max_segments,
            )
        except Exception as exc:  # retrying cannot change an address or a template
            failure = classify(exc)
            if not failure.permanent:
                failure = Failure(f"cannot compose: {exc!r}", permanent=True)
            await record_failure(ctx, token=token, d=d, kind=kind, channel=channel, failure=failure)
            return
        try:
            provider_id = await senders[channel].send(
                to=d["address"], text=text, delivery_key=d["delivery_key"]
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = classify(exc)
            await record_failure(ctx, token=token, d=d, kind=kind, channel=channel, failure=failure)
            return
        log.info(
            "delivered",
            delivery_id=d["id"],
            ticket_id=str(d["ticket_id"]),
            channel=channel,
            provider_id=provider_id,
        )
        event = new_event(
            NotificationSent(
                delivery_id=d["id"],
                ticket_id=d["ticket_id"],
                kind=kind,
                channel=channel,
                sent_at=now(),
            ),
            producer=PRODUCER,
        )
        await until_recorded(ctx, "sent", lambda conn: repo.mark_sent(conn, [(d["id"], event)]))
