"""Another service publishes to careloop.inbound.v1 with either Python client the README shows:
confluent-kafka (librdkafka) and aiokafka; each submission becomes a ticket the learner is told of."""

import asyncio
import json
import re
import uuid
from email.message import Message
from typing import Any

from aiokafka import AIOKafkaProducer
from confluent_kafka import KafkaError, Producer
from confluent_kafka import Message as KafkaMessage

from shared import topics
from tests.e2e.conftest import Platform
from tests.support import eventually


def submission(client: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    return {
        "source": "lms",
        "external_id": f"{client}-{tag}",
        "name": "Li Lei",
        "email": f"{client}-{tag}@example.com",
        "subject": f"Cannot open lesson 3 ({client} {tag})",
        "description": "The video does not play",
    }


async def confirmation_to(platform: Platform, address: str) -> Message:
    """The confirmation e-mail the learner at `address` got: proof that the ticket exists."""

    async def arrived() -> list[Message]:
        return [
            m
            for m in platform.stack.mails()
            if m["To"] == address and m["X-Careloop-Kind"] == "confirmation"
        ]

    [mail] = await eventually(arrived, timeout=60, interval=0.5)
    return mail


def publish_with_librdkafka(bootstrap: str, message: dict[str, Any]) -> list[KafkaError | None]:
    """What the README shows for confluent-kafka; returns each delivery's error (None: acked)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    outcomes: list[KafkaError | None] = []

    def delivered(err: KafkaError | None, _: KafkaMessage) -> None:
        outcomes.append(err)

    producer.produce(
        topics.INBOUND,
        json.dumps(message).encode(),
        key=message["external_id"].encode(),
        on_delivery=delivered,
    )
    assert producer.flush(30) == 0, "not every message was delivered within 30 s"
    return outcomes


async def test_a_submission_published_with_confluent_kafka_becomes_a_ticket(
    platform: Platform,
) -> None:
    message = submission("rdkafka")
    outcomes = await asyncio.to_thread(publish_with_librdkafka, platform.stack.bootstrap, message)
    assert outcomes == [None]
    mail = await confirmation_to(platform, message["email"])
    assert re.fullmatch(r"CL-\d{6}", mail["X-Careloop-Ticket"])


async def test_a_submission_published_with_aiokafka_becomes_a_ticket(platform: Platform) -> None:
    message = submission("aiokafka")
    producer = AIOKafkaProducer(bootstrap_servers=platform.stack.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.INBOUND, json.dumps(message).encode(), key=message["external_id"].encode()
        )
    finally:
        await producer.stop()
    mail = await confirmation_to(platform, message["email"])
    assert re.fullmatch(r"CL-\d{6}", mail["X-Careloop-Ticket"])
