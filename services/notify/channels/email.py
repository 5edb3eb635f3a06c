"""The e-mail channel: a kept-open SMTP connection, and what each way of failing means."""

import contextlib
import time
from dataclasses import dataclass

import aiosmtplib

from services.notify.domain import Address, Undeliverable
from services.notify.settings import NotifySettings

# An idle connection is closed by many servers after a while; past this we open a new one
# rather than lose the next delivery's attempt to a stale socket.
IDLE_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one delivery did not go, and what that means for it and for the connection."""

    reason: str
    permanent: bool  # retrying cannot help: give the delivery up now
    reconnect: bool = False  # the connection is in an unknown state: open a new one


def classify(exc: BaseException) -> Failure:
    """Every exception a delivery can raise, as a failure of that delivery."""
    if isinstance(exc, Undeliverable):
        return Failure(str(exc), permanent=True)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return classify(exc.recipients[0])
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return Failure(f"SMTP connection lost: {exc}", permanent=False, reconnect=True)
    if isinstance(exc, aiosmtplib.SMTPHeloError | aiosmtplib.SMTPAuthenticationError):
        # The server refuses us, not this message: every delivery would fail the same way.
        return Failure(f"SMTP server refused the session: {exc}", permanent=False, reconnect=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return Failure(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return Failure(f"SMTP server cannot take it: {exc}", permanent=True)
    if isinstance(exc, ValueError):  # a value that cannot go on the wire (UnicodeError too)
        return Failure(f"cannot send: {exc!r}", permanent=True)
    if isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError):
        return Failure(f"SMTP error: {exc!r}", permanent=False, reconnect=True)
    return Failure(f"unexpected error: {exc!r}", permanent=False, reconnect=True)


class SmtpConnection:
    """One SMTP session, opened when needed and kept open between messages."""

    def __init__(self, settings: NotifySettings) -> None:
        self._s = settings
        self._smtp: aiosmtplib.SMTP | None = None
        self._used = 0.0

    async def ready(self) -> bool:
        """Connect if needed; whether the server offers SMTPUTF8."""
        if self._smtp is not None and (
            not self._smtp.is_connected or time.monotonic() - self._used > IDLE_SECONDS
        ):
            await self.close()
        if self._smtp is None:
            s = self._s
            smtp = aiosmtplib.SMTP(
                hostname=s.smtp_host,
                port=s.smtp_port,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout_seconds,
            )
            await smtp.connect()
            await smtp.ehlo()
            if s.smtp_username and s.smtp_password:
                await smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            self._smtp = smtp
        self._used = time.monotonic()
        return self._smtp.supports_extension("smtputf8")

    async def envelope(self, *, envelope_from: str, to: Address) -> None:
        """MAIL FROM and RCPT TO: everything of a message but its data, which commits it.

        Split from `data` so that a sender can open the next message's envelope while the
        previous message's sent mark is being written (see `senders`).
        """
        smtp = self._session()
        if to.smtputf8 and not smtp.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
        encoding = "utf-8" if to.smtputf8 else "ascii"
        try:
            await smtp.mail(
                envelope_from, options=["SMTPUTF8"] if to.smtputf8 else [], encoding=encoding
            )
            await smtp.rcpt(to.mailbox, encoding=encoding)
        except aiosmtplib.SMTPResponseException:
            await self._reset()
            raise

    async def data(self, message: bytes) -> None:
        """Hand the message of the open envelope to the server; returns once it answered
        250, after which the message is the server's."""
        try:
            await self._session().data(message)
        except aiosmtplib.SMTPResponseException:
            await self._reset()
            raise
        self._used = time.monotonic()

    def _session(self) -> aiosmtplib.SMTP:
        if self._smtp is None:
            raise aiosmtplib.SMTPServerDisconnected("not connected")
        return self._smtp

    async def _reset(self) -> None:
        """Clear a refused envelope so that the connection can take the next message; a
        connection that cannot even do that is dropped."""
        try:
            await self._session().rset()
        except Exception:
            self.drop()

    def drop(self) -> None:
        """Forget a connection in an unknown state; the next delivery opens a new one."""
        if self._smtp is not None:
            self._smtp.close()
        self._smtp = None

    async def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(Exception):
                await self._smtp.quit()
            self.drop()
