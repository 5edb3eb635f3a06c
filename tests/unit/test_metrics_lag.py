"""Unit tests for services.metrics.lag: a group's lag from its commits and the partitions' ends."""

from aiokafka import TopicPartition

from services.metrics.lag import Lag, lags

T0 = TopicPartition("careloop.tickets.v1", 0)
T1 = TopicPartition("careloop.tickets.v1", 1)


def test_lag_is_the_messages_past_the_committed_offset() -> None:
    assert lags({"desk": {T0: 4, T1: 10}}, {T0: 9, T1: 10}) == [
        Lag("desk", "careloop.tickets.v1", 0, 5),
        Lag("desk", "careloop.tickets.v1", 1, 0),
    ]


def test_a_partition_the_group_never_committed_on_has_no_lag_series() -> None:
    assert lags({"desk": {T0: -1, T1: 3}}, {T0: 9, T1: 3}) == [
        Lag("desk", "careloop.tickets.v1", 1, 0)
    ]


def test_a_commit_past_a_broker_that_lost_records_is_no_lag_not_a_negative_one() -> None:
    assert lags({"notify": {T0: 12}}, {T0: 5}) == [Lag("notify", "careloop.tickets.v1", 0, 0)]


def test_a_partition_whose_end_is_unknown_is_left_out() -> None:
    assert lags({"routing": {T0: 1, T1: 1}}, {T0: 1}) == [
        Lag("routing", "careloop.tickets.v1", 0, 0)
    ]
