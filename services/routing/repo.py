"""SQL for routing's schema. Nothing here commits: the caller owns the transaction."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from shared.agents import AgentSeed


async def upsert_agents(conn: asyncpg.Connection, agents: Sequence[AgentSeed]) -> None:
    """Skills and capacity follow the seed; presence survives restarts."""
    await conn.executemany(
        """
        INSERT INTO agents (agent_id, name, role, teams, languages, capacity, online, token_sha256)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (agent_id) DO UPDATE SET name = excluded.name, role = excluded.role,
            teams = excluded.teams, languages = excluded.languages, capacity = excluded.capacity,
            token_sha256 = excluded.token_sha256
        """,
        [
            (
                a.id,
                a.name,
                a.role.value,
                list(a.teams),
                list(a.languages),
                a.capacity,
                a.online,
                a.token_sha256,
            )
            for a in agents
        ],
    )


async def load_agents(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT agent_id, name, role, teams, languages, capacity, online FROM agents ORDER BY agent_id"
    )


async def agent_by_token(conn: asyncpg.Connection, token_sha256: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT agent_id, role FROM agents WHERE token_sha256 = $1", token_sha256
    )


async def set_online(conn: asyncpg.Connection, agent_id: str, online: bool) -> bool:
    status = await conn.execute(
        "UPDATE agents SET online = $2 WHERE agent_id = $1", agent_id, online
    )
    return status.endswith(" 1")


async def insert_tickets(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(
        """
        INSERT INTO tickets (ticket_id, channel, category, priority, team, language)
        SELECT r.ticket_id, r.channel, r.category, r.priority, r.team, r.language
        FROM jsonb_to_recordset($1::jsonb) AS r(ticket_id uuid, channel text, category text,
             priority text, team text, language text)
        ON CONFLICT (ticket_id) DO NOTHING
        """,
        list(rows),
    )


async def get_tickets(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT ticket_id, team, language, priority FROM tickets WHERE ticket_id = ANY($1::uuid[])",
        list(ticket_ids),
    )


async def record_assignments(conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str]]) -> None:
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO assignments (ticket_id, agent_id)
        SELECT * FROM unnest($1::uuid[], $2::text[])
        ON CONFLICT (ticket_id) WHERE released_at IS NULL DO NOTHING
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
    )
    await conn.execute("DELETE FROM queue WHERE ticket_id = ANY($1::uuid[])", [r[0] for r in rows])


async def enqueue(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO queue (ticket_id, team, language, priority, priority_rank, preferred_agent,
                           supervisor, enqueued_at)
        SELECT r.ticket_id, r.team, r.language, r.priority, r.priority_rank, r.preferred_agent,
               r.supervisor, r.enqueued_at
        FROM jsonb_to_recordset($1::jsonb) AS r(ticket_id uuid, team text, language text,
             priority text, priority_rank smallint, preferred_agent text, supervisor boolean,
             enqueued_at timestamptz)
        ON CONFLICT (ticket_id) DO NOTHING
        """,
        list(rows),
    )


async def release(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> None:
    await conn.execute(
        "UPDATE assignments SET released_at = now() "
        "WHERE ticket_id = ANY($1::uuid[]) AND released_at IS NULL",
        list(ticket_ids),
    )
    await conn.execute("DELETE FROM queue WHERE ticket_id = ANY($1::uuid[])", list(ticket_ids))


async def holders(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> dict[UUID, str]:
    """Who holds each of `ticket_ids` now (tickets without an active assignment are absent)."""
    rows = await conn.fetch(
        "SELECT ticket_id, agent_id FROM assignments "
        "WHERE ticket_id = ANY($1::uuid[]) AND released_at IS NULL",
        list(ticket_ids),
    )
    return {r["ticket_id"]: r["agent_id"] for r in rows}


async def queue_for_supervisors(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> None:
    """Waiting tickets among `ticket_ids` now wait for a supervisor."""
    await conn.execute(
        "UPDATE queue SET supervisor = true, preferred_agent = NULL "
        "WHERE ticket_id = ANY($1::uuid[])",
        list(ticket_ids),
    )


async def teams_waiting(conn: asyncpg.Connection, teams: Sequence[str]) -> set[str]:
    """Which of `teams` have tickets waiting: one index probe per team, however long the queue."""
    rows = await conn.fetch(
        "SELECT t FROM unnest($1::text[]) AS t WHERE EXISTS (SELECT 1 FROM queue WHERE team = t)",
        sorted(set(teams)),
    )
    return {r["t"] for r in rows}


async def take_queued(
    conn: asyncpg.Connection, teams: Sequence[str], per_team: int
) -> list[asyncpg.Record]:
    """The head of each team's queue, by priority then age (an index range per team).

    Per team, so that a team with no free agent never hides another team's waiting tickets.
    Drains take turns (a transaction-scoped advisory lock): were two replicas to drain at once,
    the second could hand a freed slot to a younger ticket than the first one holds.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('routing:drain'))")
    return await conn.fetch(
        """
        SELECT q.ticket_id, q.team, q.language, q.priority, q.preferred_agent, q.supervisor,
               q.enqueued_at
        FROM unnest($1::text[]) AS t(team)
        CROSS JOIN LATERAL (
            SELECT * FROM queue WHERE queue.team = t.team
            ORDER BY priority_rank, enqueued_at LIMIT $2
        ) q
        ORDER BY q.priority_rank, q.enqueued_at
        """,
        sorted(set(teams)),
        per_team,
    )


async def active_assignments(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT ticket_id, agent_id FROM assignments WHERE released_at IS NULL")


# Every transaction that changes Redis load or the assignments holds this lock shared until it
# ends; a rebuild or reconciliation holds it exclusively, so it sees no transaction in flight.
LOAD_LOCK = "routing:load"


async def share_load(conn: asyncpg.Connection) -> None:
    """Join the transactions that may change load (taken before any Redis change)."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared(hashtext($1))", LOAD_LOCK)


async def hold_load(conn: asyncpg.Connection, *, timeout_seconds: float) -> None:
    """Wait for every load-changing transaction in flight to end and keep new ones out until
    this transaction ends; gives up (LockNotAvailableError) after `timeout_seconds`."""
    await conn.execute(f"SET LOCAL lock_timeout = {int(timeout_seconds * 1000)}")
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", LOAD_LOCK)


async def queue_depth(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT team, count(*) AS depth FROM queue GROUP BY team")
