"""Dead-letter tools against the real broker: `list` reads the whole topic (the local broker's end
offset is the last batch's base offset + 1), each failure once; a dead letter the producer
refuses goes again smaller instead of stalling its consumer."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from faststream.kafka import KafkaBroker

from shared import dlq, topics
from shared.kafka import ensure_topics
from shared.settings import CommonSettings

QUIET_MS = 600  # the dead-letter tools' wait for more records (2 s from the command line)


@pytest.fixture
async def topic(settings: CommonSettings) -> str:
    name = f"careloop.test.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [name, topics.dlq(name)])
    return name


@pytest.fixture
async def producer(settings: CommonSettings) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await client.start()
    yield client
    await client.stop()


async def send_batch(producer: AIOKafkaProducer, topic: str, ids: list[str]) -> None:
    """One produce request: the broker stores these records as one batch on partition 0."""
    futures = [
        await producer.send(
            topics.dlq(topic),
            b"{}",
            key=i.encode(),
            partition=0,
            headers=[(dlq.DEAD_LETTER_ID, i.encode()), (dlq.ORIGINAL_TOPIC, topic.encode())],
        )
        for i in ids
    ]
    await asyncio.gather(*futures)


async def test_list_finds_every_dead_letter_including_those_after_the_last_batchs_first(
    settings: CommonSettings, topic: str, producer: AIOKafkaProducer
) -> None:
    await send_batch(producer, topic, ["a1", "a2", "a3"])
    await send_batch(producer, topic, ["b1", "b2", "b3", "b4"])

    letters = await dlq.list_dead_letters(settings, topic, quiet_ms=QUIET_MS)

    assert [letter.id for letter in letters] == ["a1", "a2", "a3", "b1", "b2", "b3", "b4"]


async def test_list_shows_a_failure_dead_lettered_twice_once(
    settings: CommonSettings, topic: str, producer: AIOKafkaProducer
) -> None:
    await send_batch(producer, topic, ["same", "other"])
    await send_batch(producer, topic, ["same"])  # a redelivery after a crash before the commit

    letters = await dlq.list_dead_letters(settings, topic, quiet_ms=QUIET_MS)

    assert [letter.id for letter in letters] == ["same", "other"]


async def test_a_dead_letter_the_producer_refuses_even_truncated_goes_as_a_stub(
    settings: CommonSettings, topic: str
) -> None:
    record: ConsumerRecord[Any, Any] = ConsumerRecord(
        topic=topic,
        partition=1,
        offset=41,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=b"x" * 100_000,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=100_000,
        headers=[(f"h{i}", b"v" * 900) for i in range(8)],
    )
    small = KafkaBroker(settings.kafka_bootstrap, acks="all", max_request_size=4096)
    await small.start()
    try:
        await dlq.publish(
            small, [dlq.DeadLetter(record, "bad", "test")], service="test"
        )  # 256 KiB and 1 KiB of value with 7 KiB of headers are both over 4 KiB
    finally:
        await small.stop()

    [letter] = await _read(settings, topics.dlq(topic))
    headers = {k: v.decode() for k, v in letter.headers}
    assert letter.value == b""
    assert headers[dlq.TRUNCATED] == "true"
    assert headers[dlq.ORIGINAL_SIZE] == "100000"
    assert (headers[dlq.ORIGINAL_PARTITION], headers[dlq.ORIGINAL_OFFSET]) == ("1", "41")
    assert not any(name.startswith("h") for name in headers)


async def _read(settings: CommonSettings, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        return await dlq.read_all(consumer, topic, quiet_ms=QUIET_MS)
    finally:
        await consumer.stop()


def _command(settings: CommonSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.dlq", *args],
        env={**os.environ, "CARELOOP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


async def test_the_list_command_prints_one_json_line_per_dead_letter(
    settings: CommonSettings, topic: str, producer: AIOKafkaProducer
) -> None:
    await send_batch(producer, topic, ["a1", "a2"])
    await send_batch(producer, topic, ["b1", "b2", "b1"])

    listed = await asyncio.to_thread(_command, settings, "list", topic)

    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [
        "a1",
        "a2",
        "b1",
        "b2",
    ]
    assert listed.stderr.strip() == f"4 dead letter(s) of {topic}"


async def test_the_replay_command_prints_each_skipped_dead_letter_with_its_reason(
    settings: CommonSettings, topic: str, producer: AIOKafkaProducer
) -> None:
    await send_batch(producer, topic, ["bad"])  # `{}` is no event

    replayed = await asyncio.to_thread(_command, settings, "replay", topic)

    [skipped] = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert skipped["skipped"]["id"] == "bad"
    assert skipped["reason"].startswith("still invalid: event_id: Field required")
    assert replayed.stderr.strip() == f"replayed 0 dead letter(s) of {topic}, skipped 1"
