"""The inbound SMTP gateway: a mail server forwards the support address here (aiosmtpd, inside
intake's process), and each mail becomes a submission before the gateway says 250.

The SMTP reply is the sender's receipt, so every answer tells the sending server what to do:
250 only once Kafka acknowledged the submission (or the mail was noise, which is accepted and
dropped so that no server bounces a bounce); 451 when Kafka did not acknowledge (the server
retries later, and the mail's deterministic ids make the retry harmless); 450 over the sender's
rate limit; 550/552/554 with the reason for a mail that can never be a ticket, which the
sending server turns into a bounce to the learner.
"""

import asyncio
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.intake.channels.email import (
    DROPPED,
    REFUSED,
    MailSettings,
    Noise,
    Problem,
    Refused,
    read,
)
from services.intake.domain import mailbox_of
from services.intake.handlers import accept
from services.intake.settings import IntakeSettings
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import now
from shared.logs import mask
from shared.ratelimit import Limit, RateLimiter
from shared.service import Context

log = structlog.get_logger(__name__)

# Each refusal's reply code and enhanced status code (RFC 3463).
_REPLIES = {
    Problem.TOO_LARGE: "552 5.3.4",
    Problem.MALFORMED: "554 5.6.0",
    Problem.NO_SENDER: "550 5.1.7",
    Problem.EMPTY: "554 5.6.0",
}


def _reply_text(text: str) -> str:
    """`text` as it can stand in an SMTP reply: one line of ASCII."""
    flat = " ".join(text.split())
    return flat.encode("ascii", "backslashreplace").decode("ascii")[:400]


class Gateway:
    """aiosmtpd's handler: recipients checked at RCPT, the mail read and submitted at DATA."""

    def __init__(self, ctx: Context[IntakeSettings], settings: MailSettings) -> None:
        self._ctx = ctx
        self._settings = settings
        self._limiter = RateLimiter(
            lambda: ctx.redis,
            scope="intake-mail",
            timeout_seconds=ctx.settings.redis_timeout_seconds,
        )

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self._settings.accepts_recipient(address):
            return f"550 5.1.1 <{_reply_text(address)}>: not a support address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            mail = read(
                raw,
                max_bytes=self._settings.max_bytes,
                received_at=now(),
                envelope_sender=envelope.mail_from,
            )
        except Refused as refused:
            REFUSED.labels(refused.problem).inc()
            log.info("mail refused", problem=refused.problem, reason=refused.reason)
            return f"{_REPLIES[refused.problem]} {_reply_text(refused.reason)}"
        if isinstance(mail, Noise):
            DROPPED.labels(mail.kind).inc()
            log.info("automatic mail dropped", kind=mail.kind, reason=mail.reason)
            return "250 2.0.0 OK: automatic mail, not a ticket"
        assert mail.learner.email is not None  # an e-mail always has its sender's address
        sender = mailbox_of(mail.learner.email)
        verdict = await self._limiter.hit(
            [
                Limit(
                    "sender",
                    sender,
                    self._settings.rate_per_sender,
                    self._settings.rate_sender_window_seconds,
                )
            ]
        )
        if not verdict.allowed:
            log.info("mail over the sender's rate limit", sender=mask(sender))
            return (
                "450 4.7.1 Too many messages from this sender; "
                f"try again in {verdict.retry_after_seconds} s"
            )
        try:
            await accept(self._ctx, [mail])
        except TRANSIENT_DRIVER_ERRORS as exc:
            log.error("mail not acknowledged by Kafka; asking to retry", error=repr(exc))
            return "451 4.3.0 Temporarily unable to store the message; try again later"
        log.info("mail accepted", ticket_id=str(mail.ticket_id), message_id=str(mail.message_id))
        return f"250 2.0.0 OK: ticket {mail.ticket_id}"


async def serve(ctx: Context[IntakeSettings], settings: MailSettings) -> asyncio.Server:
    """The gateway listening on its host and port (it serves until closed)."""
    gateway = Gateway(ctx, settings)

    def protocol() -> Any:
        return SMTP(
            gateway,
            data_size_limit=settings.max_bytes,
            enable_SMTPUTF8=True,
            hostname=settings.gateway_hostname,
            ident="careloop",
        )

    server = await asyncio.get_running_loop().create_server(
        protocol, host=settings.gateway_host, port=settings.gateway_port
    )
    log.info("smtp gateway listening", host=settings.gateway_host, port=settings.gateway_port)
    return server


async def run(ctx: Context[IntakeSettings]) -> None:
    """intake's background task: the gateway until the service stops (none with port 0).

    A port already taken (a second intake replica on one host) is logged, not fatal: the
    web form and the Kafka consumer go on without the gateway."""
    settings = MailSettings()
    if settings.gateway_port == 0:
        return
    try:
        server = await serve(ctx, settings)
    except OSError as exc:
        log.error("smtp gateway not started", port=settings.gateway_port, error=repr(exc))
        return
    async with server:
        await server.serve_forever()
