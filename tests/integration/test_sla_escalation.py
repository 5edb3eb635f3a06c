"""SLA events where they land: desk records them in the ticket's history and pauses and
resumes tickets pending on the learner; notify e-mails the agents they name."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.desk import handlers
from services.desk.domain import Caller, Conflict
from shared.agents import Role
from shared.events import (
    Channel,
    Envelope,
    Learner,
    Priority,
    SlaBreached,
    SlaRecipient,
    SlaTarget,
    SlaWarning,
    TicketCreated,
    TicketSubmitted,
    new_event,
    now,
)
from shared.kafka import ensure_topics, make_broker, outgoing, publish_confirmed
from shared.settings import CommonSettings
from tests.integration import test_desk_events as desk_events
from tests.integration.inprocess import groups_from_now
from tests.integration.test_desk_events import Deliver, history, routed, submitted, ticket
from tests.support import RunningStack, ServiceProcess, eventually, port

# desk's consumer, as test_desk_events hands it records.
desk_pool = desk_events.desk_pool
deliver = desk_events.deliver

ANA = Caller(agent_id="ana", name="Ana", role=Role.AGENT)
SUE = SlaRecipient(agent_id="sue", name="Sue", role="supervisor", email="sue@example.com")


def breached(
    ticket_id: uuid.UUID, *, level: int = 1, to: tuple[SlaRecipient, ...] = (SUE,)
) -> Envelope[SlaBreached]:
    return new_event(
        SlaBreached(
            ticket_id=ticket_id,
            target=SlaTarget.FIRST_RESPONSE,
            level=level,
            due_at=now() - timedelta(minutes=1),
            priority=Priority.HIGH,
            team="tech_support",
            assignee_id="ana",
            recipients=to,
            breached_at=now(),
        ),
        producer="routing",
    )


async def test_a_breach_is_recorded_once_in_the_tickets_history(
    desk_pool: asyncpg.Pool, deliver: Deliver
) -> None:
    new = submitted()
    t = new.data.ticket_id
    await deliver(new, routed(t, "ana"))
    breach = breached(t)
    await deliver(breach)
    await deliver(breach)  # delivered again after a crash: the inbox skips it
    sla = [(k, d) for k, d in await history(desk_pool, t) if k.startswith("sla_")]
    assert len(sla) == 1
    kind, detail = sla[0]
    assert kind == "sla_breached"
    assert detail["level"] == 1 and detail["recipients"] == ["sue"]
    assert detail["target"] == "first_response" and detail["assignee_id"] == "ana"


async def test_pending_on_the_learner_until_the_learner_writes(
    desk_pool: asyncpg.Pool, deliver: Deliver
) -> None:
    new = submitted()
    t = new.data.ticket_id
    await deliver(new, routed(t, "ana"))
    async with desk_pool.acquire() as conn, conn.transaction():
        await handlers.set_pending(conn, ticket_id=t, agent=ANA)
    assert (await ticket(desk_pool, t))["status"] == "pending_learner"
    with pytest.raises(Conflict):
        async with desk_pool.acquire() as conn, conn.transaction():
            await handlers.set_pending(conn, ticket_id=t, agent=ANA)

    number = (await ticket(desk_pool, t))["number"]
    answer = new_event(
        TicketSubmitted(
            ticket_id=uuid.uuid4(),
            channel=Channel.EMAIL,
            learner=Learner(name="Li Lei", email="lilei@example.com"),
            subject=f"Re: [{number}] Cannot log in",
            description="Here is the screenshot you asked for",
            language="en",
            submitted_at=now(),
            message_id=uuid.uuid4(),
            reply_to=number,
        ),
        producer="intake",
    )
    await deliver(answer)
    assert (await ticket(desk_pool, t))["status"] == "assigned"
    kinds = [k for k, _ in await history(desk_pool, t)]
    assert kinds[-3:] == ["pending_learner", "message_received", "resumed"]
    staged = await desk_pool.fetch(
        "SELECT event_type FROM outbox WHERE key = $1 ORDER BY id", str(t)
    )
    types = [r["event_type"] for r in staged]
    assert types.index("ticket.pending_learner") < types.index("ticket.resumed")


@pytest.fixture
async def notify(
    stack: RunningStack, settings: CommonSettings, tmp_path: Path
) -> AsyncIterator[ServiceProcess]:
    # In a group of its own that has "handled" everything before: it reads only this test's
    # events, not every earlier test's (replaying those took over two minutes).
    await ensure_topics(settings)
    groups = await groups_from_now(stack.bootstrap, "notify")
    service = ServiceProcess(
        "notify",
        port(22086),
        {
            **stack.env,
            **groups,
            "CARELOOP_NOTIFY_HTTP_PORT": str(port(22086)),
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


async def test_notify_emails_the_warning_to_the_assignee_and_the_escalation_to_the_supervisor(
    stack: RunningStack, settings: CommonSettings, notify: ServiceProcess
) -> None:
    await ensure_topics(settings)
    ticket_id = uuid.uuid4()
    number = f"CL-{uuid.uuid4().int % 10**9:09d}"
    created = new_event(
        TicketCreated(
            ticket_id=ticket_id,
            number=number,
            channel=Channel.HOTLINE,  # a learner careloop cannot e-mail: agents still hear
            learner=Learner(name="Li Lei"),
            subject="Cannot log in",
            description="The login page spins forever",
            language="zh",
            created_at=now(),
        ),
        producer="desk",
    )
    ana = SlaRecipient(agent_id="ana", name="Ana", role="agent", email="ana@example.com")
    nobody = SlaRecipient(agent_id="ben", role="agent")  # no address: no e-mail
    warning = new_event(
        SlaWarning(
            ticket_id=ticket_id,
            target=SlaTarget.FIRST_RESPONSE,
            due_at=now() + timedelta(minutes=5),
            priority=Priority.HIGH,
            team="tech_support",
            assignee_id="ana",
            recipients=(ana, nobody),
            share=0.75,
            warned_at=now(),
        ),
        producer="routing",
    )
    breach = breached(ticket_id)
    broker = make_broker(settings, client_id="test-sla-notify")
    await broker.start()
    try:
        await publish_confirmed(broker, [outgoing(e) for e in (created, warning, breach, breach)])

        async def mails() -> list[Message]:
            found = [m for m in stack.mails() if m["X-Careloop-Ticket"] == number]
            return found if len(found) >= 2 else []

        got: list[Any] = await eventually(mails, timeout=30)
        await asyncio.sleep(2)  # a duplicate would be in the sink by now
    finally:
        await broker.stop()
    got = [m for m in stack.mails() if m["X-Careloop-Ticket"] == number]
    by_kind = {m["X-Careloop-Kind"]: m for m in got}
    assert len(got) == 2 and set(by_kind) == {"sla_warning", "sla_breached"}
    assert by_kind["sla_warning"]["To"] == "ana@example.com"
    assert by_kind["sla_breached"]["To"] == "sue@example.com"
    body = by_kind["sla_breached"].get_content()
    assert "Sue" in body and "首次响应" in body and "主管" in body
