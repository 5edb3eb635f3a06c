"""Dead letters: build them bounded, send them once, list and replay them.

`python -m shared.dlq list|replay TOPIC` reads the whole dead-letter topic of TOPIC: until
two polls in a row bring nothing, never trusting the broker's end offsets alone (the local
Tansu reports the last batch's base offset + 1). A failure may reach the topic twice (a crash
between the dead letter's ack and the offset commit), so both commands de-duplicate by
`careloop-dead-letter-id`.

`replay` re-publishes each dead letter to the topic it came from, skipping (and reporting)
what would fail again: truncated or empty values, what the consumer's own model still
rejects, and what was replayed `--max-replays` times already. It commits its progress in the
`careloop-dlq-replay` group only after Kafka acknowledged, so a second run replays nothing
twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from shared import telemetry, topics
from shared.errors import is_transient
from shared.events import InboundSubmission, UnknownEventType, decode, now
from shared.settings import CommonSettings

log = structlog.get_logger(__name__)

REPLAY_GROUP = "careloop-dlq-replay"
MAX_REPLAYS = 3
QUIET_MS = 2000  # the topic is read whole once no record arrived for this long

# Headers a dead letter carries (the original record's own headers come along too).
ERROR = "careloop-error"
CONSUMER = "careloop-consumer"
ORIGINAL_TOPIC = "careloop-original-topic"
ORIGINAL_PARTITION = "careloop-original-partition"
ORIGINAL_OFFSET = "careloop-original-offset"
ORIGINAL_SIZE = "careloop-original-size"
ORIGINAL_KEY_SIZE = "careloop-original-key-size"
TRUNCATED = "careloop-truncated"
FAILED_AT = "careloop-failed-at"
DEAD_LETTER_ID = "careloop-dead-letter-id"
# Set by `replay` on what it re-publishes, so a dead letter of a replay says how many it had.
REPLAYS = "careloop-replays"
_ADDED = frozenset(
    {
        ERROR,
        CONSUMER,
        ORIGINAL_TOPIC,
        ORIGINAL_PARTITION,
        ORIGINAL_OFFSET,
        ORIGINAL_SIZE,
        ORIGINAL_KEY_SIZE,
        TRUNCATED,
        FAILED_AT,
        DEAD_LETTER_ID,
    }
)

# Bounds that keep a dead letter far below any producer's limit (aiokafka's default
# max_request_size and Apache Kafka's max.message.bytes are both about 1 MiB).
VALUE_LIMITS = (256 * 1024, 1024, 0)  # tried in turn while the producer or broker refuses
KEY_LIMIT = 1024
ERROR_LIMIT = 2000
HEADER_VALUE_LIMIT = 1024
HEADERS_LIMIT = 8 * 1024  # all copied original headers together
HEADERS_MAX_COUNT = 32
TOO_LARGE: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)


def cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, never inside a character; a lone surrogate
    (which no header can carry) becomes `?`."""
    return text.encode(errors="replace")[:limit].decode(errors="ignore")


def describe_error(exc: BaseException) -> str:
    """`field: problem; …` for a validation error (the form a sender can act on), else repr."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}"
            for err in exc.errors()
        )
    if isinstance(exc, msgspec.ValidationError):  # "Expected … - at `$.data.learner.email`"
        problem, _, where = str(exc).partition(" - at `$")
        path = [p for p in where.rstrip("`").split(".") if p]
        if missing := re.fullmatch(r"Object missing required field `(.+)`", problem):
            path, problem = [*path, missing.group(1)], "Field required"
        return f"{'.'.join(path) or 'message'}: {problem}"
    if isinstance(exc, msgspec.DecodeError):
        return f"message: {exc}"
    return repr(exc)


def _text(value: bytes | None) -> str:
    return (value or b"").decode(errors="replace")


def _record_headers(record: ConsumerRecord[Any, Any]) -> list[tuple[str, str]]:
    return [(k, _text(v)) for k, v in (record.headers or ())]


@dataclass(frozen=True, slots=True)
class Wire:
    """One dead letter as it goes to the broker."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that failed for good and why; bounded only when it is put on the wire."""

    record: ConsumerRecord[Any, Any]
    error: str
    consumer: str
    failed_at: datetime = field(default_factory=now)

    @property
    def topic(self) -> str:
        return topics.dlq(self.record.topic)

    @property
    def id(self) -> str:
        """The same for every copy of this failure: where the record was, and who failed it."""
        r = self.record
        return f"{r.topic}/{r.partition}/{r.offset}/{self.consumer}"

    def wire(self, value_limit: int) -> Wire:
        """The record cut to `value_limit` bytes of value, its headers bounded; at 0, a stub
        that keeps only where it came from and why."""
        r = self.record
        value: bytes = r.value or b""
        key: bytes | None = r.key
        headers: dict[str, str] = {}
        original = _record_headers(r)
        replays = [v for k, v in original if k == REPLAYS]
        if value_limit > 0:
            headers.update(_bounded(original))
        if replays:
            headers[REPLAYS] = cut(replays[-1], 20)
        truncated = len(value) > value_limit
        if key is not None and len(key) > KEY_LIMIT:
            headers[ORIGINAL_KEY_SIZE] = str(len(key))
            key, truncated = key[:KEY_LIMIT], True
        headers.update(
            {
                ERROR: cut(self.error, ERROR_LIMIT if value_limit > 0 else 200),
                CONSUMER: cut(self.consumer, 200),
                ORIGINAL_TOPIC: r.topic,
                ORIGINAL_PARTITION: str(r.partition),
                ORIGINAL_OFFSET: str(r.offset),
                ORIGINAL_SIZE: str(len(value)),
                TRUNCATED: "true" if truncated else "false",
                FAILED_AT: self.failed_at.isoformat(),
                DEAD_LETTER_ID: cut(self.id, 500),
            }
        )
        return Wire(self.topic, key, value[:value_limit], headers)


def _bounded(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The original headers, each and all together bounded; our own names are left out."""
    kept: dict[str, str] = {}
    budget = HEADERS_LIMIT
    for name, value in headers:
        if name in _ADDED or name == REPLAYS or len(kept) >= HEADERS_MAX_COUNT:
            continue
        name, value = cut(name, 200), cut(value, HEADER_VALUE_LIMIT)
        size = len(name.encode()) + len(value.encode())
        if size > budget:
            break
        kept[name] = value
        budget -= size
    return kept


T = TypeVar("T")


def sort_out(
    records: Sequence[ConsumerRecord[Any, Any]],
    parse: Callable[[ConsumerRecord[Any, Any]], T | None],
    *,
    consumer: str,
    describe: Callable[[BaseException], str] = describe_error,
) -> tuple[list[tuple[ConsumerRecord[Any, Any], T]], list[DeadLetter]]:
    """Parse each record on its own with the pure `parse`: what cannot be (a tombstone,
    undecodable or invalid bytes, any error of `parse`) becomes a dead letter, what parses to
    None is not this consumer's, and the rest comes back in order."""
    parsed: list[tuple[ConsumerRecord[Any, Any], T]] = []
    letters: list[DeadLetter] = []
    for record in records:
        if record.value is None:
            letters.append(DeadLetter(record, "tombstone: the record has no value", consumer))
            continue
        try:
            item = parse(record)
        except Exception as exc:  # parsing is pure: what fails once fails every time
            letters.append(DeadLetter(record, describe(exc), consumer))
            continue
        if item is not None:
            parsed.append((record, item))
    return parsed, letters


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: not a dependency away, or a message too large to send."""
    return not is_transient(exc) or isinstance(exc, TOO_LARGE)


async def apply_each(
    items: Sequence[tuple[ConsumerRecord[Any, Any], T]],
    effect: Callable[[list[T]], Awaitable[Any]],
    *,
    consumer: str,
    describe: Callable[[BaseException], str] = describe_error,
) -> list[DeadLetter]:
    """Apply `effect` to all items at once; when that fails for good, to each item alone, and
    return the dead letters of those that still fail for good. A transient error propagates,
    so the batch is redelivered with nothing committed."""
    if not items:
        return []
    try:
        await effect([item for _, item in items])
        return []
    except Exception as exc:
        if not is_permanent(exc):
            raise
        log.warning("batch failed for good, isolating", consumer=consumer, error=repr(exc))
    letters: list[DeadLetter] = []
    for record, item in items:
        try:
            await effect([item])
        except Exception as exc:
            if not is_permanent(exc):
                raise
            letters.append(DeadLetter(record, describe(exc), consumer))
    return letters


async def publish(broker: KafkaBroker, letters: Sequence[DeadLetter], *, service: str) -> None:
    """Send every letter and wait for the acks. A letter the producer or broker refuses as too
    large goes again smaller, down to a stub, and is dropped with an error log only if even
    the stub is refused: a dead letter never makes its batch retry forever. Other errors
    (the broker away) propagate, so the batch is redelivered."""
    in_flight = [(letter, *await _send(broker, letter, 0)) for letter in letters]
    for letter, future, tier in in_flight:
        while future is not None:
            try:
                await future
            except TOO_LARGE as exc:
                log.warning("dead letter refused as too large", id=letter.id, error=repr(exc))
                future, tier = await _send(broker, letter, tier + 1)
                continue
            telemetry.DEAD_LETTERS.labels(service, letter.topic).inc()
            break


async def _send(
    broker: KafkaBroker, letter: DeadLetter, tier: int
) -> tuple[asyncio.Future[Any] | None, int]:
    for at in range(tier, len(VALUE_LIMITS)):
        wire = letter.wire(VALUE_LIMITS[at])
        try:
            future = await broker.publish(
                wire.value, wire.topic, key=wire.key, headers=wire.headers, no_confirm=True
            )
            return future, at
        except TOO_LARGE as exc:
            log.warning("dead letter too large to send", id=letter.id, error=repr(exc))
    log.error("dead letter dropped: even its stub was refused", id=letter.id, error=letter.error)
    return None, len(VALUE_LIMITS)


# ---- reading back ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredLetter:
    """A dead letter as read back from its topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @classmethod
    def of(cls, record: ConsumerRecord[Any, Any]) -> StoredLetter:
        return cls(
            record.partition, record.offset, record.key, record.value, dict(_record_headers(record))
        )

    @property
    def id(self) -> str:
        """The failure's id (letters from before ids existed: their place in the topic)."""
        return self.headers.get(DEAD_LETTER_ID) or f"dlq/{self.partition}/{self.offset}"

    @property
    def replays(self) -> int:
        try:
            return int(self.headers.get(REPLAYS, "0"))
        except ValueError:
            return 0

    def row(self) -> dict[str, Any]:
        h = self.headers
        return {
            "id": self.id,
            "partition": self.partition,
            "offset": self.offset,
            "key": _text(self.key) if self.key is not None else None,
            "error": h.get(ERROR),
            "consumer": h.get(CONSUMER),
            "original": f"{h[ORIGINAL_TOPIC]}[{h.get(ORIGINAL_PARTITION)}]@{h.get(ORIGINAL_OFFSET)}"
            if ORIGINAL_TOPIC in h
            else None,
            "original_size": int(h[ORIGINAL_SIZE]) if h.get(ORIGINAL_SIZE, "").isdigit() else None,
            "truncated": h.get(TRUNCATED) == "true",
            "replays": self.replays,
            "failed_at": h.get(FAILED_AT),
        }


def unique(letters: Iterable[StoredLetter]) -> list[StoredLetter]:
    """The first copy of each failure, in order."""
    seen: set[str] = set()
    kept = []
    for letter in letters:
        if letter.id not in seen:
            seen.add(letter.id)
            kept.append(letter)
    return kept


async def read_all(
    consumer: AIOKafkaConsumer, topic: str, *, quiet_ms: int = QUIET_MS
) -> list[ConsumerRecord[Any, Any]]:
    """Every record of `topic` from its beginning, in order per partition.

    Reads until two polls in a row, `quiet_ms` together, bring nothing. The end offsets the
    broker reports are only a hint: while a partition seems behind them, up to ten empty polls
    are allowed; once every record is in, polls end it whatever the offsets say.
    """
    await consumer.topics()  # load metadata
    partitions = [
        TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    if not partitions:
        return []
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends = await consumer.end_offsets(partitions)
    records: list[ConsumerRecord[Any, Any]] = []
    idle = 0
    while idle < 2 or (idle < 10 and await _behind(consumer, ends)):
        batch = await consumer.getmany(*partitions, timeout_ms=quiet_ms // 2, max_records=500)
        got = [r for recs in batch.values() for r in recs]
        records.extend(got)
        idle = 0 if got else idle + 1
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    return any([await consumer.position(tp) < end for tp, end in ends.items()])


def _reader(settings: CommonSettings, *, group_id: str | None = None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        # the replay joins a group, as every consumer does (Tansu holds a join for half of it)
        **settings.group_member_timeouts(),
    )


async def list_dead_letters(
    settings: CommonSettings, topic: str, *, limit: int | None = None, quiet_ms: int = QUIET_MS
) -> list[StoredLetter]:
    """Every dead letter of `topic`, each failure once, oldest first per partition."""
    consumer = _reader(settings)
    try:
        await consumer.start()
        records = await read_all(consumer, topics.dlq(topic), quiet_ms=quiet_ms)
    finally:
        await consumer.stop()
    letters = unique(StoredLetter.of(r) for r in records)
    return letters[:limit] if limit is not None else letters


# ---- replay ---------------------------------------------------------------------------------


def still_fails(topic: str, value: bytes) -> str | None:
    """Why the consumer of `topic` would refuse `value` again, by its own model; None if not."""
    try:
        if topic == topics.INBOUND:
            InboundSubmission.model_validate_json(value)
        else:
            decode(value)
    except UnknownEventType as exc:
        return f"unknown event type {exc}: no consumer would apply it"
    except (ValueError, TypeError) as exc:
        return f"still invalid: {describe_error(exc)}"
    return None


def why_not_replay(letter: StoredLetter, *, topic: str, max_replays: int) -> str | None:
    """Why `letter`, a dead letter of `topic`, must not be replayed, or None when it may."""
    h = letter.headers
    if h.get(TRUNCATED) == "true":
        return f"truncated: only part of its {h.get(ORIGINAL_SIZE, '?')} bytes was kept"
    if not letter.value:
        return "no value (a tombstone or an empty record)"
    if letter.replays >= max_replays:
        return f"replayed {letter.replays} times already (limit {max_replays})"
    return still_fails(h.get(ORIGINAL_TOPIC) or topic, letter.value)


def replay_headers(letter: StoredLetter) -> list[tuple[str, bytes]]:
    """The original record's headers, and how many times it has now been replayed."""
    kept = [(k, v.encode()) for k, v in letter.headers.items() if k not in _ADDED and k != REPLAYS]
    return [*kept, (REPLAYS, str(letter.replays + 1).encode())]


@dataclass
class ReplayReport:
    replayed: list[StoredLetter] = field(default_factory=list)
    skipped: list[tuple[StoredLetter, str]] = field(default_factory=list)


async def replay(
    settings: CommonSettings,
    topic: str,
    *,
    limit: int | None = None,
    max_replays: int = MAX_REPLAYS,
    from_start: bool = False,
    quiet_ms: int = QUIET_MS,
) -> ReplayReport:
    """Re-publish the dead letters of `topic` not yet replayed (all with `from_start`) to where
    they came from, skipping what would fail again; at most `limit` of them."""
    consumer = _reader(settings, group_id=REPLAY_GROUP)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=settings.kafka_idempotent,
    )
    try:
        await consumer.start()
        await producer.start()
        records = await read_all(consumer, topics.dlq(topic), quiet_ms=quiet_ms)
        done = {} if from_start else await _committed(consumer, records)
        report = ReplayReport()
        handled: set[str] = set()  # failures replayed or skipped: their copies go silently
        progress: dict[TopicPartition, int] = {}
        futures = []
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            letter = StoredLetter.of(record)
            if record.offset < done.get(tp, 0):
                handled.add(letter.id)
                continue
            if limit is not None and len(report.replayed) >= limit:
                break
            progress[tp] = record.offset + 1
            if letter.id in handled:
                continue
            handled.add(letter.id)
            reason = why_not_replay(letter, topic=topic, max_replays=max_replays)
            if reason is None:
                target = letter.headers.get(ORIGINAL_TOPIC) or topic
                try:
                    futures.append(
                        await producer.send(
                            target, letter.value, key=letter.key, headers=replay_headers(letter)
                        )
                    )
                    report.replayed.append(letter)
                    continue
                except TOO_LARGE as exc:
                    reason = f"too large to re-publish: {exc}"
            report.skipped.append((letter, reason))
        await asyncio.gather(*futures)
        if progress:
            await consumer.commit(progress)
        return report
    finally:
        await producer.stop()
        await consumer.stop()


async def _committed(
    consumer: AIOKafkaConsumer, records: Sequence[ConsumerRecord[Any, Any]]
) -> dict[TopicPartition, int]:
    partitions = {TopicPartition(r.topic, r.partition) for r in records}
    return {tp: await consumer.committed(tp) or 0 for tp in partitions}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("topic", help="the original topic, e.g. careloop.tickets.v1")
    parser.add_argument(
        "--limit", type=int, default=None, help="list at most this many, replay at most this many"
    )
    parser.add_argument(
        "--max-replays",
        type=int,
        default=MAX_REPLAYS,
        help=f"refuse a dead letter replayed this many times already (default {MAX_REPLAYS})",
    )
    parser.add_argument(
        "--from-start",
        action="store_true",
        help="ignore what earlier replays did and consider every dead letter again",
    )
    args = parser.parse_args()
    settings = CommonSettings()
    if args.command == "list":
        letters = asyncio.run(list_dead_letters(settings, args.topic, limit=args.limit))
        for letter in letters:
            print(json.dumps(letter.row(), ensure_ascii=False))
        print(f"{len(letters)} dead letter(s) of {args.topic}", file=sys.stderr)
        return
    report = asyncio.run(
        replay(
            settings,
            args.topic,
            limit=args.limit,
            max_replays=args.max_replays,
            from_start=args.from_start,
        )
    )
    for letter, reason in report.skipped:
        print(json.dumps({"skipped": letter.row(), "reason": reason}, ensure_ascii=False))
    print(
        f"replayed {len(report.replayed)} dead letter(s) of {args.topic}, "
        f"skipped {len(report.skipped)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
