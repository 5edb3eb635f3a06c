"""SQL for routing's schema. Nothing here commits: the caller owns the transaction."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from shared import outbox
from shared.agents import AgentSeed
from shared.events import Envelope


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


class NewRow(NamedTuple):
    """A triaged ticket, as `tickets` stores it."""

    ticket_id: UUID
    channel: str
    category: str
    priority: str
    team: str
    language: str


async def insert_tickets(conn: asyncpg.Connection, rows: Sequence[NewRow]) -> dict[UUID, bool]:
    """Store the tickets not stored before; returns each one stored now, with whether its team
    has tickets waiting. A ticket stored before (a ticket.created redelivered or re-sent) is
    absent: it was placed once already. The statement also joins the transactions that may
    change load (`share_load`), which placing the new tickets does next."""
    records = await conn.fetch(
        """
        WITH fresh AS (
            INSERT INTO tickets (ticket_id, channel, category, priority, team, language)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::text[])
            ON CONFLICT (ticket_id) DO NOTHING
            RETURNING ticket_id, team
        ), load AS (
            SELECT pg_advisory_xact_lock_shared(hashtext($7))
        )
        SELECT fresh.ticket_id, EXISTS (SELECT 1 FROM queue WHERE queue.team = fresh.team) AS behind
        FROM fresh, load
        """,
        *_columns(rows, 6),
        LOAD_LOCK,
    )
    return {r["ticket_id"]: r["behind"] for r in records}


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` column lists, for `unnest` (the lists are empty when `rows` is)."""
    return [[row[i] for row in rows] for i in range(width)]


async def get_tickets(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT ticket_id, team, language, priority FROM tickets WHERE ticket_id = ANY($1::uuid[])",
        list(ticket_ids),
    )


class Waiting(NamedTuple):
    """A ticket joining its team's queue, as `queue` stores it."""

    ticket_id: UUID
    team: str
    language: str
    priority: str
    priority_rank: int
    preferred_agent: str | None
    supervisor: bool
    enqueued_at: datetime


async def record_placements(
    conn: asyncpg.Connection,
    *,
    assigned: Sequence[tuple[UUID, str]],
    queued: Sequence[Waiting],
    events: Sequence[Envelope[Any]],
) -> None:
    """Record assignments (taking the tickets off the queue), queue tickets and stage the
    events that announce it, in one statement."""
    await conn.execute(
        f"""
        WITH assigned AS (
            INSERT INTO assignments (ticket_id, agent_id)
            SELECT * FROM unnest($1::uuid[], $2::text[])
            ON CONFLICT (ticket_id) WHERE released_at IS NULL DO NOTHING
        ), dequeued AS (
            DELETE FROM queue WHERE ticket_id = ANY($1::uuid[])
        ), queued AS (
            INSERT INTO queue (ticket_id, team, language, priority, priority_rank,
                               preferred_agent, supervisor, enqueued_at)
            SELECT * FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::smallint[],
                                 $8::text[], $9::boolean[], $10::timestamptz[])
            ON CONFLICT (ticket_id) DO NOTHING
        )
        {outbox.INSERT}
        SELECT * FROM unnest($11::text[], $12::text[], $13::uuid[], $14::text[], $15::bytea[])
        """,
        *_columns(assigned, 2),
        *_columns(queued, 8),
        *_columns([outbox.row(e) for e in events], 5),
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
    """Which of `teams` have tickets waiting: one index probe per team, however long the queue.
    The statement also joins the transactions that may change load (`share_load`)."""
    rows = await conn.fetch(
        """
        SELECT t FROM unnest($1::text[]) AS t, pg_advisory_xact_lock_shared(hashtext($2))
        WHERE EXISTS (SELECT 1 FROM queue WHERE team = t)
        """,
        sorted(set(teams)),
        LOAD_LOCK,
    )
    return {r["t"] for r in rows}


async def lock_drain(conn: asyncpg.Connection) -> None:
    """Join the transactions that may change load, then wait for the drain's turn (see
    `take_queued`): one statement, the two locks always in this order, so no deadlock."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock_shared(hashtext($1)), pg_advisory_xact_lock(hashtext($2))",
        LOAD_LOCK,
        DRAIN_LOCK,
    )


async def take_queued(
    conn: asyncpg.Connection, teams: Sequence[str], per_team: int
) -> list[asyncpg.Record]:
    """The head of each team's queue, by priority then age (an index range per team).

    Per team, so that a team with no free agent never hides another team's waiting tickets.
    Drains take turns (`lock_drain`, taken before in a statement of its own so that this one
    sees what the drain before committed): were two replicas to drain at once, the second could
    hand a freed slot to a younger ticket than the first one holds.
    """
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
DRAIN_LOCK = "routing:drain"


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
