"""Whether a ticket belongs to an open incident: one pure function that the incident service
(linking on arrival), routing (keeping linked tickets off agents' capacity) and desk agree on.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from shared.events import Category, Channel, IncidentCriteria


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What is known of a ticket when it is matched; `category` is None until triage ran."""

    subject: str
    description: str
    channel: Channel | None = None
    course_id: str | None = None
    category: Category | None = None


def matches(criteria: IncidentCriteria, ticket: TicketFacts) -> bool:
    """Every criterion the incident gives holds for the ticket: its category, one of its
    courses, its channel, and one of its keywords in the subject or description (case and
    width folded, so 'ZOOM' and 'ｚｏｏｍ' match 'zoom'). An incident without any criterion
    matches nothing: linking every new ticket is never what an empty form meant."""
    if not (criteria.category or criteria.courses or criteria.channel or criteria.keywords):
        return False
    if criteria.category is not None and ticket.category != criteria.category:
        return False
    if criteria.courses and ticket.course_id not in criteria.courses:
        return False
    if criteria.channel is not None and ticket.channel != criteria.channel:
        return False
    if criteria.keywords:
        text = fold(f"{ticket.subject}\n{ticket.description}")
        return any(fold(k) in text for k in criteria.keywords)
    return True


K = TypeVar("K")


def first_match(incidents: Iterable[tuple[K, IncidentCriteria]], ticket: TicketFacts) -> K | None:
    """The first incident (in the order given: the caller puts the most severe, then the
    oldest, first) whose criteria the ticket matches; None when none does."""
    for incident, criteria in incidents:
        if matches(criteria, ticket):
            return incident
    return None


def fold(text: str) -> str:
    """Full-width forms as ASCII, case folded: how learners type the same word differently."""
    return text.translate(_FULL_WIDTH).casefold()


# U+FF01..U+FF5E are the full-width forms of ASCII 0x21..0x7E; U+3000 the ideographic space.
_FULL_WIDTH = {0xFF01 + i: 0x21 + i for i in range(0x5E)} | {0x3000: 0x20}
