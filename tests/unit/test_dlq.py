"""Unit tests for shared.dlq: dead letters bounded on the wire, sorting poison out of a batch,
sending that never loops on a size refusal, and what replay refuses."""

import asyncio
import json
import uuid
from typing import Any, cast

import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from faststream.kafka import KafkaBroker
from pydantic import BaseModel, Field

from shared import dlq, topics
from shared.events import Priority, TicketQueued, new_event, now

TOPIC = "careloop.routing.v1"


def record(
    value: bytes | None = b"{}",
    *,
    key: bytes | None = b"k",
    headers: list[tuple[str, bytes]] | None = None,
    topic: str = TOPIC,
    offset: int = 7,
) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic=topic,
        partition=2,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers or [],
    )


def letter(rec: ConsumerRecord[Any, Any] | None = None, error: str = "bad") -> dlq.DeadLetter:
    return dlq.DeadLetter(rec or record(), error, "desk")


def stored(value: bytes | None = b"{}", **headers: str) -> dlq.StoredLetter:
    return dlq.StoredLetter(0, 0, b"k", value, {k.replace("_", "-"): v for k, v in headers.items()})


def valid_event() -> bytes:
    data = TicketQueued(ticket_id=uuid.uuid4(), team="t", priority=Priority.LOW, queued_at=now())
    return new_event(data, producer="routing").to_json()


# ---- the wire form --------------------------------------------------------------------------


def test_a_dead_letter_under_the_limit_keeps_its_value_and_headers() -> None:
    wire = letter(record(b"hello", headers=[("careloop-type", b"ticket.queued")])).wire(1024)

    assert wire.value == b"hello"
    assert wire.headers["careloop-type"] == "ticket.queued"
    assert wire.headers[dlq.TRUNCATED] == "false"


def test_a_dead_letter_says_where_the_record_was_and_why_it_failed() -> None:
    wire = letter(record(offset=41), error="no such agent").wire(1024)

    assert wire.topic == topics.dlq(TOPIC)
    assert (
        wire.headers[dlq.ORIGINAL_TOPIC],
        wire.headers[dlq.ORIGINAL_PARTITION],
        wire.headers[dlq.ORIGINAL_OFFSET],
    ) == (TOPIC, "2", "41")
    assert (wire.headers[dlq.ERROR], wire.headers[dlq.CONSUMER]) == ("no such agent", "desk")


def test_a_value_over_the_limit_is_cut_to_it_and_keeps_its_original_size() -> None:
    wire = letter(record(b"x" * 5000)).wire(1024)

    assert wire.value == b"x" * 1024
    assert wire.headers[dlq.TRUNCATED] == "true"
    assert wire.headers[dlq.ORIGINAL_SIZE] == "5000"


def test_an_oversized_key_is_cut_and_marks_the_letter_truncated() -> None:
    wire = letter(record(key=b"k" * 5000)).wire(1024)

    assert wire.key == b"k" * dlq.KEY_LIMIT
    assert wire.headers[dlq.ORIGINAL_KEY_SIZE] == "5000"
    assert wire.headers[dlq.TRUNCATED] == "true"


def test_copied_headers_are_bounded_each_and_all_together() -> None:
    many = [(f"h{i:03}", b"v" * 5000) for i in range(100)]

    headers = letter(record(headers=many)).wire(1024).headers

    copied = {k: v for k, v in headers.items() if k.startswith("h")}
    assert all(len(v) <= dlq.HEADER_VALUE_LIMIT for v in copied.values())
    assert sum(len(k) + len(v) for k, v in copied.items()) <= dlq.HEADERS_LIMIT


def test_a_long_error_is_cut_on_a_character_boundary() -> None:
    wire = letter(error="错" * 5000).wire(1024)

    assert len(wire.headers[dlq.ERROR].encode()) <= dlq.ERROR_LIMIT
    assert set(wire.headers[dlq.ERROR]) == {"错"}


def test_the_stub_keeps_no_value_and_no_copied_headers_but_the_replay_count() -> None:
    original = record(b"x" * 10, headers=[("h", b"v"), (dlq.REPLAYS, b"2")])

    wire = letter(original).wire(0)

    assert wire.value == b""
    assert "h" not in wire.headers
    assert wire.headers[dlq.REPLAYS] == "2"
    assert wire.headers[dlq.TRUNCATED] == "true"


def test_every_copy_of_one_failure_carries_the_same_id() -> None:
    first, second = letter(record(offset=9)), letter(record(offset=9))

    assert (
        first.wire(1024).headers[dlq.DEAD_LETTER_ID] == second.wire(0).headers[dlq.DEAD_LETTER_ID]
    )


def test_failures_of_different_records_or_consumers_have_different_ids() -> None:
    ids = {
        letter(record(offset=1)).id,
        letter(record(offset=2)).id,
        dlq.DeadLetter(record(offset=1), "bad", "metrics").id,
    }

    assert len(ids) == 3


# ---- sorting poison out of a batch ----------------------------------------------------------


def _parse(rec: ConsumerRecord[Any, Any]) -> dict[str, Any] | None:
    parsed: dict[str, Any] = json.loads(rec.value)
    return parsed or None


def test_sort_out_keeps_what_parses_in_order() -> None:
    parsed, letters = dlq.sort_out(
        [record(b'{"a": 1}'), record(b'{"b": 2}')], _parse, consumer="desk"
    )

    assert [item for _, item in parsed] == [{"a": 1}, {"b": 2}]
    assert letters == []


def test_sort_out_dead_letters_a_tombstone_without_parsing_it() -> None:
    parsed, [tombstone] = dlq.sort_out([record(None)], _parse, consumer="desk")

    assert parsed == []
    assert tombstone.error.startswith("tombstone")


def test_sort_out_dead_letters_what_does_not_parse_with_the_reason() -> None:
    _, [bad] = dlq.sort_out(
        [record(b"{nope")], _parse, consumer="desk", describe=lambda e: f"invalid: {e}"
    )

    assert bad.error.startswith("invalid: Expecting property name")


def test_sort_out_passes_over_what_parses_to_none() -> None:
    assert dlq.sort_out([record(b"{}")], _parse, consumer="desk") == ([], [])


class _Model(BaseModel):
    email: str = Field(max_length=3)


def test_a_validation_error_is_described_field_by_field() -> None:
    with pytest.raises(ValueError) as caught:
        _Model.model_validate({"email": "toolong"})

    assert dlq.describe_error(caught.value) == "email: String should have at most 3 characters"


# ---- sending ---------------------------------------------------------------------------------


class RefusingBroker:
    """Acknowledges values up to `limit` bytes; refuses larger ones as a broker does, after
    the send (or, with `early`, as aiokafka's own size check does, in the send)."""

    def __init__(self, limit: int, *, early: bool = False) -> None:
        self.limit, self.early = limit, early
        self.acked: list[bytes] = []
        self.attempts = 0

    async def publish(self, value: bytes, topic: str, **_: Any) -> asyncio.Future[None]:
        self.attempts += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(value) > self.limit:
            if self.early:
                raise MessageSizeTooLargeError()
            future.set_exception(MessageSizeTooLargeError())
        else:
            self.acked.append(value)
            future.set_result(None)
        return future


class DownBroker:
    async def publish(self, *_: Any, **__: Any) -> asyncio.Future[None]:
        raise KafkaConnectionError()


async def test_a_letter_the_broker_refuses_goes_again_smaller() -> None:
    broker = RefusingBroker(2000)

    await dlq.publish(cast(KafkaBroker, broker), [letter(record(b"x" * 500_000))], service="t")

    assert broker.acked == [b"x" * 1024]


async def test_a_letter_the_producer_refuses_at_once_goes_again_smaller() -> None:
    broker = RefusingBroker(2000, early=True)

    await dlq.publish(cast(KafkaBroker, broker), [letter(record(b"x" * 500_000))], service="t")

    assert broker.acked == [b"x" * 1024]


async def test_a_letter_refused_even_as_a_stub_is_given_up_after_one_try_of_each_size() -> None:
    broker = RefusingBroker(-1)

    await dlq.publish(cast(KafkaBroker, broker), [letter()], service="t")

    assert (broker.acked, broker.attempts) == ([], len(dlq.VALUE_LIMITS))


async def test_a_broker_that_is_away_makes_sending_fail_for_a_redelivery() -> None:
    with pytest.raises(KafkaConnectionError):
        await dlq.publish(cast(KafkaBroker, DownBroker()), [letter()], service="t")


# ---- reading back and replay ----------------------------------------------------------------


def test_unique_keeps_the_first_copy_of_each_failure() -> None:
    a, b, a_again = (
        stored(careloop_dead_letter_id="a"),
        stored(careloop_dead_letter_id="b"),
        stored(careloop_dead_letter_id="a"),
    )

    assert dlq.unique([a, b, a_again]) == [a, b]


def test_replay_refuses_a_truncated_letter() -> None:
    reason = dlq.why_not_replay(
        stored(careloop_truncated="true", careloop_original_size="1500000"),
        topic=TOPIC,
        max_replays=3,
    )

    assert reason == "truncated: only part of its 1500000 bytes was kept"


def test_replay_refuses_a_tombstone() -> None:
    assert dlq.why_not_replay(stored(None), topic=TOPIC, max_replays=3) == (
        "no value (a tombstone or an empty record)"
    )


def test_replay_refuses_a_letter_replayed_up_to_the_limit() -> None:
    reason = dlq.why_not_replay(
        stored(valid_event(), careloop_replays="3"), topic=TOPIC, max_replays=3
    )

    assert reason == "replayed 3 times already (limit 3)"


def test_replay_accepts_a_valid_event_replayed_fewer_times_than_the_limit() -> None:
    assert (
        dlq.why_not_replay(stored(valid_event(), careloop_replays="2"), topic=TOPIC, max_replays=3)
        is None
    )


def test_replay_refuses_an_event_that_still_does_not_decode() -> None:
    reason = dlq.why_not_replay(stored(b'{"type": 1}'), topic=TOPIC, max_replays=3)

    assert reason is not None and reason.startswith("still invalid: ")


def test_replay_checks_an_inbound_letter_with_the_submission_model() -> None:
    submission = {
        "source": "lms",
        "external_id": "lms-1",
        "name": "Li Lei",
        "email": "not an address",
        "subject": "s",
        "description": "d",
    }
    letter = stored(json.dumps(submission).encode(), careloop_original_topic=topics.INBOUND)

    reason = dlq.why_not_replay(letter, topic=topics.INBOUND, max_replays=3)

    assert reason is not None and reason.startswith("still invalid: email: ")


def test_replay_headers_drop_the_dead_letter_headers_and_count_the_replay() -> None:
    letter = stored(careloop_error="bad", careloop_type="ticket.queued", careloop_replays="1")

    assert dict(dlq.replay_headers(letter)) == {
        "careloop-type": b"ticket.queued",
        dlq.REPLAYS: b"2",
    }


# ---- applying a batch, isolating what fails for good ----------------------------------------


class Effect:
    """Fails for good on any batch holding `bad`; fails as if Kafka were away when told to."""

    def __init__(self, bad: str = "", *, error: Exception | None = None) -> None:
        self.bad, self.error = bad, error
        self.applied: list[str] = []

    async def __call__(self, items: list[str]) -> None:
        if self.error is not None:
            raise self.error
        if self.bad in items:
            raise RuntimeError(f"cannot apply {self.bad}")
        self.applied.extend(items)


def items(*names: str) -> list[tuple[ConsumerRecord[Any, Any], str]]:
    return [(record(offset=i), name) for i, name in enumerate(names)]


async def test_apply_each_applies_a_good_batch_at_once() -> None:
    effect = Effect()

    assert await dlq.apply_each(items("a", "b"), effect, consumer="intake") == []
    assert effect.applied == ["a", "b"]


async def test_apply_each_dead_letters_only_the_item_that_fails_for_good() -> None:
    effect = Effect("b")

    [bad] = await dlq.apply_each(items("a", "b", "c"), effect, consumer="intake")

    assert (bad.record.offset, bad.error) == (1, "RuntimeError('cannot apply b')")
    assert effect.applied == ["a", "c"]


async def test_apply_each_isolates_a_message_too_large_to_publish() -> None:
    effect = Effect(error=MessageSizeTooLargeError())

    letters = await dlq.apply_each(items("a"), effect, consumer="intake")

    assert [letter.record.offset for letter in letters] == [0]


async def test_apply_each_lets_a_transient_error_through_for_a_redelivery() -> None:
    with pytest.raises(KafkaConnectionError):
        await dlq.apply_each(items("a"), Effect(error=KafkaConnectionError()), consumer="intake")


def test_sort_out_dead_letters_any_error_of_the_pure_parse() -> None:
    def broken(rec: ConsumerRecord[Any, Any]) -> None:
        raise KeyError("learner")

    _, [bad] = dlq.sort_out([record()], broken, consumer="intake")

    assert bad.error == "KeyError('learner')"


def test_a_lone_surrogate_in_an_error_becomes_a_question_mark_a_header_can_carry() -> None:
    wire = letter(error="bad \udcff byte").wire(1024)

    assert wire.headers[dlq.ERROR] == "bad ? byte"
