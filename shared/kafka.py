"""Kafka plumbing: the broker factory, topic creation and confirmed batch publishing."""

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from shared import topics
from shared.events import Envelope
from shared.settings import CommonSettings


def make_broker(settings: CommonSettings, *, client_id: str) -> KafkaBroker:
    """acks=all always; the idempotent producer only where the broker supports it."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_idempotent,
        linger_ms=2,
        max_batch_size=256 * 1024,
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
    )


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A serialized message ready for the wire."""

    topic: str
    key: str
    value: bytes
    headers: dict[str, str]


def headers_for(event_type: str) -> dict[str, str]:
    return {"content-type": "application/json", "careloop-type": event_type}


def outgoing(event: Envelope[Any], *, topic: str | None = None) -> OutgoingMessage:
    """`event` ready for the wire, on its own topic unless told otherwise."""
    return OutgoingMessage(
        topic or event.topic, event.key, event.to_json(), headers_for(event.type)
    )


async def publish_confirmed(broker: KafkaBroker, messages: Sequence[OutgoingMessage]) -> None:
    """Send all, then wait until the broker acknowledged every one (acks=all).

    Each send only appends to the producer's accumulator, so the batch leaves in as few
    requests as the partitions need rather than one round trip per message.
    """
    futures = [
        await broker.publish(
            m.value, m.topic, key=m.key.encode(), headers=m.headers, no_confirm=True
        )
        for m in messages
    ]
    await asyncio.gather(*futures)


def all_topics() -> list[str]:
    return [*topics.ALL, *(topics.dlq(t) for t in topics.ALL)]


@retry(
    retry=retry_if_exception_type((KafkaConnectionError, OSError)),
    wait=wait_exponential(multiplier=0.2, max=2),
    stop=stop_after_delay(60),
    reraise=True,
)
async def ensure_topics(settings: CommonSettings, names: Iterable[str] | None = None) -> None:
    """Create the topics that do not exist yet; safe to call from every replica."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in (names or all_topics()) if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(n, settings.kafka_partitions, settings.kafka_replication)
                        for n in missing
                    ]
                )
    finally:
        await admin.close()
