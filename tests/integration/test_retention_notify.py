"""notify's retention (R7.3) against the real database: once a ticket has been quiet for the
retention period, its recipient keeps only the pseudonym, and its deliveries lose the address
and name and have contacts masked in their texts, while kinds, statuses, attempts, times and
counts stay; once, however often the job runs. A ticket with a delivery still pending, one
with a recent delivery and a recent ticket are left as they are. The scheduled loop runs it."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.notify import retention
from services.notify.settings import NotifySettings
from shared.db import create_pool
from shared.events import now
from shared.migrate import migrate
from shared.retention import keep, pseudonym
from tests.support import RunningStack, eventually

NOTIFY = NotifySettings()  # pseudonymise after 730 days


@pytest.fixture(scope="module")
async def notify_pool(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(migrate, stack.dsn, "notify")
    pool = await create_pool(stack.dsn, schema="notify")
    yield pool
    await pool.close()


async def ticket(
    pool: asyncpg.Pool,
    *,
    days_ago: int,
    pending: bool = False,
    last_sent_days_ago: int | None = None,
) -> uuid.UUID:
    """A learner's ticket as notify keeps it, created `days_ago`: its recipient, the
    confirmation and a reply sent, a confirmation request that failed, an SLA warning e-mailed
    to the agent; `pending`: a progress message still waiting; `last_sent_days_ago`: the reply
    went then instead."""
    ticket_id = uuid.uuid4()
    tag = ticket_id.hex[:6]
    sent = last_sent_days_ago if last_sent_days_ago is not None else days_ago
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO recipients (ticket_id, number, name, email, phone, wechat_openid,
                                    language, subject, created_at, priority, channel,
                                    reply_channel, portal_url, agent_id, seen_at)
            VALUES ($1, $2, $3, $4, '+8613800138000', 'o-wx-' || $5, 'zh', $6,
                    now() - make_interval(days => $7), 'high', 'email', 'email',
                    'https://help.example.com/p/tok' || $5, 'ana',
                    now() - make_interval(days => $7))
            """,
            ticket_id,
            f"CL-{tag}",
            f"王小明{tag}",
            f"wxm.{tag}@example.com",
            tag,
            f"退款没到账，回电 13800138000 或 wxm.{tag}@example.com",
            days_ago,
        )
        deliveries: list[tuple[str, str, dict[str, Any], str | None, int, str | None, int]] = [
            ("confirmation", "sent", {}, None, 1, None, days_ago),
            (
                "reply",
                "sent",
                {"body": f"已退款到 wxm.{tag}@example.com", "portal_url": "https://p/1"},
                None,
                1,
                None,
                sent,
            ),
            (
                "confirm_request",
                "failed",
                {"resolution": "已电话 13800138000 说明", "confirm_url": "https://c/1"},
                None,
                8,
                f"550 mailbox wxm.{tag}@example.com unavailable",
                days_ago,
            ),
            (
                "sla_warning",
                "sent",
                {"name": "Ana", "target": "first_response", "priority": "high"},
                "ana@careloop.example",
                1,
                None,
                days_ago,
            ),
        ]
        if pending:
            deliveries.append(("assigned", "pending", {}, None, 0, None, days_ago))
        for kind, status, payload, address, attempts, error, age in deliveries:
            await conn.execute(
                """
                INSERT INTO deliveries (delivery_key, ticket_id, kind, payload, status, attempts,
                                        last_error, channel, address, created_at, sent_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, 'email', $8,
                        now() - make_interval(days => $9),
                        CASE WHEN $5 = 'sent' THEN now() - make_interval(days => $9) END)
                """,
                f"{kind}:{ticket_id}",
                ticket_id,
                kind,
                payload,
                status,
                attempts,
                error,
                address,
                age,
            )
    return ticket_id


async def kept(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> dict[str, Any]:
    recipient = await pool.fetchrow("SELECT * FROM recipients WHERE ticket_id = $1", ticket_id)
    assert recipient is not None
    rows = await pool.fetch(
        "SELECT kind, status, attempts, created_at, sent_at, payload, address, last_error "
        "FROM deliveries WHERE ticket_id = $1 ORDER BY id",
        ticket_id,
    )
    return {
        "recipient": {k: v for k, v in dict(recipient).items() if k != "pseudonymised_at"},
        "deliveries": [dict(r) for r in rows],
    }


async def run(pool: asyncpg.Pool) -> dict[str, int]:
    expired = now() - timedelta(days=NOTIFY.retention_days)
    async with pool.acquire() as conn, conn.transaction():
        return dict(await retention.run_once(conn, expired, 10_000))


async def test_a_quiet_tickets_recipient_and_deliveries_are_pseudonymised_once(
    notify_pool: asyncpg.Pool,
) -> None:
    expired = await ticket(notify_pool, days_ago=800)
    pending = await ticket(notify_pool, days_ago=800, pending=True)
    lately = await ticket(notify_pool, days_ago=800, last_sent_days_ago=5)
    recent = await ticket(notify_pool, days_ago=10)
    before = {t: await kept(notify_pool, t) for t in (expired, pending, lately, recent)}

    await run(notify_pool)

    after = await kept(notify_pool, expired)
    recipient = after["recipient"]
    assert recipient == {
        **before[expired]["recipient"],
        "name": pseudonym(expired),
        "email": None,
        "phone": None,
        "wechat_openid": None,
        "portal_url": None,
        "subject": "退款没到账，回电 [phone] 或 [email]",
    }
    _, reply, request, warning = after["deliveries"]
    facts = ("kind", "status", "attempts", "created_at", "sent_at")
    assert [[d[f] for f in facts] for d in after["deliveries"]] == [
        [d[f] for f in facts] for d in before[expired]["deliveries"]
    ]
    assert reply["payload"] == {"body": "已退款到 [email]", "portal_url": "https://p/1"}
    assert request["payload"] == {"resolution": "已电话 [phone] 说明", "confirm_url": "https://c/1"}
    assert request["last_error"] == "550 mailbox [email] unavailable"
    assert warning["payload"] == {"target": "first_response", "priority": "high"}
    assert warning["address"] is None
    for untouched in (pending, lately, recent):
        assert await kept(notify_pool, untouched) == before[untouched]

    assert await run(notify_pool) == {"recipients": 0, "deliveries": 0}
    assert await kept(notify_pool, expired) == after


async def test_the_scheduled_loop_pseudonymises_what_falls_due(notify_pool: asyncpg.Pool) -> None:
    often = NOTIFY.model_copy(update={"retention_interval_seconds": 0.05})
    loop = asyncio.create_task(keep(notify_pool, often, retention.run_once, what="notify"))
    try:
        expired = await ticket(notify_pool, days_ago=731)

        async def pseudonymised() -> bool:
            return (await kept(notify_pool, expired))["recipient"]["email"] is None

        await eventually(pseudonymised, timeout=10, interval=0.05)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert all(d["address"] is None for d in (await kept(notify_pool, expired))["deliveries"])
