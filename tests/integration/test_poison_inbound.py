"""Poison on careloop.inbound.v1 (a record over the producer's limit, a tombstone, an invalid
submission) is dead-lettered once by intake and never holds up the valid submissions around it."""

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from deploy.local.harness import wait_for_port
from deploy.local.stack import Stack
from shared import dlq, topics
from shared.events import InboundSubmission, decode
from shared.settings import CommonSettings
from tests.support import RunningStack, ServiceProcess, eventually, port

KAFKA_PORT = port(22194)
INTAKE_PORT = port(22088)
MiB = 1024 * 1024
QUIET_MS = 600  # the dead-letter tools' wait for more records (2 s from the command line)


@pytest.fixture(scope="module")
def own_settings(stack: RunningStack) -> Iterator[CommonSettings]:
    """A broker of this module's own, so that its dead-letter topic holds only its letters."""
    argv = Stack(var=stack.stack.var, kafka_port=KAFKA_PORT).commands()["kafka"]
    broker = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(KAFKA_PORT)
    yield CommonSettings(kafka_bootstrap=f"127.0.0.1:{KAFKA_PORT}", redis_url=stack.redis_url)
    broker.kill()
    broker.wait(10)


@pytest.fixture(scope="module")
def intake(
    stack: RunningStack, own_settings: CommonSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "intake",
        INTAKE_PORT,
        {
            **stack.env,
            "CARELOOP_KAFKA_BOOTSTRAP": own_settings.kafka_bootstrap,
            "CARELOOP_INTAKE_HTTP_PORT": str(INTAKE_PORT),
        },
        tmp_path_factory.mktemp("poison") / "intake.log",
    )
    service.start()
    try:
        service.wait_healthy()
        yield service
    finally:
        service.stop()


@pytest.fixture
async def producer(own_settings: CommonSettings) -> AsyncIterator[AIOKafkaProducer]:
    """Another service's client: it may send what careloop's own producer would refuse."""
    client = AIOKafkaProducer(
        bootstrap_servers=own_settings.kafka_bootstrap, acks="all", max_request_size=8 * MiB
    )
    await client.start()
    yield client
    await client.stop()


def submission(external_id: str, **changes: Any) -> bytes:
    message = {
        "source": "lms",
        "external_id": external_id,
        "name": "Li Lei",
        "email": "lilei@example.com",
        "subject": "Cannot open lesson 3",
        "description": "The video does not play",
    }
    return json.dumps({**message, **changes}).encode()


async def read(settings: CommonSettings, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        return await dlq.read_all(consumer, topic, quiet_ms=QUIET_MS)
    finally:
        await consumer.stop()


async def submitted_ids(settings: CommonSettings) -> set[str]:
    return {decode(r.value).data.external_id for r in await read(settings, topics.INTAKE)}


async def dead_letter_keys(settings: CommonSettings, run: str) -> list[bytes]:
    records = await read(settings, topics.dlq(topics.INBOUND))
    return sorted(r.key for r in records if r.key and r.key.startswith(run.encode()))


async def test_valid_submissions_become_tickets_and_the_poison_around_them_is_dead_lettered_once(
    own_settings: CommonSettings, intake: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    run = uuid.uuid4().hex[:8]
    valid = [f"{run}-p{p}-{when}" for when in ("before", "after") for p in range(4)]
    futures = [
        await producer.send(topics.INBOUND, submission(i), key=i.encode(), partition=p)
        for i, p in zip(valid[:4], range(4), strict=True)
    ]
    big = submission(f"{run}-big", description="长" * (MiB // 2))  # 1.5 MB in UTF-8
    futures.append(await producer.send(topics.INBOUND, big, key=f"{run}-big".encode(), partition=2))
    futures.append(
        await producer.send(topics.INBOUND, None, key=f"{run}-gone".encode(), partition=1)
    )
    futures += [
        await producer.send(topics.INBOUND, submission(i), key=i.encode(), partition=p)
        for i, p in zip(valid[4:], range(4), strict=True)
    ]
    await asyncio.gather(*futures)

    async def all_submitted() -> bool:
        return set(valid) <= await submitted_ids(own_settings)

    await eventually(all_submitted, timeout=60)
    await eventually(lambda: dead_letter_keys(own_settings, run), timeout=30)
    await asyncio.sleep(3)  # a consumer stuck on its batch would dead-letter them again here

    assert await dead_letter_keys(own_settings, run) == [
        f"{run}-big".encode(),
        f"{run}-gone".encode(),
    ]


async def test_replay_of_the_inbound_topic_skips_submissions_that_are_still_invalid(
    own_settings: CommonSettings, intake: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    run = uuid.uuid4().hex[:8]
    bad = submission(f"{run}-bad", email="not an address")
    await producer.send_and_wait(topics.INBOUND, bad, key=f"{run}-bad".encode())
    await eventually(lambda: dead_letter_keys(own_settings, run), timeout=30)

    report = await dlq.replay(own_settings, topics.INBOUND, quiet_ms=QUIET_MS)

    mine = [
        (letter.key, reason)
        for letter, reason in report.skipped
        if letter.key == f"{run}-bad".encode()
    ]
    assert [reason.split(":")[:2] for _, reason in mine] == [["still invalid", " email"]]
    assert not [letter for letter in report.replayed if letter.key == f"{run}-bad".encode()]


def _refusal(raw: bytes) -> str:
    """The error `InboundSubmission`, the shared model of the topic, gives `raw`."""
    try:
        InboundSubmission.model_validate_json(raw)
    except ValidationError as exc:
        return dlq.describe_error(exc)
    raise AssertionError("valid")


async def test_an_address_is_refused_and_normalised_as_the_shared_model_does(
    own_settings: CommonSettings, intake: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    run = uuid.uuid4().hex[:8]
    refused = {
        f"{run}-r1": "li@example.test",
        f"{run}-r2": "li@ab--cd.com",
        f"{run}-r3": "li..lei@example.com",
        f"{run}-r4": "李@例子",
        f"{run}-r5": "li@" + "b" * 64 + ".com",
    }
    accepted = {
        f"{run}-a1": ("Li.Lei+lms@Example.COM", "li.lei+lms@example.com"),
        f"{run}-a2": ("Li Lei <li@example.com>", "li@example.com"),
        f"{run}-a3": ("li@xn--bcher-kva.com", "li@bücher.com"),
        f"{run}-a4": ("李@例子.测试", "李@例子.测试"),
    }
    sent = {k: submission(k, email=v) for k, v in refused.items()}
    sent |= {k: submission(k, email=v) for k, (v, _) in accepted.items()}
    await asyncio.gather(
        *[await producer.send(topics.INBOUND, v, key=k.encode()) for k, v in sent.items()]
    )

    async def all_handled() -> bool:
        letters = await dead_letter_keys(own_settings, run)
        return len(letters) == len(refused) and set(accepted) <= await submitted_ids(own_settings)

    await eventually(all_handled, timeout=60)
    letters = await read(own_settings, topics.dlq(topics.INBOUND))
    errors = {
        r.key.decode(): dict(r.headers)[dlq.ERROR].decode()
        for r in letters
        if r.key in {k.encode() for k in refused}
    }
    tickets = {
        e.data.external_id: e.data.learner.email
        for e in (decode(r.value) for r in await read(own_settings, topics.INTAKE))
        if e.data.external_id in accepted
    }

    assert errors == {k: _refusal(sent[k]) for k in refused}
    assert all(e.startswith("email: value is not a valid email address") for e in errors.values())
    assert tickets == {k: normal for k, (_, normal) in accepted.items()}
