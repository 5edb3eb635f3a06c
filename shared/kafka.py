"""Kafka plumbing: the broker factory, topic creation and confirmed batch publishing."""

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from shared import telemetry, topics
from shared.cancel import raise_if_cancelled
from shared.events import Envelope
from shared.settings import CommonSettings

log = structlog.get_logger(__name__)


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


TYPE_HEADER = "careloop-type"


def headers_for(event_type: str) -> dict[str, str]:
    return {"content-type": "application/json", TYPE_HEADER: event_type}


def type_of(record: ConsumerRecord[Any, Any]) -> str:
    """The event type its producer wrote in the record's header; "" when it has none."""
    for name, value in record.headers or ():
        if name == TYPE_HEADER:
            return bytes(value).decode(errors="replace")
    return ""


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
    topic_configs = {}
    if settings.kafka_min_insync_replicas is not None:
        topic_configs["min.insync.replicas"] = str(settings.kafka_min_insync_replicas)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [n for n in (names or all_topics()) if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            n,
                            settings.kafka_partitions,
                            settings.kafka_replication,
                            topic_configs=topic_configs,
                        )
                        for n in missing
                    ]
                )
    finally:
        await admin.close()


class BrokerWatch:
    """Notices a lost broker or lost topics and brings the service back without a restart.

    Every `interval` seconds it asks the broker for its topics and the end offset of every
    partition (two small requests, no consumer group). It counts the broker as lost when it
    cannot be reached, when a careloop topic is missing (it is recreated at once, before a
    producer's auto-creation can leave it with the wrong partitions) or when an end offset went
    backwards: a broker that came back without its data (the local Tansu keeps it in memory)
    while the service was looking away. Once the broker answers again, every subscriber is
    stopped and started: it rejoins its group and resumes from the committed offsets, or from
    the earliest on a broker that lost them. Nothing is lost on the consumers' side by the
    restart: offsets are committed only after the effect, and the inbox skips redeliveries.
    """

    def __init__(
        self, *, broker: KafkaBroker, settings: CommonSettings, service: str, interval: float
    ) -> None:
        self._broker = broker
        self._settings = settings
        self._service = service
        self._interval = interval
        self._probe: AIOKafkaConsumer | None = None
        self._ends: dict[TopicPartition, int] = {}
        self._lost = False
        self.reachable = False
        self.topics_ready = False

    @property
    def healthy(self) -> bool:
        return self.reachable and self.topics_ready and not self._lost

    async def run(self) -> None:
        try:
            while True:
                await self.check()
                raise_if_cancelled()
                await asyncio.sleep(self._interval)
        finally:
            await self._close_probe()

    async def check(self) -> None:
        """One look at the broker; recovers the subscribers when it came back."""
        try:
            async with asyncio.timeout(max(self._interval, 5)):
                await self._look()
        except (KafkaError, OSError, TimeoutError) as exc:
            if self.reachable:
                log.warning("kafka unreachable", error=repr(exc))
            self.reachable = False
            self._lost = True
            await self._close_probe()
            return
        self.reachable = True
        if self._lost:
            await self._recover()

    async def _look(self) -> None:
        probe = await self._open_probe()
        required = all_topics()
        existing = await probe.topics()
        missing = [t for t in required if t not in existing]
        if missing:
            self.topics_ready = False
            log.warning("kafka topics missing; recreating them", topics=missing)
            self._lost = True
            await ensure_topics(self._settings, missing)
            existing = await probe.topics()
        self.topics_ready = all(t in existing for t in required)
        tps = [TopicPartition(t, p) for t in required for p in probe.partitions_for_topic(t) or ()]
        ends = await probe.end_offsets(tps)
        behind = {
            f"{tp.topic}[{tp.partition}]": f"{self._ends[tp]}->{end}"
            for tp, end in ends.items()
            if end < self._ends.get(tp, 0)
        }
        if behind:
            log.warning("kafka came back without its data; rejoining from the start", ends=behind)
            self._lost = True
        self._ends = ends

    async def _recover(self) -> None:
        for subscriber in self._broker.subscribers:
            await subscriber.stop()
        for subscriber in self._broker.subscribers:
            await subscriber.start()
        self._lost = False
        telemetry.BROKER_RECOVERIES.labels(self._service).inc()
        log.info("kafka reachable again; consumers rejoined")

    async def _open_probe(self) -> AIOKafkaConsumer:
        if self._probe is None:
            probe = AIOKafkaConsumer(
                bootstrap_servers=self._settings.kafka_bootstrap,
                enable_auto_commit=False,
                client_id=f"{self._service}-watch",
            )
            try:
                await probe.start()
            except BaseException:  # failed or cancelled half-way: stop what did start
                await probe.stop()
                raise
            self._probe = probe
        return self._probe

    async def _close_probe(self) -> None:
        if self._probe is not None:
            probe, self._probe = self._probe, None
            with contextlib.suppress(Exception):
                await probe.stop()
