"""notify's edges: ticket events become deliveries; senders work them off over SMTP."""

import asyncio
import contextlib
from email.utils import parseaddr
from typing import Any

import aiosmtplib
import asyncpg
import structlog
from jinja2 import TemplateError

from services.notify import repo
from services.notify.domain import confirmation_context, email_message, render, retry_delay
from services.notify.settings import NotifySettings
from shared import outbox
from shared.events import (
    Envelope,
    NotificationFailed,
    NotificationKind,
    NotificationSent,
    SurveyRequested,
    TicketCreated,
    TicketReplied,
    TicketResolved,
    TicketTriaged,
    new_event,
    now,
)
from shared.inbox import Handler
from shared.service import Context

log = structlog.get_logger(__name__)
PRODUCER = "notify"


async def on_created(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    rows = []
    for e in events:
        t: TicketCreated = e.data
        rows.append(
            {
                "ticket_id": str(t.ticket_id),
                "number": t.number,
                "name": t.learner.name,
                "email": t.learner.email,
                "language": t.language,
                "subject": t.subject,
                "created_at": t.created_at.isoformat(),
            }
        )
    await repo.upsert_contacts(conn, rows)
    await repo.queue_confirmations(conn, [e.data.ticket_id for e in events])


async def on_triaged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    rows = [
        {
            "ticket_id": str(e.data.ticket_id),
            "priority": e.data.priority,
            "first_response_due_at": e.data.first_response_due_at.isoformat(),
        }
        for e in events
    ]
    await repo.upsert_triage(conn, rows)


def _delivery(kind: NotificationKind, key: str, e: Envelope[Any], **payload: Any) -> dict[str, Any]:
    return {
        "delivery_key": f"{kind}:{key}",
        "ticket_id": str(e.data.ticket_id),
        "kind": kind,
        "payload": payload,
    }


async def on_replied(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.add_deliveries(
        conn,
        [
            _delivery(NotificationKind.REPLY, str(e.data.reply_id), e, body=e.data.body)
            for e in events
        ],
    )


async def on_resolved(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.add_deliveries(
        conn,
        [
            _delivery(
                NotificationKind.CONFIRM_REQUEST,
                str(e.event_id),
                e,
                resolution=e.data.resolution,
                confirm_url=e.data.confirm_url,
            )
            for e in events
        ],
    )


async def on_survey(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.add_deliveries(
        conn,
        [
            _delivery(
                NotificationKind.SURVEY, str(e.data.survey_id), e, survey_url=e.data.survey_url
            )
            for e in events
        ],
    )


EVENT_HANDLERS: dict[str, Handler] = {
    TicketCreated.TYPE: on_created,
    TicketTriaged.TYPE: on_triaged,
    TicketReplied.TYPE: on_replied,
    TicketResolved.TYPE: on_resolved,
    SurveyRequested.TYPE: on_survey,
}


class Senders:
    """Work off pending deliveries over SMTP, marking each one sent as soon as the server took it.

    SMTP is not transactional: the only duplicate a crash can cause is a message the server
    accepted whose `sent` mark did not commit. That window is one local transaction per message.
    """

    def __init__(self, settings: NotifySettings) -> None:
        self._s = settings
        self._envelope_from = parseaddr(settings.mail_from)[1]
        self._wake = asyncio.Event()

    async def run(self, ctx: Context[NotifySettings]) -> None:
        listener = await asyncpg.connect(ctx.settings.pg_dsn.get_secret_value())
        await listener.add_listener("notify_deliveries", lambda *_: self._wake.set())
        try:
            await asyncio.gather(*(self._sender(ctx, i) for i in range(self._s.senders)))
        finally:
            await listener.close()

    async def _sender(self, ctx: Context[NotifySettings], number: int) -> None:
        smtp: aiosmtplib.SMTP | None = None
        while True:
            try:
                async with ctx.pool.acquire() as conn:
                    batch = await repo.claim(
                        conn,
                        limit=self._s.send_batch,
                        lease_seconds=self._s.claim_seconds,
                        triage_grace_seconds=self._s.triage_grace_seconds,
                    )
                if not batch:
                    if smtp is not None:
                        with contextlib.suppress(Exception):
                            await smtp.quit()
                        smtp = None
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                    continue
                for delivery in batch:
                    smtp = await self._deliver(ctx, smtp, delivery)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sender failed", sender=number, error=repr(exc))
                smtp = None
                await asyncio.sleep(1)

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._s
        smtp = aiosmtplib.SMTP(hostname=s.smtp_host, port=s.smtp_port, start_tls=s.smtp_starttls)
        await smtp.connect()
        if s.smtp_username and s.smtp_password:
            await smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
        return smtp

    async def _deliver(
        self, ctx: Context[NotifySettings], smtp: aiosmtplib.SMTP | None, d: asyncpg.Record
    ) -> aiosmtplib.SMTP | None:
        kind = NotificationKind(d["kind"])
        try:
            message = self._compose(kind, d)
        except (TemplateError, KeyError, ValueError) as exc:  # retrying cannot fix a template
            await self._failed(ctx, d, kind, f"cannot compose: {exc!r}", permanent=True)
            return smtp
        try:
            if smtp is None or not smtp.is_connected:
                smtp = await self._connect()
            await smtp.sendmail(self._envelope_from, [d["email"]], message)
        except aiosmtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.code < 600
            await self._failed(ctx, d, kind, f"{exc.code} {exc.message}", permanent=permanent)
            return smtp
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._failed(ctx, d, kind, repr(exc), permanent=False)
            return None
        sent = new_event(
            NotificationSent(
                delivery_id=d["id"], ticket_id=d["ticket_id"], kind=kind, sent_at=now()
            ),
            producer=PRODUCER,
        )
        async with ctx.pool.acquire() as conn:
            await repo.mark_sent(conn, d["id"], sent)
        return smtp

    def _compose(self, kind: NotificationKind, d: asyncpg.Record) -> bytes:
        context = {**dict(d), **d["payload"]}
        if kind is NotificationKind.CONFIRMATION:
            context.update(
                confirmation_context(
                    context, fallback_minutes=self._s.fallback_first_response_minutes
                )
            )
        return email_message(
            sender=self._s.mail_from,
            to=d["email"],
            rendered=render(kind, d["language"], context),
            delivery_key=d["delivery_key"],
            number=d["number"],
            kind=kind,
        )

    async def _failed(
        self,
        ctx: Context[NotifySettings],
        d: asyncpg.Record,
        kind: NotificationKind,
        error: str,
        *,
        permanent: bool,
    ) -> None:
        give_up = permanent or d["attempts"] >= self._s.max_attempts
        log.warning(
            "delivery failed", ticket_id=str(d["ticket_id"]), kind=kind, error=error, final=give_up
        )
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not give_up:
                delay = retry_delay(d["attempts"]).total_seconds()
                await repo.mark_retry(conn, d["id"], delay_seconds=delay, error=error)
                return
            await repo.mark_failed(conn, d["id"], error=error)
            await outbox.add(
                conn,
                [
                    new_event(
                        NotificationFailed(
                            delivery_id=d["id"],
                            ticket_id=d["ticket_id"],
                            kind=kind,
                            attempts=d["attempts"],
                            error=error[:500],
                            failed_at=now(),
                        ),
                        producer=PRODUCER,
                    )
                ],
            )
