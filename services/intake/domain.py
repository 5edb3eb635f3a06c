"""Pure normalisation: ticket ids, language detection, one ticket shape from any channel."""

import hashlib
import re
import uuid
from datetime import datetime
from uuid import UUID

from uuid6 import uuid7

from shared.events import Channel, InboundSubmission, Learner, Submission, TicketSubmitted
from shared.phones import normal_phone
from shared.text import detect_language

TICKET_NAMESPACE = UUID("6f1c1f0e-8a53-4c1b-9a51-6c0b8f0c2d11")
# The `source` part of a derived key's name: no sender's source can be it (sources match
# ^[a-z]…), so a derived key never names the same ticket as a key a sender chose.
DERIVED = "~derived"
_SPACES = re.compile(r"[ \t]+")


def ticket_id_for(*, channel: Channel, source: str | None, external_id: str | None) -> UUID:
    """Deterministic for a known external id, so a redelivery names the same ticket."""
    if external_id is None:
        return uuid7()
    return uuid.uuid5(TICKET_NAMESPACE, f"{channel}:{source or ''}:{external_id}")


def message_id_for(channel: Channel, source: str | None, native_id: str) -> UUID:
    """A learner message's id from the channel's own id for it (a Message-ID, a WeChat MsgId):
    the same message delivered twice names the same id, so desk appends it once."""
    return uuid.uuid5(TICKET_NAMESPACE, f"message:{channel}:{source or ''}:{native_id}")


def sender_key(submission: Submission, idempotency_key: str | None) -> str | None:
    """The key the sender chose: its external_id, else the Idempotency-Key header."""
    return submission.external_id or idempotency_key or None


def content_digest(submission: Submission) -> str:
    """What makes two submissions one request when the sender gave no key: who and what.

    The learner's e-mail and the text as the ticket will carry them (e-mail lower-cased,
    runs of spaces in the subject collapsed), so a retry of the same form hashes the same.
    """
    digest = hashlib.sha256()
    contact = submission.email or getattr(submission, "wechat_openid", None) or submission.phone
    for part in ((contact or "").lower(), _SPACES.sub(" ", submission.subject)):
        digest.update(part.encode())
        digest.update(b"\x00")  # validated text never holds NUL: parts cannot run together
    digest.update(submission.description.encode())
    return digest.hexdigest()


def mailbox_of(email: str) -> str:
    """The inbox an address delivers to, as far as a rate limit can tell: lower-cased and
    without a `+tag` (sub-addressing), so `victim+1@…` and `victim+2@…` count as one."""
    local, _, domain = email.lower().rpartition("@")
    return f"{local.split('+', 1)[0] or local}@{domain}"


def window_of(at: datetime, *, seconds: int) -> int:
    """The number of the `seconds`-long window `at` falls in, the same on every replica."""
    return int(at.timestamp()) // seconds


def derived_ticket_id(*, channel: Channel, digest: str, window: int) -> UUID:
    """The ticket a keyless submission names: its content within the window it was first seen."""
    return ticket_id_for(channel=channel, source=DERIVED, external_id=f"{digest}:{window}")


def normalise(
    submission: Submission,
    *,
    channel: Channel,
    received_at: datetime,
    idempotency_key: str | None = None,
    derived_window: int | None = None,
) -> TicketSubmitted:
    """The one ticket shape every channel produces.

    The ticket id comes from the sender's key when there is one; else from the content and
    `derived_window` (the window the content was first seen in) when given; else it is new.
    """
    source = submission.source if isinstance(submission, InboundSubmission) else None
    external_id = sender_key(submission, idempotency_key)
    if external_id is None and derived_window is not None:
        ticket_id = derived_ticket_id(
            channel=channel, digest=content_digest(submission), window=derived_window
        )
    else:
        # Another service's key names its ticket whatever channel it says it relayed: the same
        # external_id sent with and without `channel` is one ticket.
        keyed_by = Channel.SERVICE if source is not None else channel
        ticket_id = ticket_id_for(channel=keyed_by, source=source, external_id=external_id)
    return TicketSubmitted(
        ticket_id=ticket_id,
        channel=channel,
        source=source,
        external_id=external_id,
        learner=Learner(
            name=_SPACES.sub(" ", submission.name),
            email=submission.email.lower() if submission.email else None,
            phone=normal_phone(submission.phone),
            learner_id=submission.learner_id,
            wechat_openid=getattr(submission, "wechat_openid", None),
        ),
        subject=_SPACES.sub(" ", submission.subject),
        description=submission.description,
        course_id=submission.course_id,
        order_id=submission.order_id,
        language=submission.language or detect_language(submission.subject, submission.description),
        attachments=tuple(a.as_event() for a in submission.attachments),
        submitted_at=received_at,
    )
