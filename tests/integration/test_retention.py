"""desk's retention (R7.3) against the real database: closed tickets are archived after the
archive period, and after the retention period their learner's personal data is pseudonymised —
name, contacts, LMS context, attachments, and contacts inside every text about the ticket
(messages, replies, notes, call-back notes, the case's notes and outcomes, remedies, the
history's reasons and notes) — once, however often the job runs, while the facts (amounts,
scores, findings, ids) stay; a ticket closed more recently is left as it is. The LMS's snapshot
of a learner no ticket names any more goes too. The scheduled loop runs the job."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from services.desk import handlers, repo, retention
from services.desk.domain import Caller
from services.desk.settings import DeskSettings
from services.incident.settings import IncidentSettings
from services.notify.settings import NotifySettings
from services.survey.settings import SurveySettings
from shared.agents import Role
from shared.db import create_pool
from shared.events import (
    Attachment,
    Channel,
    Envelope,
    Learner,
    LearnerSnapshot,
    TicketSubmitted,
    new_event,
    now,
)
from shared.inbox import EventConsumer
from shared.kafka import make_broker
from shared.migrate import migrate
from shared.retention import keep, pseudonym
from shared.settings import CommonSettings
from tests.integration.test_desk_events import record
from tests.support import RunningStack, eventually

DESK = DeskSettings(link_secret="test-secret")  # archive after 90 days, pseudonymise after 730
ANA = Caller(agent_id="ana", name="Ana", role=Role.SUPERVISOR, teams=("tech_support",))
Deliver = Callable[..., Coroutine[Any, Any, None]]


@pytest.fixture(scope="module")
async def desk_pool(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(migrate, stack.dsn, "desk")
    pool = await create_pool(stack.dsn, schema="desk")
    yield pool
    await pool.close()


@pytest.fixture
def deliver(desk_pool: asyncpg.Pool, settings: CommonSettings) -> Deliver:
    consumer = EventConsumer(
        name="desk",
        handlers=handlers.event_handlers(DESK),
        pool=lambda: desk_pool,
        broker=make_broker(settings, client_id="test-retention"),
        idempotent=frozenset(handlers.IDEMPOTENT),
    )

    async def deliver(*events: Envelope[Any]) -> None:
        await consumer.consume([record(e) for e in events])

    return deliver


def message(
    learner: Learner, text: str, *, reply_to: str | None = None
) -> Envelope[TicketSubmitted]:
    return new_event(
        TicketSubmitted(
            ticket_id=uuid.uuid4(),
            channel=Channel.EMAIL,
            learner=learner,
            subject="退款问题",
            description=text,
            language="zh",
            submitted_at=now(),
            message_id=uuid.uuid4(),
            reply_to=reply_to,
            attachments=(
                Attachment(
                    name="id-card.jpg",
                    content_type="image/jpeg",
                    size=1000,
                    url="https://files.example.com/a",
                ),
            ),
        ),
        producer="intake",
    )


async def worked_ticket(deliver: Deliver, pool: asyncpg.Pool, *, closed_days_ago: int) -> uuid.UUID:
    """A learner's ticket with a follow-up, a reply and a note, closed `closed_days_ago`."""
    tag = uuid.uuid4().hex[:6]
    learner = Learner(
        name=f"王小明{tag}",
        email=f"wxm.{tag}@example.com",
        phone="+8613800138000",
        learner_id=f"L-{tag}",
    )
    first = message(learner, f"我的退款还没到账，请打 13800138000 或发邮件 wxm.{tag}@example.com")
    await deliver(first)
    ticket_id = first.data.ticket_id
    number = await pool.fetchval("SELECT number FROM tickets WHERE ticket_id = $1", ticket_id)
    await deliver(message(learner, "补充：我的备用电话 +86 139 1234 5678", reply_to=number))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE tickets SET status = 'assigned', assignee_id = 'ana', team = 'tech_support' "
            "WHERE ticket_id = $1",
            ticket_id,
        )
        await handlers.reply(
            conn,
            ticket_id=ticket_id,
            agent=ANA,
            body=f"已给 wxm.{tag}@example.com 退款",
            links=handlers.links_for(DESK),
        )
        await handlers.add_note(conn, ticket_id=ticket_id, agent=ANA, body="学员电话 13800138000")
        await complaint_case(conn, ticket_id, email=f"wxm.{tag}@example.com")
        await conn.execute(
            "UPDATE tickets SET status = 'closed', closed_at = now() - make_interval(days => $2) "
            "WHERE ticket_id = $1",
            ticket_id,
            closed_days_ago,
        )
    return ticket_id


async def complaint_case(conn: asyncpg.Connection, ticket_id: uuid.UUID, *, email: str) -> None:
    """The ticket's closed complaint case as the case handlers leave it: notes, a finding, a
    refund approved and done, a call-back made; a transfer and the approval in the history."""
    case_id, remedy_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO cases (case_id, ticket_id, opened_by, department, finding, finding_summary,
                           status, outcome, closed_at, closed_by, callback_done_at, callback_by,
                           callback_outcome, callback_reached, callback_score)
        VALUES ($1, $2, 'ana', 'finance', 'upheld', $3, 'closed', $4, now(), 'ana', now(), 'ana',
                $5, true, 4)
        """,
        case_id,
        ticket_id,
        f"退款延误属实，学员 {email} 多次催问",
        "已退款，电话 13800138000 告知学员",
        "学员满意，留了新号码 139 1234 5678",
    )
    await conn.execute(
        "INSERT INTO case_notes (note_id, case_id, agent_id, body) VALUES ($1, $2, 'ana', $3)",
        uuid.uuid4(),
        case_id,
        f"财务确认 {email} 的订单未退款",
    )
    await conn.execute(
        """
        INSERT INTO remedies (remedy_id, case_id, ticket_id, type, amount, currency,
                              description, approvals_needed, status, proposed_by,
                              answer_system, answer_reference, answer_reason)
        VALUES ($1, $2, $3, 'refund', 199.00, 'CNY', $4, 1, 'done', 'ana', 'payments', 'R-88',
                $5)
        """,
        remedy_id,
        case_id,
        ticket_id,
        "退款到学员支付宝 13800138000",
        f"refunded to {email}",
    )
    await conn.execute(
        "INSERT INTO remedy_approvals (remedy_id, approver_id, decision, note) "
        "VALUES ($1, 'ben', 'approved', '已与学员 13800138000 核实')",
        remedy_id,
    )
    await conn.execute(
        """
        INSERT INTO ticket_callbacks (ticket_id, reason, due_at, done_at, done_by, reached,
                                      score, note, attempts)
        VALUES ($1, 'sample', now(), now(), 'ana', true, 4, '学员说可以打 13800138000 找他', 1)
        """,
        ticket_id,
    )
    await repo.add_history(
        conn,
        [
            (
                ticket_id,
                "transferred",
                "ana",
                {"from_team": "tech_support", "to_team": "finance", "reason": f"{email} 要退款"},
            ),
            (
                ticket_id,
                "remedy_approved",
                "ben",
                {"case_id": str(case_id), "remedy_id": str(remedy_id), "note": "电话 13800138000"},
            ),
        ],
    )


async def case_texts(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> dict[str, Any]:
    """The texts and facts of the ticket's case, remedies, call-back and history."""
    case = await pool.fetchrow(
        "SELECT finding, finding_summary, outcome, callback_outcome, callback_score "
        "FROM cases WHERE ticket_id = $1",
        ticket_id,
    )
    assert case is not None
    of_case = "(SELECT case_id FROM cases WHERE ticket_id = $1)"
    return {
        "case": dict(case),
        "case_notes": await pool.fetchval(
            f"SELECT array_agg(body) FROM case_notes WHERE case_id = {of_case}", ticket_id
        ),
        "remedy": dict(
            await pool.fetchrow(
                "SELECT type, amount, description, answer_reference, answer_reason "
                "FROM remedies WHERE ticket_id = $1",
                ticket_id,
            )
            or {}
        ),
        "approval": await pool.fetchval(
            "SELECT note FROM remedy_approvals WHERE remedy_id = "
            "(SELECT remedy_id FROM remedies WHERE ticket_id = $1)",
            ticket_id,
        ),
        "callback": dict(
            await pool.fetchrow(
                "SELECT score, note FROM ticket_callbacks WHERE ticket_id = $1", ticket_id
            )
            or {}
        ),
        "history": [
            (r["kind"], r["detail"])
            for r in await pool.fetch(
                "SELECT kind, detail FROM history WHERE ticket_id = $1 "
                "AND kind IN ('transferred', 'remedy_approved') ORDER BY id",
                ticket_id,
            )
        ],
    }


async def texts(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> dict[str, Any]:
    t = await pool.fetchrow("SELECT * FROM tickets WHERE ticket_id = $1", ticket_id)
    assert t is not None
    return {
        "learner": t["learner"],
        "learner_id": t["learner_id"],
        "description": t["description"],
        "attachments": t["attachments"],
        "archived": t["archived_at"] is not None,
        "pseudonymised_at": t["pseudonymised_at"],
        "messages": [
            (json.dumps(r["learner"], ensure_ascii=False), r["body"], r["attachments"])
            for r in await pool.fetch("SELECT * FROM messages WHERE ticket_id = $1", ticket_id)
        ],
        "replies": [
            r["body"]
            for r in await pool.fetch("SELECT body FROM replies WHERE ticket_id = $1", ticket_id)
        ],
        "notes": [
            r["body"]
            for r in await pool.fetch("SELECT body FROM notes WHERE ticket_id = $1", ticket_id)
        ],
        **await case_texts(pool, ticket_id),
    }


async def run(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await retention.job(DESK)(conn, now() - timedelta(days=DESK.retention_days), 10_000)


async def test_retention_archives_then_pseudonymises_closed_tickets_once(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    expired = await worked_ticket(deliver, desk_pool, closed_days_ago=800)
    archived = await worked_ticket(deliver, desk_pool, closed_days_ago=100)
    recent = await worked_ticket(deliver, desk_pool, closed_days_ago=1)
    learner_ids = [
        await desk_pool.fetchval("SELECT learner_id FROM tickets WHERE ticket_id = $1", t)
        for t in (expired, recent)
    ]
    async with desk_pool.acquire() as conn:
        await repo.upsert_learners(
            conn,
            [
                LearnerSnapshot(learner_id=i, name="王小明", updated_at=now() - timedelta(days=800))
                for i in learner_ids
            ],
        )
    archived_before = await texts(desk_pool, archived)
    recent_before = await texts(desk_pool, recent)

    await run(desk_pool)

    gone = await texts(desk_pool, expired)
    name = pseudonym(expired)
    assert gone["learner"] == {"name": name}
    assert (gone["learner_id"], gone["attachments"], gone["archived"]) == (None, [], True)
    assert gone["description"].startswith("我的退款还没到账，请打 [phone] 或发邮件 [email]")
    assert gone["messages"] == [
        (json.dumps({"name": name}, ensure_ascii=False), "补充：我的备用电话 [phone]", [])
    ]
    assert gone["replies"] == ["已给 [email] 退款"]
    assert gone["notes"] == ["学员电话 [phone]"]
    assert gone["case"] == {
        "finding": "upheld",
        "finding_summary": "退款延误属实，学员 [email] 多次催问",
        "outcome": "已退款，电话 [phone] 告知学员",
        "callback_outcome": "学员满意，留了新号码 [phone]",
        "callback_score": 4,
    }
    assert gone["case_notes"] == ["财务确认 [email] 的订单未退款"]
    assert gone["remedy"] == {
        "type": "refund",
        "amount": Decimal("199.00"),
        "description": "退款到学员支付宝 [phone]",
        "answer_reference": "R-88",
        "answer_reason": "refunded to [email]",
    }
    assert gone["approval"] == "已与学员 [phone] 核实"
    assert gone["callback"] == {"score": 4, "note": "学员说可以打 [phone] 找他"}
    (_, transfer), (_, approval) = gone["history"]
    assert transfer == {
        "from_team": "tech_support",
        "to_team": "finance",
        "reason": "[email] 要退款",
    }
    assert approval["note"] == "电话 [phone]" and uuid.UUID(approval["remedy_id"])
    assert {**await texts(desk_pool, archived), "archived": False} == archived_before
    assert (await texts(desk_pool, archived))["archived"]
    assert await texts(desk_pool, recent) == recent_before
    snapshots = await desk_pool.fetch(
        "SELECT learner_id FROM learners WHERE learner_id = ANY($1::text[])", learner_ids
    )
    assert [r["learner_id"] for r in snapshots] == learner_ids[1:]

    await run(desk_pool)

    assert await texts(desk_pool, expired) == gone
    kinds = await desk_pool.fetch(
        "SELECT kind FROM history WHERE ticket_id = $1 AND kind IN ('archived', 'pseudonymised')",
        expired,
    )
    assert sorted(k["kind"] for k in kinds) == ["archived", "pseudonymised"]


async def test_the_scheduled_loop_pseudonymises_what_falls_due(
    deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    often = DESK.model_copy(update={"retention_interval_seconds": 0.05})
    loop = asyncio.create_task(keep(desk_pool, often, retention.job(often), what="desk"))
    try:
        expired = await worked_ticket(deliver, desk_pool, closed_days_ago=731)

        async def pseudonymised() -> bool:
            return (await texts(desk_pool, expired))["pseudonymised_at"] is not None

        await eventually(pseudonymised, timeout=10, interval=0.05)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert (await texts(desk_pool, expired))["learner"] == {"name": pseudonym(expired)}


def test_every_services_retention_period_is_desks_unless_set_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELOOP_DESK_RETENTION_DAYS", "400")
    monkeypatch.setenv("CARELOOP_SURVEY_RETENTION_DAYS", "90")
    periods = {
        s.__name__: s().retention_days
        for s in (DeskSettings, NotifySettings, SurveySettings, IncidentSettings)
    }
    assert periods == {
        "DeskSettings": 400,
        "NotifySettings": 400,
        "SurveySettings": 90,
        "IncidentSettings": 400,
    }
