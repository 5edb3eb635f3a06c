"""Consumer lag on metrics' /metrics, read from the real broker: a group's committed offsets
against each partition's end, updated as messages arrive, and nothing for partitions the
group never committed on."""

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from services.metrics.app import create_app
from services.metrics.settings import MetricsSettings
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from tests.integration.inprocess import environment, served, service_env
from tests.support import RunningStack, eventually, fresh_groups


@pytest.fixture
async def metrics(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        **service_env(stack),
        **fresh_groups(),
        "CARELOOP_METRICS_LAG_SECONDS": "0.3",
        "CARELOOP_REPORTS_SCHEDULE": "",
    }
    with environment(env):
        async with served(lambda: create_app(MetricsSettings()), "metrics") as client:
            yield client


async def lag_of(client: httpx.AsyncClient, group: str, topic: str) -> dict[int, float]:
    """The lag by partition /metrics shows for `group` on `topic`."""
    text = (await client.get("/metrics")).text
    return {
        int(s.labels["partition"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "careloop_consumer_lag"
        for s in family.samples
        if s.labels["group"] == group and s.labels["topic"] == topic
    }


async def produce(bootstrap: str, topic: str, partition: int, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"m{i}".encode(), partition=partition)
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def test_lag_per_partition_follows_commits_and_new_messages(
    settings: CommonSettings, metrics: httpx.AsyncClient
) -> None:
    topic = f"careloop.test.lag.{uuid.uuid4().hex[:8]}"
    group = f"lag-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic])
    bootstrap = settings.kafka_bootstrap
    first, second = TopicPartition(topic, 0), TopicPartition(topic, 1)
    await produce(bootstrap, topic, 0, 7)
    await produce(bootstrap, topic, 1, 3)
    await commit(bootstrap, group, {first: 2, second: 3})

    async def shows(expected: dict[int, float]) -> bool:
        return await lag_of(metrics, group, topic) == expected

    await eventually(lambda: shows({0: 5, 1: 0}), timeout=30)

    await produce(bootstrap, topic, 1, 4)
    await commit(bootstrap, group, {first: 7})
    await eventually(lambda: shows({0: 0, 1: 4}), timeout=30)
