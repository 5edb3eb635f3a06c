"""notify against the real broker, database and SMTP sink, with routing nowhere to be seen."""

import uuid
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from shared.events import Channel, Learner, TicketCreated, new_event, now
from shared.kafka import ensure_topics, make_broker, outgoing, publish_confirmed
from shared.settings import CommonSettings
from tests.support import RunningStack, ServiceProcess, eventually, port


@pytest.fixture
def notify(stack: RunningStack, tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "notify",
        port(22084),
        {
            **stack.env,
            "CARELOOP_NOTIFY_HTTP_PORT": str(port(22084)),
            "CARELOOP_NOTIFY_TRIAGE_GRACE_SECONDS": "2",
        },
        tmp_path / "notify.log",
    )
    service.start()
    try:
        service.wait_healthy()
        yield service
    finally:
        service.stop()


async def test_without_triage_the_confirmation_goes_after_the_grace_period_with_the_general_promise(
    stack: RunningStack, settings: CommonSettings, notify: ServiceProcess
) -> None:
    await ensure_topics(settings)
    number = f"CL-{uuid.uuid4().int % 10**9:09d}"
    created = new_event(
        TicketCreated(
            ticket_id=uuid.uuid4(),
            number=number,
            channel=Channel.WEB,
            learner=Learner(name="Li Lei", email="lilei@example.com"),
            subject="Cannot log in",
            description="The login page spins forever",
            language="en",
            created_at=now(),
        ),
        producer="test",
    )
    broker = make_broker(settings, client_id="test-notify")
    await broker.start()
    try:
        sent_at = now()
        await publish_confirmed(
            broker,
            [outgoing(created)],
        )

        async def confirmation() -> list[Message]:
            return [m for m in stack.mails() if m["X-Careloop-Ticket"] == number]

        [mail] = await eventually(confirmation, timeout=30)
    finally:
        await broker.stop()
    assert (now() - sent_at).total_seconds() >= 2, "it did not wait for triage"
    text = mail.get_content()
    assert "within 8 hours." in text and "Priority" not in text
