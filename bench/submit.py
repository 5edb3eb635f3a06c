"""The bench's load: submissions as careloop.inbound.v1 carries them, and a producer cheap
enough that 100,000 of them are not held back by it."""

import asyncio
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from services.intake.domain import ticket_id_for
from shared.events import Channel

SOURCE = "bench"
SUBJECTS = (
    ("The video player freezes", "Playback stops in the browser after a minute"),
    ("申请退款", "课程重复扣费，请退款"),
    ("Change my class time", "I need to reschedule my lessons to the evening"),
    ("账号异常登录", "有陌生设备登录我的账号，密码被改了"),
)


@dataclass(frozen=True, slots=True)
class Submission:
    """One inbound message and the ticket careloop will make of it.

    `ticket` is the ticket id as careloop's events carry it in their Kafka key, so watchers
    match records to submissions without parsing them."""

    ticket: bytes
    key: bytes
    value: bytes


def submission(run: str, i: int) -> Submission:
    external_id = f"{SOURCE}-{run}-{i}"
    subject, description = SUBJECTS[i % len(SUBJECTS)]
    message = {
        "source": SOURCE,
        "external_id": external_id,
        "name": f"Learner {i}",
        "email": f"learner{i}.{run}@example.com",
        "subject": subject,
        "description": description,
    }
    ticket = ticket_id_for(channel=Channel.SERVICE, source=SOURCE, external_id=external_id)
    return Submission(str(ticket).encode(), external_id.encode(), json.dumps(message).encode())


class Submitter:
    """Publishes records in one batch per partition with acks=all, instead of one `send` per
    record: for the bench's load and for the anchors' sources alike.

    Records go to the partition Kafka's default partitioner picks for their key, as any
    producer's would."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=1024 * 1024
        )
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}

    async def start(self, topic: str) -> None:
        """Connect, and learn `topic`'s partitions now rather than on the first send."""
        await self._producer.start()
        self._partitions[topic] = sorted(await self._producer.partitions_for(topic))

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(
        self, topic: str, records: Sequence[tuple[bytes, bytes]]
    ) -> list[asyncio.Future[object]]:
        """Hand `records` (key, value) to the producer; the futures resolve when acknowledged."""
        partitions = self._partitions[topic]
        by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for key, value in records:
            by_partition[self._partitioner(key, partitions, partitions)].append((key, value))
        futures = []
        for partition, items in by_partition.items():
            batch = self._producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    futures.append(
                        await self._producer.send_batch(batch, topic, partition=partition)
                    )
                    batch = self._producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await self._producer.send_batch(batch, topic, partition=partition))
        return futures
