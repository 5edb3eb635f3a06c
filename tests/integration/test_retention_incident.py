"""incident's retention (R7.3) against the real database: after the retention period, an
incident's linked ticket (once the incident is resolved), its learners' released notices, a
course change's notices, an answered compensation and a change decision no longer say who the
learner was, and the LMS's stale snapshot goes; kinds, counts, channels, references and times
stay; once, however often the job runs. Recent rows, and the ticket of an incident still open,
are left as they are. The scheduled loop runs the job."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.incident import retention
from services.incident.settings import IncidentSettings
from shared.db import create_pool
from shared.events import now
from shared.migrate import migrate
from shared.retention import keep, pseudonym
from tests.support import RunningStack, eventually

INCIDENT = IncidentSettings()  # pseudonymise after 730 days


@pytest.fixture(scope="module")
async def incident_pool(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(migrate, stack.dsn, "incident")
    pool = await create_pool(stack.dsn, schema="incident")
    yield pool
    await pool.close()


@dataclass(frozen=True)
class World:
    """One learner's part in an incident and a course change."""

    ticket_id: uuid.UUID
    notice_id: uuid.UUID
    change_notice_id: uuid.UUID
    remedy_id: uuid.UUID
    decision_ticket_id: uuid.UUID
    learner_id: str


async def world(pool: asyncpg.Pool, *, days_ago: int, resolved: bool = True) -> World:
    """A learner's ticket linked to an incident opened `days_ago` (and resolved then, if
    `resolved`): the notice they were sent, the coupon they got, the course change they were
    told of, course operations' decision on their own change request, their LMS snapshot."""
    w = World(
        ticket_id=uuid.uuid4(),
        notice_id=uuid.uuid4(),
        change_notice_id=uuid.uuid4(),
        remedy_id=uuid.uuid4(),
        decision_ticket_id=uuid.uuid4(),
        learner_id=f"L-{uuid.uuid4().hex[:8]}",
    )
    tag = w.learner_id.lower()
    learner = {
        "name": "王小明",
        "email": f"{tag}@example.com",
        "phone": "+8613800138000",
        "learner_id": w.learner_id,
    }
    incident_id, batch_id, change_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ago = "now() - make_interval(days => $9)"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f"""
            WITH i AS (
                INSERT INTO incidents (incident_id, number, title, severity, status, criteria,
                                       opened_by, opened_at, resolution, resolved_by,
                                       resolved_at)
                VALUES ($1, 'INC-' || $3, '直播课无法进入', 'sev2',
                        CASE WHEN $10 THEN 'resolved' ELSE 'investigating' END,
                        '{{"course_id": "C-101"}}', 'ana', {ago}, '已修复', 'ana',
                        CASE WHEN $10 THEN {ago} END)
                RETURNING incident_id
            ), t AS (
                INSERT INTO tickets (ticket_id, number, created_at, channel, course_id,
                                     category, subject, description, learner, learner_key,
                                     locale, seen_at)
                VALUES ($2, 'CL-' || $3, {ago}, 'email', 'C-101', 'tech_support',
                        '直播进不去', '我是王小明，电话 13800138000，邮箱 ' || ($4::jsonb->>'email'),
                        $4, 'id:' || $5, 'zh', {ago})
            ), k AS (
                INSERT INTO links (incident_id, ticket_id, linked_by, linked_at)
                SELECT incident_id, $2, 'incident', {ago} FROM i
            ), n AS (
                INSERT INTO notices (notice_id, incident_id, announcement_id, kind, learner_key,
                                     learner, ticket_id, channel, locale, created_at,
                                     released_at)
                SELECT $6, incident_id, gen_random_uuid(), 'announcement', 'id:' || $5, $4, $2,
                       'email', 'zh', {ago}, {ago}
                FROM i
            ), b AS (
                INSERT INTO compensations (batch_id, incident_id, kind, amount, currency,
                                           reason, requested_by, requested_at, approved_by,
                                           approved_at, learners)
                SELECT $7, incident_id, 'coupon', '20', 'CNY', '直播故障补偿', 'ana', {ago},
                       'ben', {ago}, 1
                FROM i
                RETURNING batch_id, incident_id
            )
            INSERT INTO compensation_items (remedy_id, batch_id, incident_id, kind, learner_key,
                                            learner, ticket_id, number, released_at,
                                            acknowledged_at, reference)
            SELECT $8, batch_id, incident_id, 'coupon', 'id:' || $5, $4, $2, 'CL-' || $3,
                   {ago}, {ago}, 'CP-2024-77'
            FROM b
            """,
            incident_id,
            w.ticket_id,
            tag,
            learner,
            w.learner_id,
            w.notice_id,
            batch_id,
            w.remedy_id,
            days_ago,
            resolved,
        )
        await conn.execute(
            """
            WITH c AS (
                INSERT INTO course_changes (change_id, number, course_id, kind, old, new, reason,
                                            impact, remedy, effective_at, learners, by, at)
                VALUES ($1, 'CHG-' || $2, 'C-101', 'teacher', '李老师', '张老师', '李老师离职',
                        '换老师', '可免费转班', now() - make_interval(days => $6), 1, 'ops',
                        now() - make_interval(days => $6))
            ), d AS (
                INSERT INTO change_decisions (ticket_id, decision, note, note_en, by, at)
                VALUES ($5, 'approved', '已为学员转班，确认短信发到 13800138000',
                        'moved; confirmed by SMS to 13800138000', 'ops',
                        now() - make_interval(days => $6))
            )
            INSERT INTO change_notices (notice_id, change_id, kind, learner_key, learner, channel,
                                        locale, reply_token, created_at, released_at)
            VALUES ($3, $1, 'announcement', 'id:' || $7, $4, 'sms', 'zh', $2,
                    now() - make_interval(days => $6), now() - make_interval(days => $6))
            """,
            change_id,
            tag,
            w.change_notice_id,
            learner,
            w.decision_ticket_id,
            days_ago,
            w.learner_id,
        )
        await conn.execute(
            """
            INSERT INTO learners (learner_id, name, email, phone, locale, courses, updated_at)
            VALUES ($1, '王小明', $2, '+8613800138000', 'zh', '{C-101}',
                    now() - make_interval(days => $3))
            """,
            w.learner_id,
            learner["email"],
            days_ago,
        )
    return w


async def kept(pool: asyncpg.Pool, w: World) -> dict[str, Any]:
    async def row(sql: str, key: object) -> dict[str, Any] | None:
        found = await pool.fetchrow(sql, key)
        if found is None:
            return None
        return {k: v for k, v in dict(found).items() if k != "pseudonymised_at"}

    return {
        "ticket": await row("SELECT * FROM tickets WHERE ticket_id = $1", w.ticket_id),
        "notice": await row("SELECT * FROM notices WHERE notice_id = $1", w.notice_id),
        "change_notice": await row(
            "SELECT * FROM change_notices WHERE notice_id = $1", w.change_notice_id
        ),
        "compensation": await row(
            "SELECT * FROM compensation_items WHERE remedy_id = $1", w.remedy_id
        ),
        "decision": await row(
            "SELECT * FROM change_decisions WHERE ticket_id = $1", w.decision_ticket_id
        ),
        "learner": await row("SELECT * FROM learners WHERE learner_id = $1", w.learner_id),
    }


async def run(pool: asyncpg.Pool) -> dict[str, int]:
    expired = now() - timedelta(days=INCIDENT.retention_days)
    async with pool.acquire() as conn, conn.transaction():
        return dict(await retention.run_once(conn, expired, 10_000))


async def test_a_learners_part_in_old_incidents_and_changes_is_pseudonymised_once(
    incident_pool: asyncpg.Pool,
) -> None:
    old = await world(incident_pool, days_ago=800)
    still_open = await world(incident_pool, days_ago=800, resolved=False)
    recent = await world(incident_pool, days_ago=3)
    before = {w: await kept(incident_pool, w) for w in (old, still_open, recent)}

    await run(incident_pool)

    gone = await kept(incident_pool, old)
    was = before[old]
    name = pseudonym(old.ticket_id)
    assert gone["ticket"] == {
        **was["ticket"],
        "learner": {"name": name},
        "learner_key": name,
        "description": "我是王小明，电话 [phone]，邮箱 [email]",
    }
    assert gone["notice"] == {
        **was["notice"],
        "learner": {"name": name},
        "learner_key": pseudonym(old.notice_id),
    }
    assert gone["change_notice"] == {
        **was["change_notice"],
        "learner": {"name": pseudonym(old.change_notice_id)},
        "learner_key": pseudonym(old.change_notice_id),
    }
    assert gone["compensation"] == {
        **was["compensation"],
        "learner": {"name": name},
        "learner_key": pseudonym(old.remedy_id),
    }
    assert gone["decision"] == {
        **was["decision"],
        "note": "已为学员转班，确认短信发到 [phone]",
        "note_en": "moved; confirmed by SMS to [phone]",
    }
    assert gone["learner"] is None
    assert (await kept(incident_pool, still_open))["ticket"] == before[still_open]["ticket"]
    assert await kept(incident_pool, recent) == before[recent]

    assert not any((await run(incident_pool)).values())
    assert await kept(incident_pool, old) == gone


async def test_the_scheduled_loop_pseudonymises_what_falls_due(
    incident_pool: asyncpg.Pool,
) -> None:
    often = INCIDENT.model_copy(update={"retention_interval_seconds": 0.05})
    loop = asyncio.create_task(keep(incident_pool, often, retention.run_once, what="incident"))
    try:
        old = await world(incident_pool, days_ago=731)

        async def pseudonymised() -> bool:
            return (await kept(incident_pool, old))["ticket"]["learner_key"] == pseudonym(
                old.ticket_id
            )

        await eventually(pseudonymised, timeout=10, interval=0.05)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert (await kept(incident_pool, old))["learner"] is None
