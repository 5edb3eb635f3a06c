"""Pure normalisation: ticket ids, language detection, one ticket shape from any channel."""

import re
import uuid
from datetime import datetime
from uuid import UUID

from uuid6 import uuid7

from shared.events import Channel, InboundSubmission, Learner, Submission, TicketSubmitted

TICKET_NAMESPACE = UUID("6f1c1f0e-8a53-4c1b-9a51-6c0b8f0c2d11")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_SPACES = re.compile(r"[ \t]+")


def ticket_id_for(*, channel: Channel, source: str | None, external_id: str | None) -> UUID:
    """Deterministic for a known external id, so a redelivery names the same ticket."""
    if external_id is None:
        return uuid7()
    return uuid.uuid5(TICKET_NAMESPACE, f"{channel}:{source or ''}:{external_id}")


def detect_language(text: str) -> str:
    """`zh` when the text holds Chinese characters, else `en`."""
    return "zh" if _CJK.search(text) else "en"


def _phone(raw: str | None) -> str | None:
    if raw is None:
        return None
    return ("+" if raw.startswith("+") else "") + re.sub(r"\D", "", raw)


def normalise(
    submission: Submission,
    *,
    channel: Channel,
    received_at: datetime,
    idempotency_key: str | None = None,
) -> TicketSubmitted:
    """The one ticket shape every channel produces."""
    source = submission.source if isinstance(submission, InboundSubmission) else None
    external_id = submission.external_id or idempotency_key
    return TicketSubmitted(
        ticket_id=ticket_id_for(channel=channel, source=source, external_id=external_id),
        channel=channel,
        source=source,
        external_id=external_id,
        learner=Learner(
            name=_SPACES.sub(" ", submission.name),
            email=submission.email.lower(),
            phone=_phone(submission.phone),
            learner_id=submission.learner_id,
        ),
        subject=_SPACES.sub(" ", submission.subject),
        description=submission.description,
        course_id=submission.course_id,
        order_id=submission.order_id,
        language=submission.language
        or detect_language(f"{submission.subject}\n{submission.description}"),
        attachments=submission.attachments,
        submitted_at=received_at,
    )
