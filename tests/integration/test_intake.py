"""intake answers only after Kafka acknowledged, and tells the sender at once when it cannot."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local.harness import wait_for_port
from deploy.local.stack import Stack
from tests.support import RunningStack, ServiceProcess, port

KAFKA_PORT = port(22192)
INTAKE_PORT = port(22081)
SUBMISSION = {
    "name": "Li Lei",
    "email": "lilei@example.com",
    "subject": "Cannot log in",
    "description": "The login page spins forever",
}


@pytest.fixture
def own_broker(stack: RunningStack) -> Iterator[subprocess.Popen[bytes]]:
    """A broker of this test's own, so that stopping it disturbs no other test."""
    argv = Stack(var=stack.stack.var, kafka_port=KAFKA_PORT).commands()["kafka"]
    broker = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(KAFKA_PORT)
    yield broker
    broker.kill()
    broker.wait(10)


@pytest.fixture
def intake(
    stack: RunningStack, own_broker: subprocess.Popen[bytes], tmp_path: Path
) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "intake",
        INTAKE_PORT,
        {
            **stack.env,
            "CARELOOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{KAFKA_PORT}",
            "CARELOOP_INTAKE_HTTP_PORT": str(INTAKE_PORT),
            "CARELOOP_INTAKE_PUBLISH_TIMEOUT_SECONDS": "2",
        },
        tmp_path / "intake.log",
    )
    service.start()
    try:
        service.wait_healthy()
        yield service
    finally:
        service.stop()


def test_with_the_broker_gone_a_submission_gets_503_promptly_and_a_retry_hint(
    own_broker: subprocess.Popen[bytes], intake: ServiceProcess
) -> None:
    url = f"http://127.0.0.1:{INTAKE_PORT}/v1/tickets"
    assert httpx.post(url, json=SUBMISSION, timeout=10).status_code == 202

    own_broker.kill()
    own_broker.wait(10)
    started = time.monotonic()
    refused = httpx.post(url, json=SUBMISSION, timeout=30)
    elapsed = time.monotonic() - started

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert "not stored" in refused.json()["detail"]
    assert elapsed < 10, f"the sender waited {elapsed:.1f}s"
