"""A service's consumer of careloop.learners.v1, the LMS's learner snapshots (bare JSON, key =
learner_id), for every service that keeps them (desk to match tickets to learners, incident to
reach everyone enrolled in a course).

A newer snapshot replaces the held one and an older one changes nothing (the service's `upsert`
says how many it stored), so a redelivery is harmless and needs no inbox; what is not a valid
snapshot goes to the dead-letter topic naming the field that is wrong.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from shared import dlq, topics
from shared.events import LearnerSnapshot, decode_snapshot
from shared.inbox import batch_subscriber_options
from shared.service import Context

log = structlog.get_logger(__name__)
Upsert = Callable[[asyncpg.Connection, Sequence[LearnerSnapshot]], Awaitable[int]]


def _snapshot(record: ConsumerRecord[Any, Any]) -> LearnerSnapshot:
    return decode_snapshot(record.value)


def consume_snapshots(ctx: Context[Any], *, upsert: Upsert, counted: Counter) -> None:
    """Subscribe the service's group `<service>-learners`; `counted` (label `outcome`: stored,
    stale, rejected) is the service's own series."""
    group = f"{ctx.service}-learners"

    async def store(snapshots: list[LearnerSnapshot]) -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            stored = await upsert(conn, snapshots)
        counted.labels("stored").inc(stored)
        counted.labels("stale").inc(len(snapshots) - stored)

    @ctx.broker.subscriber(
        topics.LEARNERS,
        **batch_subscriber_options(ctx.settings, group),
        title=f"{ctx.service}:learners",
    )
    async def on_learners(message: KafkaMessage) -> None:
        raw = message.raw_message
        records: tuple[ConsumerRecord[Any, Any], ...] = raw if isinstance(raw, tuple) else (raw,)
        snapshots, rejected = dlq.sort_out(records, _snapshot, consumer=group)
        rejected += await dlq.apply_each(snapshots, store, consumer=group)
        if rejected:
            counted.labels("rejected").inc(len(rejected))
            log.warning("learner snapshots rejected", count=len(rejected))
            await dlq.publish(ctx.broker, rejected, service=ctx.service)
