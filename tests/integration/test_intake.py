"""intake answers only after Kafka acknowledged, and tells the sender at once when it cannot."""

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local.harness import wait_for_port
from deploy.local.stack import Stack
from tests.support import RunningStack, ServiceProcess, port

# Bases no other test uses, even shifted by a multiple of 100 (as concurrent runs are).
KAFKA_PORT = port(22197)
INTAKE_PORT = port(22089)
URL = f"http://127.0.0.1:{INTAKE_PORT}/v1/tickets"


def _submission() -> dict[str, Any]:
    return {
        "name": "Li Lei",
        "email": f"li-{uuid.uuid4().hex[:8]}@example.com",
        "subject": "Cannot log in",
        "description": f"The login page spins forever ({uuid.uuid4()})",
    }


@dataclass
class Broker:
    """A broker of this test's own, so that stopping it disturbs no other test."""

    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(KAFKA_PORT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def own_broker(stack: RunningStack) -> Iterator[Broker]:
    broker = Broker(Stack(var=stack.stack.var, kafka_port=KAFKA_PORT).commands()["kafka"])
    broker.start()
    yield broker
    if broker.proc is not None and broker.proc.poll() is None:
        broker.kill()


@pytest.fixture
def intake(stack: RunningStack, own_broker: Broker, tmp_path: Path) -> Iterator[ServiceProcess]:
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
    own_broker: Broker, intake: ServiceProcess
) -> None:
    assert httpx.post(URL, json=_submission(), timeout=10).status_code == 202

    own_broker.kill()
    started = time.monotonic()
    refused = httpx.post(URL, json=_submission(), timeout=30)
    elapsed = time.monotonic() - started

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert elapsed < 10, f"the sender waited {elapsed:.1f}s"


def test_a_503_says_the_outcome_is_unknown_and_a_retry_is_safe(
    own_broker: Broker, intake: ServiceProcess
) -> None:
    own_broker.kill()
    refused = httpx.post(URL, json=_submission(), timeout=30)

    assert refused.status_code == 503
    body = refused.json()
    assert body["outcome"] == "unknown" and body["retry_safe"] is True
    assert "outcome is unknown" in body["detail"] and "Retrying is safe" in body["detail"]


def test_a_keyless_retry_after_a_503_is_the_same_ticket(
    own_broker: Broker, intake: ServiceProcess
) -> None:
    submission = _submission()
    own_broker.kill()
    refused = httpx.post(URL, json=submission, timeout=30)
    assert refused.status_code == 503

    own_broker.start()
    retried = _post_until_accepted(submission)

    assert retried.json()["ticket_id"] == refused.json()["ticket_id"]


def _post_until_accepted(submission: dict[str, Any], *, timeout: float = 60) -> httpx.Response:
    """Retry as a client would (honouring Retry-After) until intake accepts."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.post(URL, json=submission, timeout=30)
        if answer.status_code == 202 or time.monotonic() > deadline:
            assert answer.status_code == 202, answer.text
            return answer
        time.sleep(float(answer.headers.get("Retry-After", "1")))
