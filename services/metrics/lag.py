"""Consumer lag: each consumer group's committed offsets against its partitions' ends.

Read from the broker, not from the consumers, so a group whose every member is down or stuck
still shows its lag growing. One round asks the broker for the groups, the topics, every
group's committed offsets and the partitions' ends: a handful of requests, whatever the traffic.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.metrics import exporter
from services.metrics.settings import MetricsSettings
from shared.service import Context, every


@dataclass(frozen=True, slots=True)
class Lag:
    group: str
    topic: str
    partition: int
    messages: int


def lags(
    committed: Mapping[str, Mapping[TopicPartition, int]], ends: Mapping[TopicPartition, int]
) -> list[Lag]:
    """Each group's lag on each partition it has committed on (offset -1: never).

    A commit past the end (a broker that lost records it had acknowledged) is no lag, not a
    negative one; a partition whose end the broker did not say is left out.
    """
    return [
        Lag(group, tp.topic, tp.partition, max(ends[tp] - offset, 0))
        for group, offsets in sorted(committed.items())
        for tp, offset in sorted(offsets.items())
        if offset >= 0 and tp in ends
    ]


async def read_lags(bootstrap: str) -> list[Lag]:
    """One round against the broker, with clients of its own: a broker that restarted (the
    local one forgets everything) is met afresh on the next round."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="metrics-lag")
    ends_reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="metrics-lag"
    )
    # Each started inside its try: a start that fails (the broker away) or is cancelled must
    # still be stopped, or the half-started client keeps reconnecting in the background.
    try:
        await admin.start()
        try:
            await ends_reader.start()
            groups = [g[0] for g in await admin.list_consumer_groups()]
            described = await admin.describe_topics(
                [t for t in await admin.list_topics() if not t.startswith("__")]
            )
            partitions = [
                TopicPartition(t["topic"], p["partition"])
                for t in described
                if not t["error_code"]
                for p in t["partitions"]
            ]
            if not groups or not partitions:
                return []
            # Partitions named explicitly: the broker answers -1 where the group never
            # committed (Tansu cannot answer "all the group's partitions").
            committed = {
                g: {
                    tp: meta.offset
                    for tp, meta in (
                        await admin.list_consumer_group_offsets(g, partitions=partitions)
                    ).items()
                }
                for g in groups
            }
            ends = await ends_reader.end_offsets(partitions)
        finally:
            await ends_reader.stop()
    finally:
        await admin.close()
    return lags(committed, ends)


async def export_lag(ctx: Context[MetricsSettings]) -> None:
    """The lag gauges, replaced every round: a group or topic that is gone leaves no series."""

    async def step() -> bool:
        found = await read_lags(ctx.settings.kafka_bootstrap)
        exporter.CONSUMER_LAG.clear()
        for lag in found:
            exporter.CONSUMER_LAG.labels(lag.group, lag.topic, str(lag.partition)).set(lag.messages)
        return False

    await every(ctx.settings.lag_seconds, step, what="consumer lag")
