"""E-mail in: one raw message (RFC 5322 bytes) -> a ticket submission, or why not; pure.

The SMTP gateway and the IMAP poller both hand their bytes to `read`, so a mail is the same
ticket whichever way it came. What the learner wrote is kept and nothing else: the quoted
history of a reply is cut, HTML becomes text, attachments become metadata (their bytes are
never stored). Auto-replies, bounces and list mail are noise: never a ticket, never answered,
or two autoresponders would write to each other forever.

Threading is desk's decision; this module only reads the hints. A reply to an e-mail careloop
sent names the careloop Message-ID in In-Reply-To/References, and that ticket becomes the
ticket id; a subject with `[CL-000123]` names a ticket number. Every mail's own Message-ID
gives its message id, so a mail delivered twice (a redelivery, an IMAP re-read after a crash)
is one message.
"""

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.utils import formatdate, getaddresses, make_msgid
from enum import StrEnum
from html.parser import HTMLParser
from typing import Annotated
from uuid import UUID

from prometheus_client import Counter
from pydantic import BeforeValidator, Field, SecretStr
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.intake.domain import detect_language, message_id_for, ticket_id_for
from shared.emails import email_address
from shared.events import Attachment, Channel, Learner, TicketSubmitted

DROPPED = Counter(
    "careloop_mail_dropped_total",
    "Inbound e-mails dropped as noise (auto-replies, bounces, list mail): never a ticket",
    ["kind"],
)
REFUSED = Counter(
    "careloop_mail_refused_total",
    "Inbound e-mails refused (too large, malformed, empty): answered with a bounce or 5xx",
    ["problem"],
)
DESCRIPTION_MAX = 20_000  # as the web form's `Submission.description`
SUBJECT_MAX = 200
NAME_MAX = 200


def _comma_list(value: object) -> object:
    """`careloop.example, help@other.example` from the environment, lower-cased."""
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip().lower() for v in value if str(v).strip())
    return value


class MailSettings(BaseSettings):
    """The e-mail channel's settings (CARELOOP_MAIL_*): the gateway, the poller and the limits."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_MAIL_", extra="ignore")

    max_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        description="Largest e-mail accepted, attachments included; a larger one is refused "
        "(SMTP gateway: 552; IMAP: a bounce to the sender) and not stored.",
    )
    gateway_host: str = Field("127.0.0.1", description="Address the SMTP gateway listens on.")
    gateway_port: int = Field(
        12525, description="Port of the SMTP gateway (0: no gateway in this process)."
    )
    gateway_hostname: str = Field(
        "careloop.localhost", description="The name the gateway greets with (EHLO, 220 banner)."
    )
    recipients: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)] = Field(
        ("careloop.example",),
        description="Where the gateway accepts mail for, comma-separated: a domain (any "
        "mailbox at it) or one address. Other recipients get 550.",
    )
    rate_per_sender: int = Field(
        20, ge=0, description="E-mails per sender mailbox per window (0: off); over it: 450."
    )
    rate_sender_window_seconds: int = Field(600, ge=1, description="Window of the sender limit.")
    imap_host: str | None = Field(None, description="IMAP server to poll; unset: no poller.")
    imap_port: int = Field(143, description="IMAP port (993 with CARELOOP_MAIL_IMAP_SSL).")
    imap_ssl: bool = Field(False, description="IMAP over TLS (IMAPS).")
    imap_user: str = Field("support", description="IMAP login.")
    imap_password: SecretStr = Field(SecretStr("support"), description="IMAP password.")
    imap_folder: str = Field("INBOX", description="The folder the poller reads.")
    imap_interval_seconds: float = Field(
        30,
        gt=0,
        description="How long the poller waits for news: the longest IDLE before it looks "
        "again, or the polling interval when the server has no IDLE.",
    )
    bounce_from: str = Field(
        "careloop <support@careloop.example>",
        description="From: of the bounce-style replies the poller sends for refused mail.",
    )

    def accepts_recipient(self, address: str) -> bool:
        """Whether the gateway takes mail for `address` (a listed address or domain)."""
        address = address.strip().lower()
        domain = address.rpartition("@")[2]
        return address in self.recipients or domain in self.recipients


class Problem(StrEnum):
    """Why a mail was refused; each maps to an SMTP reply and a bounce text."""

    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    NO_SENDER = "no_sender"
    EMPTY = "empty"


class Refused(Exception):
    """The mail cannot become a ticket; `reason` says why in words a sender understands."""

    def __init__(self, problem: Problem, reason: str) -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason


class NoiseKind(StrEnum):
    """What sort of automatic mail: the label of the dropped-mail counter."""

    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    BULK = "bulk"
    REPORT = "report"
    MAIL_SYSTEM = "mail_system"


@dataclass(frozen=True, slots=True)
class Noise:
    """An automatic mail (auto-reply, bounce, list mail): dropped, never a ticket."""

    kind: NoiseKind
    reason: str


def read(
    raw: bytes,
    *,
    max_bytes: int,
    received_at: datetime,
    envelope_sender: str | None = None,
    size: int | None = None,
) -> TicketSubmitted | Noise:
    """The ticket submission `raw` is, or Noise; raises Refused naming the problem.

    `envelope_sender` is SMTP's MAIL FROM when the mail came through the gateway: an empty
    one (`<>`) is a bounce. `size` is the whole message's size when `raw` holds only its
    headers (an IMAP server says how large a message is before it is fetched). Noise is
    recognised from the headers alone, before the size check, so an oversized bounce is
    dropped rather than bounced back.
    """
    try:
        # compat32 keeps the headers as written: noise is told without parsing addresses,
        # which the modern parser can fail at on hostile input.
        head = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
        noise = noise_of(head, envelope_sender=envelope_sender)
    except Exception as exc:  # the stdlib parser may raise anything on hostile headers
        raise Refused(Problem.MALFORMED, f"the headers cannot be read ({exc})") from exc
    if noise is not None:
        return noise
    size = len(raw) if size is None else size
    if size > max_bytes:
        raise Refused(
            Problem.TOO_LARGE,
            f"the message is {size:,} bytes; the limit is {max_bytes:,} bytes",
        )
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        return _ticket(message, raw=raw, received_at=received_at)
    except Refused:
        raise
    except Exception as exc:
        raise Refused(Problem.MALFORMED, f"the message cannot be read ({exc})") from exc


def reply_address(raw: bytes) -> str | None:
    """Where a refusal goes: the Return-Path (the envelope sender a server recorded), else the
    first From: address; None when neither is a valid address."""
    try:
        head = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
        values = [str(head.get("Return-Path", "")), str(head.get("From", ""))]
        for _, address in (pair for value in values for pair in getaddresses([value])):
            if "@" in address:
                return email_address(address).lower()
    except Exception:  # a refusal without an address to send it to is only logged
        return None
    return None


def bounce(
    raw: bytes, refused: Refused, *, to: str, bounce_from: str, hostname: str
) -> EmailMessage:
    """The bounce-style reply to a mail careloop refused: what was wrong, in both languages.

    It is an automatic reply (RFC 3834: Auto-Submitted, and sent from the null sender by the
    caller), so a well-behaved autoresponder never answers it."""
    head = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    written = str(head.get("Subject", ""))
    try:
        subject = _line(str(make_header(decode_header(written))), 150)
    except (LookupError, UnicodeError, ValueError):  # an unknown charset: as it was written
        subject = _line(written, 150)
    original = _MSGID.search(str(head.get("Message-ID", "")))
    reply = EmailMessage()
    reply["From"] = bounce_from
    reply["To"] = to
    reply["Subject"] = f"无法受理您的邮件 / Your message could not be accepted: {subject}"
    reply["Auto-Submitted"] = "auto-replied"
    reply["Message-ID"] = make_msgid(domain=hostname)
    reply["Date"] = formatdate(localtime=False)
    if original:
        reply["In-Reply-To"] = f"<{original[1]}>"
        reply["References"] = f"<{original[1]}>"
    reply.set_content(
        "您好，\n\n您发给客服的邮件未被受理，也没有保存：\n"
        f"{_REASONS_ZH[refused.problem]}\n\n请修改后重新发送，或通过网页提交问题。\n\n"
        "Hello,\n\nYour message to support was not accepted and was not stored:\n"
        f"{refused.reason}.\n\nPlease send it again once corrected, or use the web form.\n"
    )
    return reply


_REASONS_ZH = {
    Problem.TOO_LARGE: "邮件（含附件）超过了大小上限。请删减附件后重发。",
    Problem.MALFORMED: "邮件格式无法识别。",
    Problem.NO_SENDER: "邮件没有可回复的发件人地址。",
    Problem.EMPTY: "邮件既没有主题也没有正文。",
}


# ---- noise --------------------------------------------------------------------------------

_NOISE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|noreply-dmarc-support)$", re.I)
_BULK = frozenset({"bulk", "junk", "list", "auto_reply"})


def noise_of(message: Message, *, envelope_sender: str | None = None) -> Noise | None:
    """Why `message` is automatic mail, or None for a person's mail (RFC 3834, RFC 3464)."""
    if envelope_sender is not None and envelope_sender.strip("<> ") == "":
        return Noise(NoiseKind.BOUNCE, "null envelope sender (a bounce)")
    return_path = message.get("Return-Path")
    if return_path is not None and str(return_path).strip().strip("<>").strip() == "":
        return Noise(NoiseKind.BOUNCE, "Return-Path: <> (a bounce)")
    auto = str(message.get("Auto-Submitted", "")).split(";")[0].strip().lower()
    if auto and auto != "no":
        return Noise(NoiseKind.AUTO_REPLY, f"Auto-Submitted: {auto[:40]}")
    for header in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if message.get(header) is not None:
            return Noise(NoiseKind.AUTO_REPLY, f"{header} present")
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in _BULK:
        return Noise(NoiseKind.BULK, f"Precedence: {precedence}")
    if message.get_content_type() == "multipart/report":
        return Noise(NoiseKind.REPORT, "multipart/report (a delivery or read report)")
    for _, address in getaddresses([str(v) for v in message.get_all("From", [])]):
        local = address.partition("@")[0].lower()
        if _NOISE_SENDERS.match(local):
            return Noise(NoiseKind.MAIL_SYSTEM, f"sent by {local}")
    return None


# ---- the ticket ---------------------------------------------------------------------------

_TICKET_NUMBER = re.compile(r"\[(CL-[0-9]{6,})\]", re.I)
_MSGID = re.compile(r"<([^<>\s]+)>")
_SPACES = re.compile(r"\s+")
_SURROGATES = re.compile(r"[\udc80-\udcff]")
# What no stored text may hold (shared.text): C0 controls but tab and line feed, DEL, C1
# controls, lone surrogates and the BMP's last two non-characters. Removed, not refused: a
# stray control character in a mail is the mailer's doing, not the learner's.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Charsets mailers declare for text in a larger one: GB2312 and GBK mail is often GBK or
# GB18030 in fact (Foxmail, Outlook), Big5 often Big5-HKSCS.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
}


def careloop_ticket_of(message_id: str) -> UUID | None:
    """The ticket a Message-ID careloop sent names (`<…{ticket_id}@careloop>`), else None."""
    found = re.fullmatch(r"\s*<?([^<>@\s]+)@careloop>?\s*", message_id)
    if found is None:
        return None
    try:
        return UUID(found[1].rsplit(".", 1)[-1])
    except ValueError:
        return None


def _ticket(message: EmailMessage, *, raw: bytes, received_at: datetime) -> TicketSubmitted:
    name, address = _sender(message)
    subject = _line(_header(message, "Subject"), SUBJECT_MAX)
    body = message.get_body(preferencelist=("plain", "html"))
    text = _text_of(body) if isinstance(body, EmailMessage) else ""
    description = _clip(strip_quoted(text), DESCRIPTION_MAX)
    if not description:
        description = subject
    if not subject:
        subject = _line(description.split("\n", 1)[0], SUBJECT_MAX)
    if not description:
        raise Refused(Problem.EMPTY, "the message has neither a subject nor any text")
    native_id = _own_message_id(message, raw)
    ticket_id = _thread_of(message) or ticket_id_for(
        channel=Channel.EMAIL, source=None, external_id=native_id
    )
    number = _TICKET_NUMBER.search(subject)
    return TicketSubmitted(
        ticket_id=ticket_id,
        channel=Channel.EMAIL,
        external_id=native_id if len(native_id) <= 200 else None,
        learner=Learner(name=name, email=address),
        subject=subject,
        description=description,
        language=detect_language(subject, description),
        attachments=tuple(_attachments(message, body)),
        submitted_at=received_at,
        message_id=message_id_for(Channel.EMAIL, None, native_id),
        reply_to=number[1].upper() if number else None,
    )


def _sender(message: EmailMessage) -> tuple[str, str]:
    """The learner's name and e-mail address from From:; the name falls back to the local
    part when the mail gives none."""
    try:
        addresses: tuple[Address, ...] = getattr(message.get("From"), "addresses", ())
    except Exception as exc:  # the stdlib's address parser fails on some broken headers
        raise Refused(Problem.NO_SENDER, "the From: header cannot be read") from exc
    if not addresses or not addresses[0].addr_spec or "@" not in addresses[0].addr_spec:
        raise Refused(Problem.NO_SENDER, "the message has no From: address to answer")
    first = addresses[0]
    try:
        address = email_address(first.addr_spec).lower()
    except (PydanticCustomError, ValueError) as exc:
        raise Refused(
            Problem.NO_SENDER, f"the From: address {first.addr_spec!r} is not valid: {exc}"
        ) from exc
    display_name = _raw_8bit(first.display_name)
    name = _line(display_name, NAME_MAX) or _line(first.username, NAME_MAX) or address
    return name[:NAME_MAX], address


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    return "" if value is None else _raw_8bit(str(value))


def _raw_8bit(value: str) -> str:
    """A header written in raw 8-bit (UTF-8 headers, RFC 6532; or a mailer's local charset)
    reaches here with its bytes as lone surrogates: read them as text."""
    if not _SURROGATES.search(value):
        return value
    return decode_text(value.encode("utf-8", "surrogateescape"), "utf-8")


def _own_message_id(message: Message, raw: bytes) -> str:
    """The mail's Message-ID without its brackets; a mail without one is named by a digest of
    its bytes, which is the same on every re-read."""
    found = _MSGID.search(_header(message, "Message-ID"))
    if found:
        return found[1]
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _thread_of(message: Message) -> UUID | None:
    """The careloop ticket this mail replies to: In-Reply-To first, then References from the
    newest (last) to the oldest."""
    candidates = _MSGID.findall(_header(message, "In-Reply-To"))
    candidates += reversed(_MSGID.findall(_header(message, "References")))
    for candidate in candidates:
        if (ticket := careloop_ticket_of(f"<{candidate}>")) is not None:
            return ticket
    return None


def _line(value: str, limit: int) -> str:
    """A one-line text: control characters and line breaks become spaces, runs of spaces one."""
    return _SPACES.sub(" ", _UNSTORABLE.sub(" ", value)).strip()[:limit].strip()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ---- text ---------------------------------------------------------------------------------


def decode_text(payload: bytes, charset: str | None) -> str:
    """`payload` as text in its declared `charset`, read as the mailer most likely meant it.

    A declared charset is widened to the one mailers actually use under its name (GB2312 ->
    GB18030). Bytes that do not fit it are tried as UTF-8; an unknown charset is read as
    UTF-8, then GB18030; what fits nothing is read with U+FFFD for each broken byte.
    """
    declared = (charset or "us-ascii").strip().strip('"').lower()
    wanted = _SUPERSETS.get(declared, declared)
    for candidate in (wanted, "utf-8", "gb18030"):
        try:
            return payload.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    try:
        return payload.decode(wanted, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _text_of(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = decode_text(payload, part.get_content_charset())
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNSTORABLE.sub("", text)


# Markers between runs of text in the HTML walk: a block's edge, a paragraph's, a <br>.
_BLOCK, _PARAGRAPH, _BREAK = "\x00b", "\x00p", "\x00r"
_MARKERS = re.compile("(?:[ ]*(?:\x00[bpr])[ ]*)+")


class _HtmlText(HTMLParser):
    """Readable text from HTML: blocks on lines of their own, paragraphs apart, scripts and
    styles dropped, quoted replies (`<blockquote>`, Gmail's `gmail_quote`) dropped."""

    PARAGRAPHS = frozenset(
        ["p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "pre", "hr"]
    )
    BLOCKS = frozenset(
        [
            "address",
            "article",
            "aside",
            "div",
            "dt",
            "dd",
            "fieldset",
            "figure",
            "footer",
            "form",
            "header",
            "li",
            "main",
            "nav",
            "section",
            "tr",
        ]
    )
    HIDDEN = frozenset({"script", "style", "head", "title", "template"})
    VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping: list[str] = []  # the open tags whose content is dropped

    def _skip(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        classes = " ".join(v or "" for k, v in attrs if k == "class")
        return tag in self.HIDDEN or tag == "blockquote" or "gmail_quote" in classes

    def _edge(self, tag: str) -> None:
        if tag in self.PARAGRAPHS:
            self.parts.append(_PARAGRAPH)
        elif tag in self.BLOCKS:
            self.parts.append(_BLOCK)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping:
            if tag not in self.VOID:
                self._skipping.append(tag)
        elif self._skip(tag, attrs):
            self._skipping.append(tag)
        elif tag == "br":
            self.parts.append(_BREAK)
        else:
            self._edge(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self._skipping:
            self._edge(tag)
        elif tag in self._skipping:
            while self._skipping.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(re.sub(r"[ \t\r\n\f]+", " ", data.replace("\xa0", " ")))


def _line_breaks(run: re.Match[str]) -> str:
    """A run of markers as line breaks: each <br> counts, block edges make one break
    together, a paragraph's edge a blank line; never more than one blank line."""
    markers = run[0].replace(" ", "")
    breaks = markers.count(_BREAK) + (1 if _BLOCK in markers or _PARAGRAPH in markers else 0)
    if _PARAGRAPH in markers:
        breaks = max(breaks, 2)
    return "\n" * min(breaks, 2)


def html_to_text(html: str) -> str:
    """The text a reader sees in `html`, one line per block."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    text = _MARKERS.sub(_line_breaks, "".join(parser.parts))
    return "\n".join(line.strip() for line in text.split("\n")).strip()


# Lines where the quoted history of a reply begins; everything from there on is cut.
_HISTORY_STARTS = [
    re.compile(
        r"^-{2,}\s*(Original Message|Forwarded message|原始邮件|转发邮件)\s*-{2,}\s*$", re.I
    ),
    re.compile(r"^-{4,}\s*Original\s*-{4,}\s*$", re.I),  # Foxmail's English separator
    re.compile(r"^_{10,}\s*$"),  # Outlook's rule above its From:/Sent: block
    re.compile(r"^On\b.{0,300}\bwrote:\s*$", re.S),
    re.compile(r"^在.{0,300}写道[:：]\s*$", re.S),
    re.compile(r"^.{0,300}于.{0,100}写道[:：]\s*$", re.S),  # Gmail in Chinese
]
# Outlook's header block: From: then Sent: (or 发件人: then 发送时间:) within a few lines.
_OUTLOOK_FROM = re.compile(r"^\*?(From|发件人)\s*[:：]", re.I)
_OUTLOOK_SENT = re.compile(r"^\*?(Sent|Date|发送时间|日期)\s*[:：]", re.I)


def strip_quoted(text: str) -> str:
    """What the sender wrote, without the quoted history under it (the `On … wrote:` and
    `在 … 写道：` lines, Outlook's and Foxmail's separators and header blocks) and without
    `>`-quoted lines."""
    lines = text.split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if _history_starts(stripped, lines[index + 1 : index + 4]):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _history_starts(line: str, following: list[str]) -> bool:
    if any(p.match(line) for p in _HISTORY_STARTS):
        return True
    if line.startswith("On ") and not line.endswith("wrote:") and following:
        # `On Mon, 3 Mar 2025 at 10:02, Li Lei <li@…>` wrapped before `wrote:`
        return _HISTORY_STARTS[3].match(f"{line} {following[0].strip()}") is not None
    if _OUTLOOK_FROM.match(line):
        return any(_OUTLOOK_SENT.match(f.strip()) for f in following)
    return False


# ---- attachments --------------------------------------------------------------------------


def _attachments(message: EmailMessage, body: object) -> Iterator[Attachment]:
    """Every part that is not the text shown as the body, as metadata: name, type, size."""
    for part in _leaves(message):
        if part is body:
            continue
        disposition = part.get_content_disposition()
        if (
            part.get_content_maintype() == "text"
            and disposition != "attachment"
            and not part.get_filename()
        ):
            continue  # another rendering of the body, or a signature line
        yield Attachment(
            name=_line(_raw_8bit(part.get_filename() or ""), 255) or _default_name(part),
            content_type=part.get_content_type()[:100],
            size=_size(part),
        )


def _size(part: Message) -> int:
    """The attachment's size once decoded; an attached e-mail's as it is written."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return len(payload)
    inner = part.get_payload()
    if isinstance(inner, list):
        return sum(len(m.as_bytes()) for m in inner if isinstance(m, Message))
    return len(str(inner).encode())


def _leaves(part: Message) -> Iterator[Message]:
    """The parts of `part` that hold content; an attached e-mail (message/rfc822) is one."""
    if part.get_content_maintype() == "multipart":
        for sub in part.iter_parts() if isinstance(part, EmailMessage) else ():
            yield from _leaves(sub)
    else:
        yield part


def _default_name(part: Message) -> str:
    if part.get_content_type() == "message/rfc822":
        return "attached-message.eml"
    return f"attachment.{part.get_content_subtype()}"[:255]
