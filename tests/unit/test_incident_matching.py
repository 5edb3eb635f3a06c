"""shared.incidents.matches: an incident's criteria against a ticket, as linking on arrival,
routing and desk all decide it."""

import pytest

from shared.events import Category, Channel, IncidentCriteria
from shared.incidents import TicketFacts, first_match, matches

LIVE_CLASS = TicketFacts(
    subject="直播课进不去",
    description="今晚 PY101 的直播间一直黑屏，ZOOM 链接也打不开",
    channel=Channel.APP,
    course_id="PY101",
    category=Category.TECHNICAL,
)


@pytest.mark.parametrize(
    "criteria",
    [
        IncidentCriteria(category=Category.TECHNICAL),
        IncidentCriteria(courses=("JAVA2", "PY101")),
        IncidentCriteria(channel=Channel.APP),
        IncidentCriteria(keywords=("黑屏",)),
        IncidentCriteria(keywords=("退款", "黑屏")),  # any one keyword
        IncidentCriteria(keywords=("zoom",)),  # case folded
        IncidentCriteria(keywords=("ｚｏｏｍ",)),  # full-width folded
        IncidentCriteria(category=Category.TECHNICAL, courses=("PY101",), keywords=("直播",)),
    ],
)
def test_a_ticket_meeting_every_given_criterion_matches(criteria: IncidentCriteria) -> None:
    assert matches(criteria, LIVE_CLASS)


@pytest.mark.parametrize(
    "criteria",
    [
        IncidentCriteria(category=Category.PAYMENT_REFUND),
        IncidentCriteria(courses=("JAVA2",)),
        IncidentCriteria(channel=Channel.EMAIL),
        IncidentCriteria(keywords=("退款",)),
        IncidentCriteria(category=Category.TECHNICAL, courses=("JAVA2",)),  # one fails: no
    ],
)
def test_a_ticket_failing_one_criterion_does_not_match(criteria: IncidentCriteria) -> None:
    assert not matches(criteria, LIVE_CLASS)


def test_an_incident_without_criteria_matches_nothing() -> None:
    assert not matches(IncidentCriteria(), LIVE_CLASS)


def test_a_category_criterion_waits_for_triage() -> None:
    untriaged = TicketFacts(subject="直播课进不去", description="黑屏", category=None)
    assert not matches(IncidentCriteria(category=Category.TECHNICAL), untriaged)
    assert matches(IncidentCriteria(keywords=("黑屏",)), untriaged)


def test_a_ticket_without_a_course_does_not_match_a_course_incident() -> None:
    no_course = TicketFacts(subject="黑屏", description="", course_id=None)
    assert not matches(IncidentCriteria(courses=("PY101",)), no_course)


def test_the_first_matching_incident_in_the_callers_order_wins() -> None:
    incidents = [
        ("refunds", IncidentCriteria(category=Category.PAYMENT_REFUND)),
        ("live", IncidentCriteria(keywords=("直播",))),
        ("py101", IncidentCriteria(courses=("PY101",))),
    ]
    assert first_match(incidents, LIVE_CLASS) == "live"
    assert first_match(incidents[:1], LIVE_CLASS) is None
