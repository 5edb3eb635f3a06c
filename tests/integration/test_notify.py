"""notify against the real broker, database and SMTP sink, with routing nowhere to be seen:
the events routing would send are published by the test."""

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from pathlib import Path

import asyncpg
import pytest

from shared.events import (
    ArticlesSuggested,
    Category,
    Channel,
    Learner,
    Priority,
    SuggestedArticle,
    TicketCreated,
    TicketRouted,
    new_event,
    now,
)
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
            "CARELOOP_NOTIFY_ARTICLES_GRACE_SECONDS": "0",  # no knowledge service here
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


async def test_events_delivered_twice_and_late_give_one_confirmation_with_the_triage(
    stack: RunningStack, settings: CommonSettings, notify: ServiceProcess
) -> None:
    """ticket.created and ticket.routed take no inbox row: applying either again, or a stale
    ticket.created after the ticket.routed, changes nothing and sends nothing more."""
    await ensure_topics(settings)
    number = f"CL-{uuid.uuid4().int % 10**9:09d}"
    ticket_id, created_at = uuid.uuid4(), now()
    created = new_event(
        TicketCreated(
            ticket_id=ticket_id,
            number=number,
            channel=Channel.WEB,
            learner=Learner(name="Li Lei", email="lilei@example.com"),
            subject="Cannot log in",
            description="The login page spins forever",
            language="en",
            created_at=created_at,
        ),
        producer="test",
    )
    routed = new_event(
        TicketRouted(
            ticket_id=ticket_id,
            channel=Channel.WEB,
            category=Category.ACCOUNT_SECURITY,
            priority=Priority.HIGH,
            team="security",
            language="en",
            first_response_due_at=created_at + timedelta(minutes=30),
            resolution_due_at=created_at + timedelta(hours=8),
            agent_id=None,
            routed_at=now(),
        ),
        producer="test",
    )
    broker = make_broker(settings, client_id="test-notify-twice")
    await broker.start()
    try:
        # Each event twice in a row (one batch may hold both), then again after the other.
        await publish_confirmed(broker, [outgoing(e) for e in (created, created, routed, routed)])

        async def confirmations() -> list[Message]:
            return [m for m in stack.mails() if m["X-Careloop-Ticket"] == number]

        [mail] = await eventually(confirmations, timeout=30)
        await publish_confirmed(broker, [outgoing(created), outgoing(routed)])
        await asyncio.sleep(4)  # twice the grace period: a second message has time to show
    finally:
        await broker.stop()
    assert len(await confirmations()) == 1
    assert "Priority: high." in mail.get_content()
    conn = await asyncpg.connect(stack.dsn)
    try:
        deliveries = await conn.fetch(
            "SELECT status FROM notify.deliveries WHERE ticket_id = $1", ticket_id
        )
        inbox = await conn.fetchval(
            "SELECT count(*) FROM notify.inbox WHERE event_id = ANY($1::uuid[])",
            [created.event_id, routed.event_id],
        )
    finally:
        await conn.close()
    assert [d["status"] for d in deliveries] == ["sent"]
    assert inbox == 0


@pytest.fixture
def notify_offering_articles(stack: RunningStack, tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "notify",
        port(22084),
        {
            **stack.env,
            "CARELOOP_NOTIFY_HTTP_PORT": str(port(22084)),
            "CARELOOP_NOTIFY_TRIAGE_GRACE_SECONDS": "1",
            "CARELOOP_NOTIFY_ARTICLES_GRACE_SECONDS": "30",
        },
        tmp_path / "notify.log",
    )
    service.start()
    try:
        service.wait_healthy()
        yield service
    finally:
        service.stop()


async def test_a_confirmation_waits_for_knowledges_articles_and_offers_them(
    stack: RunningStack, settings: CommonSettings, notify_offering_articles: ServiceProcess
) -> None:
    await ensure_topics(settings)
    number = f"CL-{uuid.uuid4().int % 10**9:09d}"
    ticket_id = uuid.uuid4()
    created = new_event(
        TicketCreated(
            ticket_id=ticket_id,
            number=number,
            channel=Channel.WEB,
            learner=Learner(name="Li Lei", email="lilei@example.com"),
            subject="When does my refund arrive?",
            description="I asked for a refund last week",
            language="en",
            created_at=now(),
        ),
        producer="test",
    )
    suggested = new_event(
        ArticlesSuggested(
            ticket_id=ticket_id,
            language="en",
            articles=(
                SuggestedArticle(
                    article_id=uuid.uuid4(),
                    title="When refunds arrive",
                    url="http://kb.example/kb/1?lang=en",
                    score=0.08,
                ),
            ),
            suggested_at=now(),
        ),
        producer="test",
    )

    async def confirmation() -> list[Message]:
        return [m for m in stack.mails() if m["X-Careloop-Ticket"] == number]

    broker = make_broker(settings, client_id="test-notify")
    await broker.start()
    try:
        await publish_confirmed(broker, [outgoing(created)])
        await asyncio.sleep(3)  # past the triage grace: only the articles are awaited
        assert await confirmation() == [], "it did not wait for knowledge's articles"
        await publish_confirmed(broker, [outgoing(suggested)])
        [mail] = await eventually(confirmation, timeout=30)
    finally:
        await broker.stop()
    text = mail.get_content()
    assert "These articles may answer your question right away:" in text
    assert "- When refunds arrive: http://kb.example/kb/1?lang=en" in text
