"""notify's decisions: which channel answers a ticket, what each message says there (per
channel and language), how an e-mail goes on the wire, and when to retry."""

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import formataddr, formatdate, parseaddr
from functools import cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from jinja2 import Environment, PackageLoader, StrictUndefined, meta

from shared.events import LOW_PERIODIC_SCORE

_templates = Environment(
    loader=PackageLoader("services.notify", "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # plain-text e-mail
    keep_trailing_newline=True,
)
LANGUAGES = ("zh", "en")
# Context values that are prose and may span lines; every other string is one line, because
# it may land in the subject line (the template's first line) or another header.
MULTILINE_FIELDS = frozenset({"body", "resolution", "articles"})
# The template set of each channel: an e-mail has a subject line (the template's first line);
# WeChat and Weibo take one text; an SMS is short.
TEMPLATE_SETS = {"email": "email", "wechat": "im", "weibo": "im", "sms": "sms"}
# Learners are in mainland China: every time a message states is Beijing time, in both
# languages, and says so.
BEIJING = ZoneInfo("Asia/Shanghai")


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

    def __init__(self, name: str, *, subject: bool) -> None:
        source = _templates.loader.get_source(_templates, name)[0]  # type: ignore[union-attr]
        self._template = _templates.get_template(name)
        self._subject = subject
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
            text = self._MARK.sub(r"{\1}", text)
            if self._subject:
                head, _, body = text.partition("\n")
                form = (head.removeprefix("Subject: "), body)
            else:
                form = ("", text)
            self._forms[falsy] = form
        return form


@cache
def _prepared(name: str, *, subject: bool) -> _Prepared:
    return _Prepared(name, subject=subject)


def render(
    kind: str, language: str, context: Mapping[str, Any], *, channel: str = "email"
) -> Rendered:
    """The message of `kind` for `channel` in the learner's language (English when we have no
    template). Only an e-mail has a subject; the other channels' text is all `body`."""
    lang = language if language in LANGUAGES else "en"
    template_set = TEMPLATE_SETS[channel]
    prepared = _prepared(f"{template_set}/{kind}.{lang}.j2", subject=template_set == "email")
    values = {
        name: one_line(v) if isinstance(v, str) and name not in MULTILINE_FIELDS else v
        for name in prepared.names
        if (v := context.get(name, _MISSING)) is not _MISSING
    }
    head, body = prepared.form(values)
    return Rendered(
        subject=one_line(head.format_map(values)), body=body.format_map(values).lstrip("\n")
    )


PRIORITY_WORDS = {
    "zh": {"urgent": "紧急", "high": "高", "medium": "中", "low": "低"},
    "en": {"urgent": "urgent", "high": "high", "medium": "medium", "low": "low"},
}
# Who has the ticket: careloop knows agents by id only, not by a name fit for a learner.
AGENT_WORDS = {"zh": "客服专员", "en": "one of our agents"}


def _lang(language: str) -> str:
    return language if language in LANGUAGES else "en"


def duration_text(minutes: float, language: str) -> str:
    """A wait in whole minutes under two hours, else in hours."""
    minutes = round(minutes)
    zh = _lang(language) == "zh"
    if minutes < 120:
        return f"{minutes} 分钟" if zh else f"{minutes} minute{'' if minutes == 1 else 's'}"
    hours = round(minutes / 60)
    return f"{hours} 小时" if zh else f"{hours} hours"


def beijing_time(at: datetime, language: str) -> str:
    """`at` in Beijing time: `2026年11月30日 14:05` in Chinese, `30 Nov 2026, 14:05` in
    English (the templates say "Beijing time" next to it)."""
    local = at.astimezone(BEIJING)
    if _lang(language) == "zh":
        return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"
    return f"{local.day} {local:%b %Y, %H:%M}"


def message_context(
    values: Mapping[str, Any], *, kind: str, now: datetime, fallback_minutes: float
) -> dict[str, Any]:
    """What a message of `kind` says, from its recipient's and delivery's `values`, in the
    recipient's language: the priority word, the expected first response (a wait and a
    Beijing time), and who has the ticket.

    A confirmation counts the wait from the ticket's creation (it states the promise); the
    progress messages count it from `now`, and once the due time has passed they promise a
    reply as soon as possible (`due` empty) rather than a time already gone.
    """
    lang = _lang(values["language"])
    context = dict(values)
    context["priority"] = PRIORITY_WORDS[lang].get(values.get("priority") or "", "")
    context["agent"] = AGENT_WORDS[lang] if values.get("agent_id") else ""
    due: datetime | None = values.get("first_response_due_at")
    if kind == "confirmation":
        if due is None:
            context["first_response"] = duration_text(fallback_minutes, lang)
            context["due"] = ""
        else:
            created: datetime = values["created_at"]
            wait = (due - created).total_seconds() / 60
            context["first_response"] = duration_text(wait, lang)
            context["due"] = beijing_time(due, lang)
    elif due is not None and due > now:
        context["first_response"] = duration_text((due - now).total_seconds() / 60, lang)
        context["due"] = beijing_time(due, lang)
    else:
        context["first_response"] = ""
        context["due"] = ""
    context["portal_url"] = context.get("portal_url") or ""
    # a ticket held for an open incident: its confirmation points to the status page instead
    context["incident_url"] = context.get("incident_url") or ""
    # knowledge's suggested articles ({title, url}), offered by the confirmation only: a list
    # of lines, and the best one on one line (an SMS has room for one)
    offered = (context.get("articles") or []) if kind == "confirmation" else []
    sep = "：" if lang == "zh" else ": "
    context["articles"] = "\n".join(f"- {one_line(a['title'])}{sep}{a['url']}" for a in offered)
    context["article"] = f"{one_line(offered[0]['title'])} {offered[0]['url']}" if offered else ""
    return context


SLA_KINDS = frozenset({"sla_warning", "sla_breached", "sla_at_risk"})
# E-mails to agents, about a ticket but not part of the learner's conversation.
AGENT_KINDS = SLA_KINDS | {"mention"}
TARGET_WORDS = {
    "zh": {"first_response": "首次响应", "resolution": "解决"},
    "en": {"first_response": "first response", "resolution": "resolution"},
}


def agent_message_context(values: Mapping[str, Any]) -> dict[str, Any]:
    """What an agent's SLA e-mail says, in the ticket's language: the target, its due time
    in Beijing time, the priority word, and the escalation level."""
    lang = _lang(values["language"])
    context = dict(values)
    context["priority"] = PRIORITY_WORDS[lang].get(values.get("priority") or "", "")
    context["target"] = TARGET_WORDS[lang].get(values.get("target") or "", "")
    context["due"] = beijing_time(datetime.fromisoformat(values["due_at"]), lang)
    context["management"] = values.get("level") == 2
    context["portal_url"] = ""
    return context


def notice_words(body: str, status_url: str) -> str:
    """An incident notice's own words, without a closing line that only links the status
    page: each channel's template links it after the words, and an SMS cuts the words, never
    the link, to fit."""
    head, newline, last = body.rstrip().rpartition("\n")
    return head.rstrip() if newline and status_url in last else body


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


def message_id(delivery_key: str, ticket_id: UUID) -> str:
    """`<{kind}.{key}.{ticket_id}@careloop>`: stable per delivery, so a receiving system can
    drop a re-sent copy; the ticket's id is the last dot-separated part before the `@`, so
    intake finds the ticket of a learner's reply from its In-Reply-To or References."""
    return f"<{re.sub(r'[^A-Za-z0-9.-]', '.', delivery_key)}.{ticket_id}@careloop>"


def thread_root(ticket_id: UUID) -> str:
    """The Message-ID of a ticket's first careloop e-mail, its confirmation: every later
    e-mail about the ticket refers to it, so mail programs show one thread."""
    return message_id(f"confirmation:{ticket_id}", ticket_id)


# ---- the channel a ticket is answered on ----------------------------------------------------

# The channel a ticket came in on, as the channel careloop answers it on, and the contact that
# needs (None: answer on e-mail when there is an address). A preference names a channel the
# same way (the LMS may say "phone" for text messages).
_ANSWER_ON = {
    "email": "email",
    "wechat": "wechat",
    "weibo": "weibo",
    "sms": "sms",
    "phone": "sms",
    "hotline": "sms",
    "app": "sms",
}


@dataclass(frozen=True, slots=True)
class Contacts:
    email: str | None = None
    phone: str | None = None
    wechat_openid: str | None = None
    weibo_uid: str | None = None

    def reaches(self, channel: str) -> bool:
        address = {
            "email": self.email,
            "sms": self.phone,
            "wechat": self.wechat_openid,
            "weibo": self.weibo_uid,
        }.get(channel)
        return bool(address)


# Tickets careloop opens for a learner rather than ones they wrote: their subject is written
# for the agents ("定期满意度调查低分（总体 2/5）"), so the learner's messages name the ticket by
# what the learner did instead, in their language.
SUBJECTS_FOR_THE_LEARNER = {
    LOW_PERIODIC_SCORE: {"zh": "定期满意度调查反馈", "en": "Periodic survey feedback"},
}


def learner_subject(subject: str, *, source: str | None, language: str) -> str:
    """The subject the learner's messages show for a ticket of `source`."""
    words = SUBJECTS_FOR_THE_LEARNER.get(source or "")
    return words[_lang(language)] if words else subject


def choose_channel(
    *,
    ticket_channel: str,
    preferred: str | None,
    contacts: Contacts,
    available: frozenset[str],
) -> str | None:
    """Where a ticket's messages go: the learner's preferred channel if careloop can reach
    them there, else the channel the ticket came in on if careloop answers on it (hotline and
    app callers by SMS), else e-mail, else SMS, else WeChat or Weibo; None when careloop
    cannot reach the learner at all (an anonymous suggestion: no confirmation).
    `available` are the channels this deployment answers on."""
    candidates = [
        _ANSWER_ON.get(preferred or ""),
        _ANSWER_ON.get(ticket_channel),
        "email",
        "sms",
        "wechat",
        "weibo",
    ]
    for channel in candidates:
        if channel is not None and channel in available and contacts.reaches(channel):
            return channel
    return None


# ---- SMS length -----------------------------------------------------------------------------

# The values an SMS shortens, in this order, when the whole does not fit.
_SHORTENED_IN_SMS = ("body", "resolution", "subject", "title")


def sms_text(
    kind: str, language: str, context: Mapping[str, Any], *, fits: Callable[[str], bool]
) -> str:
    """The SMS of `kind` that `fits` (the SMS channel's segment limit): the agent's reply (or
    the notice's words), the resolution, the subject, then a notice's title are cut so that the rest of the message, and the portal link
    to the whole, always go. The cut ends in "…", or in "..." where that keeps more (it is in
    GSM 7-bit, so an English text stays in the larger segments)."""
    texts = [_sms_cut(kind, language, context, fits=fits, ellipsis=e) for e in ("…", "...")]
    fitting = [t for t in texts if t is not None]
    if not fitting:
        raise Undeliverable(f"the {kind} text message does not fit the SMS length limit")
    return max(fitting, key=len)


def _sms_cut(
    kind: str,
    language: str,
    context: Mapping[str, Any],
    *,
    fits: Callable[[str], bool],
    ellipsis: str,
) -> str | None:
    def text_of(values: Mapping[str, Any]) -> str:
        return render(kind, language, values, channel="sms").body.strip()

    values = dict(context)
    text = text_of(values)
    for name in _SHORTENED_IN_SMS:
        value = values.get(name)
        if fits(text):
            return text
        if not isinstance(value, str) or not value:
            continue

        def cut(
            n: int, values: dict[str, Any] = values, name: str = name, value: str = value
        ) -> dict[str, Any]:
            return {**values, name: value[:n].rstrip() + ellipsis}

        short, too_long = -1, len(value)  # the longest prefix that fits, by bisection
        while too_long - short > 1:
            mid = (short + too_long) // 2
            if fits(text_of(cut(mid))):
                short = mid
            else:
                too_long = mid
        values = cut(max(short, 0))
        text = text_of(values)
    return text if fits(text) else None


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
    reply_to: str,
    to: Address,
    rendered: Rendered,
    delivery_key: str,
    ticket_id: UUID,
    number: str,
    kind: str,
) -> bytes:
    """The message as it goes on the wire; every header built from a value made one line.

    Written out directly (lines end in LF; SMTP sends them as CRLF): the stdlib's message
    classes parse and fold every header on the way out, which cost a few hundred microseconds
    per message, most of notify's CPU. `sender` and `reply_to` are ready headers
    (`from_header`). Every message after the confirmation refers to it (In-Reply-To,
    References), so the learner's mail program shows the ticket as one thread, and a reply
    to any of them names the ticket to intake. A message about no ticket (`number` empty)
    stands alone.
    """
    body = rendered.body
    if body_is_7bit(body):
        encoding = "7bit"
    else:
        encoding = "base64"
        body = base64.encodebytes(body.encode()).decode("ascii")
    root = thread_root(ticket_id)
    if kind in AGENT_KINDS:
        # To an agent, about the ticket, not in the learner's thread: no Reply-To the support
        # address and no Message-ID intake would read as the ticket's (an agent answering
        # the warning must not post into the learner's conversation).
        own = f"<{re.sub(r'[^A-Za-z0-9.-]', '.', delivery_key)}.{ticket_id}@agents.careloop>"
        thread = ""
    elif not number:
        # About no ticket (an incident notice to a learner who has none): a learner's answer
        # reaches the support address as a new request, not as a reply to a ticket.
        own = f"<{re.sub(r'[^A-Za-z0-9.-]', '.', delivery_key)}@notices.careloop>"
        thread = f"Reply-To: {reply_to}\n"
    else:
        own = message_id(delivery_key, ticket_id)
        thread = f"Reply-To: {reply_to}\n"
        if own != root:
            thread += f"In-Reply-To: {root}\nReferences: {root}\n"
    ticket = f"X-Careloop-Ticket: {_NOT_IN_A_NUMBER.sub('', number)}\n" if number else ""
    return (
        f"Date: {formatdate(usegmt=True)}\n"  # RFC 5322 requires it; mail readers sort by it
        f"From: {sender}\n"
        f"To: {to.mailbox}\n"
        f"Subject: {subject_header(rendered.subject)}\n"
        f"Message-ID: {own}\n"
        f"{thread}"
        f"{ticket}"
        f"X-Careloop-Kind: {_NOT_IN_A_KIND.sub('', kind)}\n"
        "Auto-Submitted: auto-generated\n"
        "MIME-Version: 1.0\n"
        'Content-Type: text/plain; charset="utf-8"\n'
        f"Content-Transfer-Encoding: {encoding}\n"
        f"\n{body}"
    ).encode()


_NOT_IN_A_NUMBER = re.compile(r"[^A-Za-z0-9-]")
_NOT_IN_A_KIND = re.compile(r"[^a-z_]")
