"""Unit tests for the pure helpers of shared.inbox: runs of one event type, last per key, the
consumers' options."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared import dlq
from shared.events import (
    Envelope,
    Priority,
    TicketAssigned,
    TicketQueued,
    new_event,
)
from shared.inbox import batch_subscriber_options, last_per_key, runs
from shared.settings import CommonSettings

AT = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)
TICKET_ID = UUID("0190a3b2-7c1d-7e2f-8a3b-1234567890ab")


def _queued() -> Envelope[Any]:
    data = TicketQueued(ticket_id=TICKET_ID, team="finance", priority=Priority.LOW, queued_at=AT)
    return new_event(data, producer="routing")


def _assigned() -> Envelope[Any]:
    data = TicketAssigned(
        ticket_id=TICKET_ID, agent_id="li", team="finance", priority=Priority.LOW, assigned_at=AT
    )
    return new_event(data, producer="routing")


# ---- runs ---------------------------------------------------------------------------------


def test_runs_of_no_events_are_empty() -> None:
    assert runs([]) == []


def test_runs_group_consecutive_events_of_one_type() -> None:
    first, second = _queued(), _queued()

    assert runs([first, second]) == [("ticket.queued", [first, second])]


def test_runs_start_a_new_run_whenever_the_type_changes_keeping_the_order() -> None:
    q1, q2, a1, q3 = _queued(), _queued(), _assigned(), _queued()

    assert runs([q1, q2, a1, q3]) == [
        ("ticket.queued", [q1, q2]),
        ("ticket.assigned", [a1]),
        ("ticket.queued", [q3]),
    ]


# ---- last_per_key -------------------------------------------------------------------------


def test_last_per_key_of_no_items_is_empty() -> None:
    assert last_per_key([], key=lambda item: item) == []


def test_last_per_key_keeps_items_with_distinct_keys_in_order() -> None:
    items = [("a", 1), ("b", 1), ("c", 1)]

    assert last_per_key(items, key=lambda item: item[0]) == items


def test_last_per_key_keeps_the_last_item_of_a_repeated_key() -> None:
    items = [("a", 1), ("a", 2), ("a", 3)]

    assert last_per_key(items, key=lambda item: item[0]) == [("a", 3)]


def test_last_per_key_orders_keys_by_their_first_appearance() -> None:
    items = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("b", 2)]

    assert last_per_key(items, key=lambda item: item[0]) == [("a", 2), ("b", 2), ("c", 1)]


async def test_every_consumer_group_member_takes_the_session_timeout_setting() -> None:
    settings = CommonSettings(kafka_session_timeout_ms=3000)

    options = batch_subscriber_options(settings, "desk")
    replay = dlq._reader(settings, group_id="replay")  # inside a loop, as aiokafka requires

    assert (options["session_timeout_ms"], options["heartbeat_interval_ms"]) == (3000, 500)
    assert (replay._session_timeout_ms, replay._heartbeat_interval_ms) == (3000, 500)
