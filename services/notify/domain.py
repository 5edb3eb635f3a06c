"""notify's decisions: what each message says and how it goes on the wire, and when to retry."""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.charset import BASE64, Charset
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formataddr, parseaddr
from typing import Any

from email_validator import EmailNotValidError, validate_email
from jinja2 import Environment, PackageLoader, StrictUndefined

_templates = Environment(
    loader=PackageLoader("services.notify", "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # plain-text e-mail
    keep_trailing_newline=True,
)
LANGUAGES = ("zh", "en")
# Context values that are prose and may span lines; every other string is one line, because
# it may land in the subject line (the template's first line) or another header.
MULTILINE_FIELDS = frozenset({"body", "resolution"})


class Undeliverable(ValueError):
    """This delivery can never go as it stands: retrying cannot help. The text is the reason."""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


# Line breaks of every kind, other C0/C1 controls, and lone surrogates (which UTF-8 cannot hold).
_NOT_IN_A_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")


def one_line(text: str) -> str:
    """`text` fit for a header or a subject line: every run of line breaks and control
    characters becomes one space, so nothing can start a new header or spill into the body."""
    return _NOT_IN_A_LINE.sub(" ", text).strip()


def render(kind: str, language: str, context: dict[str, Any]) -> Rendered:
    """The message of `kind` in the learner's language (English when we have no template)."""
    lang = language if language in LANGUAGES else "en"
    safe = {
        k: one_line(v) if isinstance(v, str) and k not in MULTILINE_FIELDS else v
        for k, v in context.items()
    }
    text = _templates.get_template(f"{kind}.{lang}.txt.j2").render(**safe)
    head, _, body = text.partition("\n")
    return Rendered(subject=one_line(head.removeprefix("Subject: ")), body=body.lstrip("\n"))


def duration_text(minutes: float, language: str) -> str:
    minutes = round(minutes)
    if minutes < 120:
        return f"{minutes} 分钟" if language == "zh" else f"{minutes} minutes"
    hours = round(minutes / 60)
    return f"{hours} 小时" if language == "zh" else f"{hours} hours"


def confirmation_context(recipient: dict[str, Any], *, fallback_minutes: float) -> dict[str, Any]:
    """The expected first response: the triaged due time, or, when triage has not answered
    within the grace period, the platform's general promise."""
    due: datetime | None = recipient["first_response_due_at"]
    if due is None:
        return {"first_response": duration_text(fallback_minutes, recipient["language"])}
    created: datetime = recipient["created_at"]
    return {
        "first_response": duration_text(
            (due - created).total_seconds() / 60, recipient["language"]
        ),
        "due": due.strftime("%Y-%m-%d %H:%M"),
    }


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff: 2 s, 4 s, 8 s… capped at 10 minutes."""
    return timedelta(seconds=min(600, 2**attempts))


def gives_up(*, attempts: int, max_attempts: int, permanent: bool) -> bool:
    """Whether a failed attempt is the last: a permanent failure at once, any other once the
    attempt limit is reached, whatever the error was."""
    return permanent or attempts >= max_attempts


def record_backoff(tries: int, *, cap: float) -> float:
    """Seconds before trying again to record an outcome the database refused: 0.2 s doubling,
    never more than `cap`, so the record lands soon after the database is back."""
    return min(cap, 0.2 * 2 ** min(tries, 10))


def message_id(delivery_key: str) -> str:
    """Stable per delivery, so a receiving system can drop a re-sent copy."""
    return f"<{re.sub(r'[^A-Za-z0-9.-]', '.', delivery_key)}@careloop>"


# ---- addresses ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """A recipient as it goes into the envelope and the To: header."""

    mailbox: str
    smtputf8: bool  # the mailbox is UTF-8 and needs a server that offers SMTPUTF8


# A plain ASCII dot-atom at a host name: what nearly every learner has, accepted as it is.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)


def recipient_address(email: str, *, server_smtputf8: bool) -> Address:
    """How `email` can travel to a server that does or does not offer SMTPUTF8.

    An internationalised domain alone is IDNA-encoded (`user@bücher.de` goes as
    `user@xn--bcher-kva.de`) and needs nothing of the server. A non-ASCII local part
    (`用户@例子.中国`) can only go with SMTPUTF8; without it the delivery is `Undeliverable`.
    """
    if _PLAIN_ADDRESS.fullmatch(email):
        return Address(email, smtputf8=False)
    try:
        valid = validate_email(email, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise Undeliverable(f"not a deliverable e-mail address: {exc}") from None
    if valid.ascii_email is not None:
        return Address(valid.ascii_email, smtputf8=False)
    if not server_smtputf8:
        raise Undeliverable(
            "the address has a non-ASCII local part, which needs SMTPUTF8, "
            "and the SMTP server does not offer it"
        )
    return Address(valid.normalized, smtputf8=True)


def from_header(mail_from: str) -> str:
    """The From: header of `mail_from` (a setting): one line, a non-ASCII name encoded."""
    name, address = parseaddr(one_line(mail_from))
    if not address:
        raise ValueError(f"not an address: {mail_from!r}")
    return formataddr((name, address), charset="utf-8")


# ---- the message on the wire ---------------------------------------------------------------

# Plain ASCII with lines SMTP allows (998 octets) goes as 7bit text, readable as stored; any
# other body goes base64, which makes every script and every line length legal SMTP on any
# server, with or without 8BITMIME. base64 is cheap to make and a third larger than the text,
# where quoted-printable would triple CJK.
_UTF8_7BIT = Charset("utf-8")
# The stubs are narrower than the stdlib, which documents None here (no transfer encoding).
_UTF8_7BIT.body_encoding = None  # type: ignore[assignment]
_UTF8_BASE64 = Charset("utf-8")
_UTF8_BASE64.body_encoding = BASE64
_SEVEN_BIT = re.compile(r"[\t\r\n\x20-\x7e]*")
_TOO_LONG_A_LINE = re.compile(r"[^\r\n]{999}")


def body_charset(body: str) -> Charset:
    """7bit for short-lined printable ASCII, else base64 UTF-8."""
    if _SEVEN_BIT.fullmatch(body) and _TOO_LONG_A_LINE.search(body) is None:
        return _UTF8_7BIT
    return _UTF8_BASE64


def _utf8_header(text: str) -> str:
    """Raw UTF-8 in a compat32 header: the bytes pass through as they are (RFC 6532)."""
    return text.encode().decode("ascii", "surrogateescape")


def email_message(
    *,
    sender: str,
    to: Address,
    rendered: Rendered,
    delivery_key: str,
    number: str,
    kind: str,
) -> bytes:
    """The message as it goes on the wire; every header built from a value made one line.

    Built with the stdlib's compat32 `MIMEText`: the modern `EmailMessage` API parses and
    refolds every header and cost several times more CPU per message, most of notify's.
    `sender` is a ready From: header (`from_header`).
    """
    msg = MIMEText(rendered.body, "plain", body_charset(rendered.body))  # type: ignore[arg-type]
    msg["From"] = sender
    msg["To"] = _utf8_header(to.mailbox) if to.smtputf8 else to.mailbox
    msg["Subject"] = Header(one_line(rendered.subject), "utf-8", header_name="Subject").encode()
    msg["Message-ID"] = message_id(delivery_key)
    msg["X-Careloop-Ticket"] = re.sub(r"[^A-Za-z0-9-]", "", number)
    msg["X-Careloop-Kind"] = re.sub(r"[^a-z_]", "", kind)
    return msg.as_bytes()
