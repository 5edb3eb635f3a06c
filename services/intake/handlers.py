"""intake's Kafka edge (the careloop.inbound.v1 consumer) and what every channel shares:
publishing accepted tickets once Kafka acknowledged them."""

import asyncio
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from faststream.kafka.annotations import KafkaMessage
from redis.exceptions import RedisError

from services.intake.domain import normalise
from services.intake.settings import IntakeSettings
from shared import dlq, topics
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import (
    Channel,
    Envelope,
    InboundSubmission,
    TicketSubmitted,
    new_event,
    now,
)
from shared.inbox import batch_subscriber_options
from shared.kafka import outgoing, publish_confirmed
from shared.service import Context

log = structlog.get_logger(__name__)
PRODUCER = "intake"
# Redis only saves work here: unavailable, slow or refusing, intake goes on without it.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (*TRANSIENT_DRIVER_ERRORS, RedisError)
# A batch's keys in one command: a pipeline of one SET each cost intake more CPU (one command
# built and one reply parsed per ticket) than validating the tickets did.
_REMEMBER = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, '1', 'EX', ARGV[1])
end
return #KEYS
"""


def _seen_key(ticket: TicketSubmitted) -> str:
    """A learner message is seen by its own id (a conversation's messages share a ticket id),
    a submission by its ticket's."""
    return f"careloop:intake:seen:{ticket.message_id or ticket.ticket_id}"


async def accept(ctx: Context[IntakeSettings], tickets: list[TicketSubmitted]) -> list[bool]:
    """Publish the tickets not seen before and wait for Kafka's ack; returns which were duplicates.

    Redis only saves a re-publish: desk creates a ticket once per id whatever intake sends.
    Raises a transient error when Kafka did not acknowledge in time: the outcome is then
    unknown (the broker may still have written them), and publishing the same ids again is safe.
    """
    timeout = ctx.settings.redis_timeout_seconds
    keys = [_seen_key(t) for t in tickets]
    try:
        async with asyncio.timeout(timeout):
            seen = [v is not None for v in await ctx.redis.mget(keys)]
    except REDIS_UNAVAILABLE as exc:
        log.warning("dedupe window unavailable", error=repr(exc))
        seen = [False] * len(tickets)
    fresh = [t for t, s in zip(tickets, seen, strict=True) if not s]
    events: list[Envelope[Any]] = [new_event(t, producer=PRODUCER) for t in fresh]
    async with asyncio.timeout(ctx.settings.publish_timeout_seconds):
        await publish_confirmed(ctx.broker, [outgoing(e) for e in events])
    # A fresh uuid7 can never recur; a named ticket or message can.
    named = [t for t in fresh if t.message_id is not None or t.ticket_id.version == 5]
    if named:
        try:
            async with asyncio.timeout(timeout):
                await _remember(ctx, named)
        except REDIS_UNAVAILABLE as exc:
            log.warning("dedupe window not updated", error=repr(exc))
    return seen


async def _remember(ctx: Context[IntakeSettings], tickets: list[TicketSubmitted]) -> None:
    keys = [_seen_key(t) for t in tickets]
    await ctx.redis.eval(_REMEMBER, len(keys), *keys, ctx.settings.dedupe_ttl_seconds)


def subscribe(ctx: Context[IntakeSettings]) -> None:
    """Consume careloop.inbound.v1. What is not a valid submission (a tombstone, bytes that are
    not JSON, a field out of bounds, a message of any size) goes to its dead-letter topic with
    the reason, once, and never holds up the rest of the batch."""

    def ticket(record: ConsumerRecord[Any, Any]) -> TicketSubmitted:
        submission = InboundSubmission.model_validate_json(record.value)
        return normalise(
            submission,
            channel=submission.channel or Channel.SERVICE,
            received_at=submission.received_at or now(),
        )

    @ctx.broker.subscriber(
        topics.INBOUND,
        **batch_subscriber_options(ctx.settings, "intake"),
        title="intake:inbound",
    )
    async def on_inbound(message: KafkaMessage) -> None:
        raw = message.raw_message
        records: tuple[ConsumerRecord[Any, Any], ...] = raw if isinstance(raw, tuple) else (raw,)
        tickets, rejected = dlq.sort_out(records, ticket, consumer="intake")
        rejected += await dlq.apply_each(tickets, lambda t: accept(ctx, t), consumer="intake")
        if rejected:  # only once the tickets were acknowledged: a redelivery never repeats them
            log.warning("inbound submissions rejected", count=len(rejected))
            await dlq.publish(ctx.broker, rejected, service="intake")
