"""notify's decisions: what each message says and how it goes on the wire, and when to retry."""

import base64
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import formataddr, parseaddr
from functools import cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from jinja2 import Environment, PackageLoader, StrictUndefined, meta

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


_MISSING = object()  # a name the context lacks: the template may only use it in a branch not taken


class _Prepared:
    """One template made into two `str.format` strings (subject line, rest) per way its
    conditions can go: rendering a message is then a dictionary lookup and one `format`.

    Jinja renders the template once with a marker in place of every value that is true, and
    with the value itself where it is false (None, "", 0): `{% if priority %}` picks its
    branch there, and a false value reads the same in every message that has it. So the
    prepared form depends only on which values are false, and on nothing a learner wrote.
    """

    _MARK = re.compile("\x1e([A-Za-z_][A-Za-z0-9_]*)\x1f")

    def __init__(self, name: str) -> None:
        source = _templates.loader.get_source(_templates, name)[0]  # type: ignore[union-attr]
        self._template = _templates.get_template(name)
        self.names = tuple(sorted(meta.find_undeclared_variables(_templates.parse(source))))
        self._forms: dict[tuple[Any, ...], tuple[str, str]] = {}

    def form(self, values: dict[str, Any]) -> tuple[str, str]:
        """The (subject, rest) format strings for `values`; raises UndefinedError when the
        branch the values pick uses a name they lack, as rendering the template would."""
        falsy = tuple(
            _MISSING if n not in values else values[n] if not values[n] else True
            for n in self.names
        )
        form = self._forms.get(falsy)
        if form is None:
            context = {
                n: f"\x1e{n}\x1f" if f is True else f
                for n, f in zip(self.names, falsy, strict=True)
                if f is not _MISSING
            }
            text = self._template.render(**context).replace("{", "{{").replace("}", "}}")
            head, _, body = self._MARK.sub(r"{\1}", text).partition("\n")
            form = self._forms[falsy] = (head.removeprefix("Subject: "), body)
        return form


@cache
def _prepared(name: str) -> _Prepared:
    return _Prepared(name)


def render(kind: str, language: str, context: dict[str, Any]) -> Rendered:
    """The message of `kind` in the learner's language (English when we have no template)."""
    lang = language if language in LANGUAGES else "en"
    prepared = _prepared(f"{kind}.{lang}.txt.j2")
    values = {
        name: one_line(v) if isinstance(v, str) and name not in MULTILINE_FIELDS else v
        for name in prepared.names
        if (v := context.get(name, _MISSING)) is not _MISSING
    }
    head, body = prepared.form(values)
    return Rendered(
        subject=one_line(head.format_map(values)), body=body.format_map(values).lstrip("\n")
    )


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
_SEVEN_BIT = re.compile(r"[\t\r\n\x20-\x7e]*")
_TOO_LONG_A_LINE = re.compile(r"[^\r\n]{999}")
# A subject that is short printable ASCII goes as it is; "=?" would read as an encoded word.
_PLAIN_SUBJECT = re.compile(r"(?!.*=\?)[\x20-\x7e]{0,69}")
# UTF-8 octets per encoded word: "Subject: " plus one word of 39 octets (52 base64 characters
# and 12 of =?utf-8?b?...?=) is 73 characters, within the 78 RFC 5322 recommends.
_WORD_OCTETS = 39


def body_is_7bit(body: str) -> bool:
    """Whether `body` can go as it is: printable ASCII in lines SMTP allows."""
    return _SEVEN_BIT.fullmatch(body) is not None and _TOO_LONG_A_LINE.search(body) is None


def encoded_words(text: str) -> str:
    """`text` as RFC 2047 base64 UTF-8 encoded words, one per folded line, each cut at a
    character boundary so that every word decodes on its own."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        n = len(char.encode())
        if size + n > _WORD_OCTETS:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += n
    words.append("".join(chunk))
    return "\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode('ascii')}?=" for w in words)


def subject_header(subject: str) -> str:
    """The Subject: value: as it is when short printable ASCII, else encoded words."""
    subject = one_line(subject)
    return subject if _PLAIN_SUBJECT.fullmatch(subject) else encoded_words(subject)


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

    Written out directly (lines end in LF; SMTP sends them as CRLF): the stdlib's message
    classes parse and fold every header on the way out, which cost a few hundred microseconds
    per message, most of notify's CPU. `sender` is a ready From: header (`from_header`).
    """
    body = rendered.body
    if body_is_7bit(body):
        encoding = "7bit"
    else:
        encoding = "base64"
        body = base64.encodebytes(body.encode()).decode("ascii")
    return (
        f"From: {sender}\n"
        f"To: {to.mailbox}\n"
        f"Subject: {subject_header(rendered.subject)}\n"
        f"Message-ID: {message_id(delivery_key)}\n"
        f"X-Careloop-Ticket: {_NOT_IN_A_NUMBER.sub('', number)}\n"
        f"X-Careloop-Kind: {_NOT_IN_A_KIND.sub('', kind)}\n"
        "MIME-Version: 1.0\n"
        'Content-Type: text/plain; charset="utf-8"\n'
        f"Content-Transfer-Encoding: {encoding}\n"
        f"\n{body}"
    ).encode()


_NOT_IN_A_NUMBER = re.compile(r"[^A-Za-z0-9-]")
_NOT_IN_A_KIND = re.compile(r"[^a-z_]")
