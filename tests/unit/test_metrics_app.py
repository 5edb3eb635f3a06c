"""Unit tests for services.metrics.app: a batch's records regrouped by event type."""

from typing import Any

from aiokafka import ConsumerRecord

from services.metrics.app import by_type


def record(offset: int, event_type: str | None) -> ConsumerRecord[Any, Any]:
    headers = [] if event_type is None else [("careloop-type", event_type.encode())]
    return ConsumerRecord("t", 0, offset, 0, 0, b"k", b"{}", None, 1, 2, headers)


def test_records_are_grouped_by_type_with_facts_first_and_arrival_order_kept() -> None:
    batch = [
        record(0, "ticket.triaged"),
        record(1, "ticket.assigned"),
        record(2, "ticket.triaged"),
        record(3, "ticket.assigned"),
        record(4, "ticket.created"),
    ]
    assert [r.offset for r in by_type(batch)] == [4, 0, 2, 1, 3]


def test_records_of_no_known_type_go_last() -> None:
    batch = [record(0, None), record(1, "something.else"), record(2, "ticket.routed")]
    assert [r.offset for r in by_type(batch)] == [2, 0, 1]
