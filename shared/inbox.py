"""Idempotent batch consumer: de-duplicate, apply in one transaction, dead-letter.

Offsets are committed by FastStream only after `consume` returns, which is after the
effect's transaction committed and the batch's dead letters were acknowledged
(AckPolicy.NACK_ON_ERROR): a crash re-delivers, and what was already applied is skipped.

Skipped how depends on the event type. An event type listed in `idempotent` has a handler
whose effect is keyed by the event's own identity (a ticket inserted once per ticket id, a
delivery once per delivery key, a fact upserted to the same value): applying it twice is
applying it once, so it costs no inbox row. Every other type is claimed by event id in the
`inbox` table in the same transaction as its effect, and skipped when seen before.
"""

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared import dlq, telemetry
from shared.errors import is_transient
from shared.events import Envelope, UnknownEventType, decode
from shared.settings import CommonSettings

log = structlog.get_logger(__name__)

# A handler applies a run of events of one type inside the consumer's transaction. It may
# return an action to run once that transaction committed (counting in memory, freeing a
# Redis slot), which a rollback must never see; an async action is awaited.
AfterCommit = Callable[[], Awaitable[None] | None]
Handler = Callable[[asyncpg.Connection, list[Envelope[Any]]], Awaitable[AfterCommit | None]]


async def claim(conn: asyncpg.Connection, event_ids: Sequence[Any]) -> set[Any]:
    """Record `event_ids` as handled; returns those not seen before (one round trip)."""
    rows = await conn.fetch(
        "INSERT INTO inbox (event_id) SELECT unnest($1::uuid[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        list(event_ids),
    )
    return {r["event_id"] for r in rows}


async def forget_before(conn: asyncpg.Connection, hours: float, limit: int = 10_000) -> int:
    """Drop event ids older than `hours`, a slice at a time; returns how many went."""
    status = await conn.execute(
        """
        DELETE FROM inbox WHERE event_id IN (
            SELECT event_id FROM inbox WHERE handled_at < now() - make_interval(secs => $1)
            LIMIT $2)
        """,
        hours * 3600,
        limit,
    )
    return int(status.split()[-1])


@dataclass
class EventConsumer:
    """Applies batches of the event types in `handlers`, exactly once each, in order."""

    name: str
    handlers: Mapping[str, Handler]
    pool: Callable[[], asyncpg.Pool]
    broker: KafkaBroker
    attempts: int = 3
    # Event types whose handler is idempotent by the event's own key: no inbox row for them.
    idempotent: frozenset[str] = frozenset()

    async def consume(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Apply what decodes; dead-letter what cannot be decoded or fails for good.

        Dead letters go out only after every effect of the batch is durable, so a transient
        error (redelivery of the whole batch) never dead-letters a record twice, and a
        failure that is permanent never holds the batch: it is set aside and the rest applies.
        """
        events, letters = dlq.sort_out(
            records,
            self._decode,
            consumer=self.name,
            describe=lambda exc: f"invalid event: {dlq.describe_error(exc)}",
        )
        if events:
            letters += await self._apply_isolating(events)
        if letters:
            log.error("dead-lettering events", consumer=self.name, count=len(letters))
            await dlq.publish(self.broker, letters, service=self.name)

    def _decode(self, record: ConsumerRecord[Any, Any]) -> Envelope[Any] | None:
        try:
            return decode(record.value, only=self.handlers)
        except UnknownEventType:
            return None

    async def _apply_isolating(
        self, events: list[tuple[ConsumerRecord[Any, Any], Envelope[Any]]]
    ) -> list[dlq.DeadLetter]:
        try:
            await self._apply([e for _, e in events])
            return []
        except Exception as exc:
            if is_transient(exc):
                await asyncio.sleep(1)
                raise  # redelivered from the batch's first offset, nothing committed
            log.warning("batch failed, isolating", consumer=self.name, error=repr(exc))
        return await self._one_by_one(events)

    async def _apply(self, events: list[Envelope[Any]]) -> None:
        after: list[AfterCommit] = []
        unique = list({e.event_id: e for e in events}.values())  # a batch may repeat an event
        with telemetry.BATCH_SECONDS.labels(self.name).time():
            async with self.pool().acquire() as conn, conn.transaction():
                claimed = [e.event_id for e in unique if e.type not in self.idempotent]
                fresh = await claim(conn, claimed) if claimed else set()
                todo = [e for e in unique if e.type in self.idempotent or e.event_id in fresh]
                for event_type, run in runs(todo):
                    action = await self.handlers[event_type](conn, run)
                    if action is not None:
                        after.append(action)
        telemetry.EVENTS_SKIPPED.labels(self.name).inc(len(unique) - len(todo))
        for event_type, run in runs(todo):
            telemetry.EVENTS_APPLIED.labels(self.name, event_type).inc(len(run))
        for action in after:
            if (pending := action()) is not None:
                await pending

    async def _one_by_one(
        self, events: list[tuple[ConsumerRecord[Any, Any], Envelope[Any]]]
    ) -> list[dlq.DeadLetter]:
        """Each event alone, `attempts` times; returns the dead letters of those that failed."""
        letters: list[dlq.DeadLetter] = []
        for record, event in events:
            for attempt in range(1, self.attempts + 1):
                try:
                    await self._apply([event])
                    break
                except Exception as exc:
                    if is_transient(exc):
                        await asyncio.sleep(1)
                        raise
                    if attempt < self.attempts:
                        await asyncio.sleep(0.05 * 2**attempt)
                        continue
                    log.error(
                        "event failed for good",
                        consumer=self.name,
                        event_id=str(event.event_id),
                        correlation_id=str(event.correlation_id),
                        event_type=event.type,
                        error=repr(exc),
                    )
                    letters.append(dlq.DeadLetter(record, repr(exc), self.name))
        return letters


def batch_subscriber_options(settings: CommonSettings, group_id: str) -> dict[str, Any]:
    """Batches, from the earliest offset for a new group, committed only after the effect."""
    return {
        "group_id": settings.kafka_group_prefix + group_id,
        "batch": True,
        "max_records": settings.consumer_max_records,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        # How long an empty poll waits before FastStream polls again. A batch is handed over as
        # soon as anything arrived, so this costs no latency; shorter only wakes an idle
        # service more often (50 ms cost each service a third more idle CPU).
        "batch_timeout_ms": 1000,
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        # The records are decoded by the consumer itself, once: FastStream's own decoder
        # would parse every JSON body into a dict nobody reads.
        "decoder": raw_body,
        **settings.group_member_timeouts(),
        # How long a rebalance waits for every member to rejoin. aiokafka's default is
        # max_poll_interval_ms (5 min): a member that vanished without leaving would hold its
        # group's rebalance, and every replica that starts meanwhile, for that long.
        "rebalance_timeout_ms": 10_000,
    }


async def raw_body(message: Any) -> Any:
    """A FastStream decoder that leaves the body alone (see `batch_subscriber_options`)."""
    return message.body


Records = Sequence[ConsumerRecord[Any, Any]]


def subscribe(
    broker: KafkaBroker,
    consumer: EventConsumer,
    *,
    topic_names: Sequence[str],
    group_id: str,
    settings: CommonSettings,
    options: Mapping[str, Any] | None = None,
    arrange: Callable[[Records], Records] | None = None,
) -> None:
    """Register `consumer` as a batch subscriber that commits only after the effect.

    `options` override `batch_subscriber_options` (a consumer off the learner's path may wait
    for larger batches); `arrange` may reorder a batch's records before they are applied, for
    a consumer whose effects do not depend on their order.
    """

    @broker.subscriber(
        *topic_names,
        **{**batch_subscriber_options(settings, group_id), **(options or {})},
        title=f"{group_id}:{consumer.name}",
    )
    async def on_batch(message: KafkaMessage) -> None:
        raw = message.raw_message
        records: Records = raw if isinstance(raw, tuple) else (raw,)
        await consumer.consume(arrange(records) if arrange else records)


def runs(events: Sequence[Envelope[Any]]) -> list[tuple[str, list[Envelope[Any]]]]:
    """Consecutive events of one type, in order: each run is applied with one statement
    while per-key order across types is kept."""
    return [(t, list(group)) for t, group in itertools.groupby(events, key=lambda e: e.type)]


T = TypeVar("T")


def last_per_key(items: Sequence[T], key: Callable[[T], Any]) -> list[T]:
    """The last item per key, in order: one set-based statement may touch a row only once."""
    return list({key(i): i for i in items}.values())
