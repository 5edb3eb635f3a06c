"""The IMAP poller: for companies that keep a support mailbox, each unseen mail in its folder
becomes a submission (aioimaplib), exactly as the SMTP gateway would have made it.

A mail is flagged \\Seen only after its outcome is settled: the submission acknowledged by
Kafka, the noise counted, or the refusal's bounce handed to the SMTP server. A crash in between
leaves it unseen, so the next round reads it again, and its ids (from its Message-ID) make that
harmless. The poller waits for news with IDLE when the server offers it, else polls.
"""

import asyncio
import contextlib
import re
from dataclasses import dataclass

import aiosmtplib
import structlog
from aioimaplib import IMAP4, IMAP4_SSL, Abort, CommandTimeout, Response
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.intake.channels.email import (
    DROPPED,
    REFUSED,
    MailSettings,
    Noise,
    Refused,
    bounce,
    read,
    reply_address,
)
from services.intake.handlers import accept
from services.intake.settings import IntakeSettings
from shared.cancel import raise_if_cancelled
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import now
from shared.service import Context

log = structlog.get_logger(__name__)
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
RECONNECT_SECONDS = 5.0
SMTP_UNAVAILABLE: tuple[type[Exception], ...] = (aiosmtplib.SMTPException, *TRANSIENT_DRIVER_ERRORS)


class ImapError(Exception):
    """The IMAP server said NO or BAD, or answered what the poller cannot read."""


# The server or the connection failed: reconnect and go on.
IMAP_UNAVAILABLE: tuple[type[Exception], ...] = (
    *TRANSIENT_DRIVER_ERRORS,
    Abort,
    CommandTimeout,
    ImapError,
)


class OutboundSmtp(BaseSettings):
    """The SMTP server bounces go out through: the same CARELOOP_SMTP_* settings notify uses."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_SMTP_", extra="ignore")

    host: str = Field("127.0.0.1", description="SMTP server.")
    port: int = Field(11025, description="SMTP port.")
    username: str | None = Field(None, description="SMTP login, if it needs one.")
    password: SecretStr | None = Field(None, description="SMTP password.")
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    timeout_seconds: float = Field(30, description="Longest wait for the SMTP server.")


def _ok(response: Response, what: str) -> Response:
    if response.result != "OK":
        raise ImapError(f"{what}: {response.result} {response.lines!r}")
    return response


@dataclass
class Poller:
    """One mailbox folder read into submissions."""

    ctx: Context[IntakeSettings]
    settings: MailSettings
    smtp: OutboundSmtp

    async def connect(self) -> IMAP4:
        """A logged-in client with the folder selected."""
        settings = self.settings
        assert settings.imap_host is not None
        kind = IMAP4_SSL if settings.imap_ssl else IMAP4
        client = kind(host=settings.imap_host, port=settings.imap_port, timeout=30)
        await client.wait_hello_from_server()
        _ok(
            await client.login(settings.imap_user, settings.imap_password.get_secret_value()),
            "LOGIN",
        )
        _ok(await client.select(settings.imap_folder), f"SELECT {settings.imap_folder}")
        return client

    async def poll_once(self, client: IMAP4) -> int:
        """Settle every unseen mail in the folder; returns how many were settled. Stops at
        the first one that cannot be settled now (Kafka or SMTP away): it stays unseen."""
        found = _ok(await client.uid_search("UNSEEN", charset=None), "UID SEARCH UNSEEN")
        uids = [uid.decode() for line in found.lines[:-1] for uid in bytes(line).split()]
        settled = 0
        for uid in uids:
            if not await self._settle(client, uid):
                break
            _ok(await client.uid("store", uid, "+FLAGS.SILENT (\\Seen)"), f"STORE {uid}")
            settled += 1
        return settled

    async def _settle(self, client: IMAP4, uid: str) -> bool:
        """Turn one mail into its outcome; False when it has to wait for the next round."""
        head = _ok(await client.uid("fetch", uid, "(RFC822.SIZE BODY.PEEK[HEADER])"), "FETCH")
        size_match = next((m for line in head.lines if (m := _SIZE.search(bytes(line)))), None)
        size = int(size_match[1]) if size_match else 0
        raw = _literal(head)
        if size <= self.settings.max_bytes:
            raw = _literal(_ok(await client.uid("fetch", uid, "(BODY.PEEK[])"), "FETCH"))
        try:
            mail = read(raw, max_bytes=self.settings.max_bytes, received_at=now(), size=size)
        except Refused as refused:
            return await self._refuse(raw, refused, uid=uid)
        if isinstance(mail, Noise):
            DROPPED.labels(mail.kind).inc()
            log.info("automatic mail dropped", kind=mail.kind, reason=mail.reason, uid=uid)
            return True
        try:
            await accept(self.ctx, [mail])
        except TRANSIENT_DRIVER_ERRORS as exc:
            log.warning("mail not acknowledged by Kafka; next round", error=repr(exc), uid=uid)
            return False
        log.info("mail accepted", ticket_id=str(mail.ticket_id), uid=uid)
        return True

    async def _refuse(self, raw: bytes, refused: Refused, *, uid: str) -> bool:
        """Bounce a refused mail to its sender; the mail itself is not stored."""
        REFUSED.labels(refused.problem).inc()
        to = reply_address(raw)
        log.info("mail refused", problem=refused.problem, reason=refused.reason, uid=uid)
        if to is None:
            return True  # nobody to tell: counted and logged only
        reply = bounce(
            raw,
            refused,
            to=to,
            bounce_from=self.settings.bounce_from,
            hostname=self.settings.gateway_hostname,
        )
        smtp = self.smtp
        try:
            await aiosmtplib.send(
                reply,
                sender="",  # the null sender: nobody answers an automatic reply (RFC 3834)
                recipients=[to],
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password else None,
                start_tls=smtp.starttls,
                timeout=smtp.timeout_seconds,
            )
        except SMTP_UNAVAILABLE as exc:
            log.warning("bounce not sent; next round", error=repr(exc), uid=uid)
            return False
        return True

    async def wait(self, client: IMAP4) -> None:
        """Until the folder may have news: an IDLE push, else the interval."""
        interval = self.settings.imap_interval_seconds
        if not client.has_capability("IDLE"):
            await asyncio.sleep(interval)
            return
        idle = await client.idle_start(timeout=interval)
        try:
            await client.wait_server_push(timeout=interval + 5)
        except TimeoutError:
            pass
        finally:
            client.idle_done()
            async with asyncio.timeout(client.timeout):
                await idle

    async def run(self) -> None:
        """Forever: connect, settle what is unseen, wait for news; reconnect after failures."""
        while True:
            client: IMAP4 | None = None
            try:
                client = await self.connect()
                log.info("imap poller connected", folder=self.settings.imap_folder)
                while True:
                    if await self.poll_once(client) == 0:
                        await self.wait(client)
                    raise_if_cancelled()
            except IMAP_UNAVAILABLE as exc:
                log.warning("imap mailbox unavailable; reconnecting", error=repr(exc))
            finally:
                if client is not None:
                    await _close(client)
            await asyncio.sleep(RECONNECT_SECONDS)


def _literal(response: Response) -> bytes:
    """The message bytes in a FETCH answer (the literal after `BODY[] {n}`)."""
    for line in response.lines:
        if isinstance(line, bytearray):
            return bytes(line)
    raise ImapError(f"FETCH returned no message: {response.lines[:2]!r}")


async def _close(client: IMAP4) -> None:
    with contextlib.suppress(*IMAP_UNAVAILABLE):  # the connection is going away either way
        async with asyncio.timeout(5):
            await client.logout()


async def run(ctx: Context[IntakeSettings]) -> None:
    """intake's background task: the poller, when CARELOOP_MAIL_IMAP_HOST is set."""
    settings = MailSettings()
    if settings.imap_host is None:
        return
    await Poller(ctx=ctx, settings=settings, smtp=OutboundSmtp()).run()
