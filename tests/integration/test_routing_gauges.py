"""routing's queue and presence gauges read from routing's real tables (a copy of its schema's
tables in a throwaway schema, so no other test's agents are touched) and shown on /metrics."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.routing import gauges
from shared.db import create_pool
from shared.events import now
from shared.migrate import migrate
from tests.support import RunningStack

NEVER_ON_SHIFT: dict[str, object] = {"timezone": "Asia/Shanghai", "weekly": {}}


@pytest.fixture
async def routing_tables(stack: RunningStack, schema: str) -> AsyncIterator[asyncpg.Pool]:
    """`schema` with empty copies of routing's agents, teams and queue tables."""
    await asyncio.to_thread(migrate, stack.service_dsn("routing"), "routing")
    conn = await asyncpg.connect(stack.dsn)
    try:
        for table in ("agents", "teams", "queue"):
            await conn.execute(
                f"CREATE TABLE {schema}.{table} (LIKE routing.{table} INCLUDING ALL)"
            )
    finally:
        await conn.close()
    pool = await create_pool(stack.dsn, schema=schema)
    yield pool
    await pool.close()


async def add_agent(
    conn: asyncpg.Connection,
    agent_id: str,
    *,
    teams: list[str],
    online: bool = True,
    capacity: int = 5,
    seen_ago: timedelta = timedelta(0),
    schedule: dict[str, object] | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO agents (agent_id, name, role, teams, languages, capacity, online,
                            token_sha256, schedule, last_seen_at)
        VALUES ($1, $1, 'agent', $2, '{zh}', $3, $4, $1 || '-token', $5, now() - $6::interval)
        """,
        agent_id,
        teams,
        capacity,
        online,
        schedule,
        seen_ago,
    )


async def queue(conn: asyncpg.Connection, team: str, priority: str, count: int) -> None:
    await conn.execute(
        """
        INSERT INTO queue (ticket_id, team, language, priority, priority_rank)
        SELECT gen_random_uuid(), $1, 'zh', $2, 0 FROM generate_series(1, $3)
        """,
        team,
        priority,
        count,
    )


def exported(name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The samples of `name` as /metrics shows them, by the values of `labels`."""
    return {
        tuple(s.labels[label] for label in labels): s.value
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        if family.name == name
        for s in family.samples
    }


async def test_queue_depth_and_agents_online_per_team(routing_tables: asyncpg.Pool) -> None:
    async with routing_tables.acquire() as conn:
        await conn.execute(
            "INSERT INTO teams (team, name) VALUES ('finance', 'Finance'), "
            "('tech_support', 'Tech'), ('customer_service', 'Service')"
        )
        await add_agent(conn, "ann", teams=["finance"])
        await add_agent(conn, "bob", teams=["finance"], online=False)
        await add_agent(conn, "cat", teams=["tech_support"], schedule=NEVER_ON_SHIFT)
        await add_agent(conn, "dan", teams=["tech_support"], seen_ago=timedelta(hours=2))
        await add_agent(conn, "eve", teams=["tech_support", "finance"], capacity=0)
        await queue(conn, "tech_support", "high", 2)
        await queue(conn, "tech_support", "low", 1)
        await queue(conn, "finance", "urgent", 1)

        depths, online = await gauges.read(conn, presence_ttl=timedelta(minutes=15), at=now())
    gauges.publish(depths, online)

    assert exported("careloop_routing_agents_online", "team") == {
        ("finance",): 1,
        ("tech_support",): 0,
        ("customer_service",): 0,
    }
    depth = exported("careloop_routing_queue_depth", "team", "priority")
    assert depth[("tech_support", "high")] == 2
    assert depth[("tech_support", "low")] == 1
    assert depth[("finance", "urgent")] == 1
    assert depth[("customer_service", "urgent")] == 0
    assert sum(depth.values()) == 4 and len(depth) == 3 * 4


async def test_without_a_presence_ttl_an_agent_seen_long_ago_is_still_online(
    routing_tables: asyncpg.Pool,
) -> None:
    async with routing_tables.acquire() as conn:
        await conn.execute("INSERT INTO teams (team, name) VALUES ('finance', 'Finance')")
        await add_agent(conn, "dan", teams=["finance"], seen_ago=timedelta(days=3))

        _, online = await gauges.read(conn, presence_ttl=None, at=now())

    assert online == {"finance": 1}
