"""Inspect and replay dead-letter topics: `python -m shared.dlq list|replay TOPIC`.

`replay` re-publishes each dead letter to the topic it came from and commits its progress in
the `careloop-dlq-replay` group only after Kafka acknowledged, so a replay can be stopped and
resumed. Consumers de-duplicate by event id, so replaying twice is harmless.
"""

import argparse
import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import topics
from shared.settings import CommonSettings

REPLAY_GROUP = "careloop-dlq-replay"
_DROP_ON_REPLAY = ("careloop-error", "careloop-consumer", "careloop-failed-at")


def _headers(record: Any) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in (record.headers or ())}


async def _read_to_end(consumer: AIOKafkaConsumer, topic: str, limit: int | None) -> list[Any]:
    """Records from the consumer's position (committed, else earliest) to the end seen now."""
    await consumer.topics()  # load metadata
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not tps:
        return []
    consumer.assign(tps)
    ends = await consumer.end_offsets(tps)
    records: list[Any] = []

    async def behind() -> bool:
        return any([await consumer.position(tp) < ends[tp] for tp in tps])

    while (limit is None or len(records) < limit) and await behind():
        batch = await consumer.getmany(*tps, timeout_ms=1000, max_records=500)
        for tp, recs in batch.items():
            records.extend(r for r in recs if r.offset < ends[tp])
    return records[:limit] if limit is not None else records


async def list_dead_letters(
    settings: CommonSettings, topic: str, limit: int | None
) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        records = await _read_to_end(consumer, topics.dlq(topic), limit)
    finally:
        await consumer.stop()
    return [
        {
            "partition": r.partition,
            "offset": r.offset,
            "key": r.key.decode(errors="replace") if r.key else None,
            "error": _headers(r).get("careloop-error"),
            "consumer": _headers(r).get("careloop-consumer"),
            "original": f"{_headers(r).get('careloop-original-topic')}"
            f"[{_headers(r).get('careloop-original-partition')}]"
            f"@{_headers(r).get('careloop-original-offset')}",
        }
        for r in records
    ]


async def replay(settings: CommonSettings, topic: str, limit: int | None = None) -> int:
    """Re-publish dead letters of `topic` to where they came from; returns how many."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=REPLAY_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=settings.kafka_idempotent,
    )
    await consumer.start()
    await producer.start()
    try:
        records = await _read_to_end(consumer, topics.dlq(topic), limit)
        futures = []
        for r in records:
            headers = _headers(r)
            target = headers.pop("careloop-original-topic", topic)
            kept = [(k, v.encode()) for k, v in headers.items() if k not in _DROP_ON_REPLAY]
            futures.append(await producer.send(target, r.value, key=r.key, headers=kept))
        await asyncio.gather(*futures)
        if records:
            offsets: dict[TopicPartition, int] = {}
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
            await consumer.commit(offsets)
        return len(records)
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("topic", help="the original topic, e.g. careloop.tickets.v1")
    parser.add_argument("--limit", type=int, default=None, help="at most this many")
    args = parser.parse_args()
    settings = CommonSettings()
    if args.command == "list":
        for row in asyncio.run(list_dead_letters(settings, args.topic, args.limit)):
            print(json.dumps(row, ensure_ascii=False))
    else:
        print(f"replayed {asyncio.run(replay(settings, args.topic, args.limit))} dead letter(s)")


if __name__ == "__main__":
    main()
