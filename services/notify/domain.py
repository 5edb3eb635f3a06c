"""notify's decisions: what each message says, in the learner's language, and when to retry."""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.charset import Charset
from email.header import Header
from email.mime.text import MIMEText
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

_templates = Environment(
    loader=PackageLoader("services.notify", "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # plain-text e-mail
    keep_trailing_newline=True,
)
LANGUAGES = ("zh", "en")


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


def render(kind: str, language: str, context: dict[str, Any]) -> Rendered:
    """The message of `kind` in the learner's language (English when we have no template)."""
    lang = language if language in LANGUAGES else "en"
    text = _templates.get_template(f"{kind}.{lang}.txt.j2").render(**context)
    head, _, body = text.partition("\n")
    return Rendered(subject=head.removeprefix("Subject: ").strip(), body=body.lstrip("\n"))


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


def message_id(delivery_key: str) -> str:
    """Stable per delivery, so a receiving system can drop a re-sent copy."""
    return f"<{re.sub(r'[^A-Za-z0-9.-]', '.', delivery_key)}@careloop>"


_UTF8_8BIT = Charset("utf-8")
# 8bit: the body stays readable as it is stored (8BITMIME). The stubs are narrower than the
# stdlib, which documents both None here and a Charset for MIMEText.
_UTF8_8BIT.body_encoding = None  # type: ignore[assignment]


def email_message(
    *, sender: str, to: str, rendered: Rendered, delivery_key: str, number: str, kind: str
) -> bytes:
    """The message as it goes on the wire.

    Built with the stdlib's compat32 `MIMEText`: the modern `EmailMessage` API parses and
    refolds every header and cost several times more CPU per message, most of notify's.
    """
    msg = MIMEText(rendered.body, "plain", _UTF8_8BIT)  # type: ignore[arg-type]
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = Header(rendered.subject, "utf-8").encode()
    msg["Message-ID"] = message_id(delivery_key)
    msg["X-Careloop-Ticket"] = number
    msg["X-Careloop-Kind"] = kind
    return msg.as_bytes()
