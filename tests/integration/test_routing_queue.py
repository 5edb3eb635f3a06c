"""routing's queue against real PostgreSQL: every team's head is served, most urgent first."""

import asyncio
import uuid
from datetime import timedelta

import asyncpg

from services.routing import repo
from shared.events import now
from shared.migrate import migrate
from tests.support import RunningStack


async def test_a_team_without_free_agents_does_not_hide_another_teams_queue(
    stack: RunningStack,
) -> None:
    await asyncio.to_thread(migrate, stack.dsn, "routing")
    conn = await asyncpg.connect(stack.dsn, server_settings={"search_path": "routing"})
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("DELETE FROM queue")
        start = now() - timedelta(hours=1)
        rows = [
            (uuid.uuid4(), "tech_support", "medium", 2, start + timedelta(seconds=i))
            for i in range(150)
        ]
        rows += [
            (uuid.uuid4(), "finance", "medium", 2, start + timedelta(minutes=30, seconds=i))
            for i in range(5)
        ]
        urgent = (uuid.uuid4(), "finance", "urgent", 0, start + timedelta(minutes=50))
        rows.append(urgent)
        await conn.executemany(
            "INSERT INTO queue (ticket_id, team, language, priority, priority_rank, enqueued_at) "
            "VALUES ($1, $2, 'en', $3, $4, $5)",
            rows,
        )
        head = await repo.take_queued(conn, ["finance", "tech_support"], per_team=100)
    finally:
        await tx.rollback()
        await conn.close()

    teams = [r["team"] for r in head]
    assert teams.count("tech_support") == 100 and teams.count("finance") == 6
    assert head[0]["ticket_id"] == urgent[0], "the urgent ticket comes first, however young"
    tech = [r["enqueued_at"] for r in head if r["team"] == "tech_support"]
    assert tech == sorted(tech) and tech[0] == start, "within a priority, oldest first"
