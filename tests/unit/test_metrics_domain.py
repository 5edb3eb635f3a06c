"""Unit tests for services.metrics.domain: first-response breaches, event statuses and
reopenings."""

import uuid
from datetime import UTC, datetime, timedelta

from services.metrics.domain import STATUS_OF, breached, first_contact, placed, reopenings

DUE = datetime(2024, 5, 17, 10, 0, tzinfo=UTC)


def test_a_response_after_the_due_time_is_a_breach() -> None:
    assert breached(DUE, DUE + timedelta(seconds=1))


def test_a_response_before_the_due_time_is_not_a_breach() -> None:
    assert not breached(DUE, DUE - timedelta(minutes=5))


def test_a_response_exactly_at_the_due_time_is_not_a_breach() -> None:
    assert not breached(DUE, DUE)


def test_a_response_without_a_known_due_time_is_not_a_breach() -> None:
    assert not breached(None, DUE + timedelta(days=30))


def test_every_ticket_lifecycle_event_maps_to_its_status() -> None:
    assert STATUS_OF == {
        "ticket.created": "new",
        "ticket.queued": "queued",
        "ticket.assigned": "assigned",
        "ticket.resolved": "resolved",
        "ticket.reopened": "reopened",
        "ticket.closed": "closed",
    }


def test_a_ticket_routed_to_an_agent_starts_assigned() -> None:
    assert placed("ana") == "assigned"


def test_a_ticket_routed_to_nobody_starts_queued() -> None:
    assert placed(None) == "queued"


def test_a_batch_s_reopenings_of_one_ticket_add_up_to_one_row_with_the_last_time() -> None:
    one, other = uuid.uuid4(), uuid.uuid4()
    later = DUE + timedelta(hours=1)

    rows = reopenings([(one, later), (other, DUE), (one, DUE)])

    assert sorted(rows, key=lambda r: r[1]) == [(other, 1, DUE), (one, 2, later)]


def test_only_a_ticket_never_reopened_is_a_first_contact_resolution() -> None:
    assert (first_contact(0), first_contact(1), first_contact(3)) == ("true", "false", "false")
