"""SQL for routing's schema. Nothing here commits: the caller owns the transaction."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from services.routing.domain import PRIORITY_RANK
from shared import outbox
from shared.agents import AgentSeed
from shared.events import Envelope, Priority

AGENT_COLUMNS = (
    "agent_id, name, email, role, teams, languages, capacity, online, senior, categories, "
    "channels, course_lines, priorities, vip, schedule, last_seen_at, active"
)


async def has_agents(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM agents)"))


async def seed(conn: asyncpg.Connection, agents: Sequence[AgentSeed], teams: Sequence[str]) -> None:
    """Seed the agents, only into an empty table (the admin API owns them from then on), and
    add the teams not known yet. Twins starting together may both find it empty: the
    conflicts make the second one's rows no-ops."""
    await conn.executemany(
        "INSERT INTO teams (team, name) VALUES ($1, $1) ON CONFLICT DO NOTHING",
        [(t,) for t in sorted({*teams, *(t for a in agents for t in a.teams)})],
    )
    if not agents or await has_agents(conn):
        return
    await conn.executemany(
        """
        INSERT INTO agents (agent_id, name, role, teams, languages, capacity, online, token_sha256,
                            senior, categories, channels, course_lines, priorities, vip, schedule)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        ON CONFLICT DO NOTHING
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
                a.senior,
                list(a.categories),
                list(a.channels),
                list(a.course_lines),
                list(a.priorities),
                a.vip,
                None if a.schedule is None else a.schedule.model_dump(mode="json"),
            )
            for a in agents
        ],
    )


async def load_agents(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {AGENT_COLUMNS} FROM agents ORDER BY agent_id")


async def get_agent(conn: asyncpg.Connection, agent_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = $1 FOR UPDATE", agent_id
    )


async def follow_people(conn: asyncpg.Connection, agent_ids: Sequence[str]) -> None:
    """desk's people (as routing's read model of them now holds them) as routing's agents. A
    new person is an agent with default skills (both languages, capacity 5), offline until
    they go online; a known one takes desk's name, e-mail, role and teams; a disabled one goes
    offline and is given nothing new. Skills, capacity and schedules stay routing's (its admin
    API); a team desk names that routing did not know is added."""
    await conn.execute(
        """
        WITH p AS (SELECT * FROM people WHERE agent_id = ANY($1::text[])),
        new_teams AS (
            INSERT INTO teams (team, name) SELECT DISTINCT t, t FROM p, unnest(p.teams) AS t
            ON CONFLICT DO NOTHING
        )
        INSERT INTO agents AS a (agent_id, name, email, role, teams, languages, capacity, online,
                                 active)
        SELECT agent_id, name, email, role, teams, '{zh,en}', 5, false, active FROM p
        ON CONFLICT (agent_id) DO UPDATE
        SET name = excluded.name, email = excluded.email, role = excluded.role,
            teams = excluded.teams, active = excluded.active, online = a.online AND excluded.active
        """,
        list(agent_ids),
    )


async def set_online(
    conn: asyncpg.Connection, agent_id: str, online: bool
) -> asyncpg.Record | None:
    """Going online (or offline) counts as being seen; the agent's row after it, or None."""
    return await conn.fetchrow(
        f"UPDATE agents SET online = $2, last_seen_at = now() WHERE agent_id = $1 "
        f"RETURNING {AGENT_COLUMNS}",
        agent_id,
        online,
    )


async def heartbeat(conn: asyncpg.Connection, agent_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"UPDATE agents SET last_seen_at = now() WHERE agent_id = $1 RETURNING {AGENT_COLUMNS}",
        agent_id,
    )


async def seen(conn: asyncpg.Connection, latest: Mapping[str, datetime]) -> list[asyncpg.Record]:
    """Agents desk saw at these instants: `last_seen_at` moves forward only, and never past
    now. The rows that moved, after it."""
    return await conn.fetch(
        f"""
        UPDATE agents a SET last_seen_at = least(s.at, now())
        FROM unnest($1::text[], $2::timestamptz[]) AS s(agent_id, at)
        WHERE a.agent_id = s.agent_id AND least(s.at, now()) > a.last_seen_at
        RETURNING {", ".join("a." + c for c in AGENT_COLUMNS.split(", "))}
        """,
        list(latest),
        list(latest.values()),
    )


async def update_agent(
    conn: asyncpg.Connection, agent_id: str, fields: dict[str, Any]
) -> asyncpg.Record:
    """Change the named columns of an agent (their names come from the API's model)."""
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(fields))
    return await conn.fetchrow(
        f"UPDATE agents SET {sets} WHERE agent_id = $1 RETURNING {AGENT_COLUMNS}",
        agent_id,
        *fields.values(),
    )


async def team_schedules(conn: asyncpg.Connection, teams: Sequence[str]) -> list[asyncpg.Record]:
    """Each member of `teams` with their teams and schedule, locked until the transaction ends,
    so that two changes cannot each leave the other to keep a team's hours."""
    return await conn.fetch(
        "SELECT agent_id, teams, schedule FROM agents WHERE teams && $1::text[] "
        "ORDER BY agent_id FOR UPDATE",
        list(teams),
    )


async def list_teams(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT t.team, t.name, count(a.agent_id) AS agents
        FROM teams t LEFT JOIN agents a ON t.team = ANY(a.teams)
        GROUP BY t.team, t.name ORDER BY t.team
        """
    )


async def upsert_team(conn: asyncpg.Connection, team: str, name: str) -> asyncpg.Record | None:
    """The team's row before the change (None: it is new)."""
    before = await conn.fetchrow("SELECT team, name FROM teams WHERE team = $1 FOR UPDATE", team)
    await conn.execute(
        "INSERT INTO teams (team, name) VALUES ($1, $2) "
        "ON CONFLICT (team) DO UPDATE SET name = excluded.name",
        team,
        name,
    )
    return before


async def channel_weights(conn: asyncpg.Connection) -> dict[str, float]:
    rows = await conn.fetch("SELECT channel, weight FROM channel_weights ORDER BY channel")
    return {r["channel"]: float(r["weight"]) for r in rows}


async def set_channel_weights(conn: asyncpg.Connection, weights: dict[str, float]) -> None:
    await conn.executemany(
        "INSERT INTO channel_weights (channel, weight) VALUES ($1, $2) "
        "ON CONFLICT (channel) DO UPDATE SET weight = excluded.weight",
        list(weights.items()),
    )


async def audit(
    conn: asyncpg.Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    before: Any,
    after: Any,
) -> None:
    await conn.execute(
        "INSERT INTO audit (actor, action, subject, before, after) VALUES ($1, $2, $3, $4, $5)",
        actor,
        action,
        subject,
        before,
        after,
    )


async def audit_log(
    conn: asyncpg.Connection, *, subject: str | None, before_id: int | None, limit: int
) -> list[asyncpg.Record]:
    """Newest first; `before_id` pages back."""
    return await conn.fetch(
        """
        SELECT id, at, actor, action, subject, before, after FROM audit
        WHERE ($1::text IS NULL OR subject = $1) AND ($2::bigint IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3
        """,
        subject,
        before_id,
        limit,
    )


class NewRow(NamedTuple):
    """A triaged ticket, as `tickets` stores it."""

    ticket_id: UUID
    channel: str
    category: str
    priority: str
    team: str
    language: str
    course_id: str | None
    vip: bool


async def insert_tickets(
    conn: asyncpg.Connection, rows: Sequence[NewRow]
) -> dict[UUID, asyncpg.Record]:
    """Store the tickets not stored before; returns each one stored now, with whether its team
    has tickets waiting (`behind`) and the incident that linked it before it arrived
    (`held_for`, `status_url`; None mostly). A ticket stored before (a ticket.created
    redelivered or re-sent) is absent: it was placed once already. The statement also joins
    the transactions that may change load (`share_load`), which placing the new tickets does
    next."""
    records = await conn.fetch(
        """
        WITH fresh AS (
            INSERT INTO tickets (ticket_id, channel, category, priority, team, language, course_id,
                                 vip)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::text[], $7::text[], $8::boolean[])
            ON CONFLICT (ticket_id) DO NOTHING
            RETURNING ticket_id, team
        ), load AS (
            SELECT pg_advisory_xact_lock_shared(hashtext($9))
        )
        SELECT fresh.ticket_id, EXISTS (SELECT 1 FROM queue WHERE queue.team = fresh.team) AS behind,
               h.incident_id AS held_for, h.status_url
        FROM fresh CROSS JOIN load LEFT JOIN held h ON h.ticket_id = fresh.ticket_id
        """,
        *_columns(rows, 8),
        LOAD_LOCK,
    )
    return {r["ticket_id"]: r for r in records}


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` column lists, for `unnest` (the lists are empty when `rows` is)."""
    return [[row[i] for row in rows] for i in range(width)]


async def get_tickets(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT ticket_id, team, language, priority, channel, category, course_id, vip "
        "FROM tickets WHERE ticket_id = ANY($1::uuid[])",
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
    assigned: Sequence[tuple[UUID, str, int]],
    queued: Sequence[Waiting],
    events: Sequence[Envelope[Any]],
) -> None:
    """Record assignments (taking the tickets off the queue), queue tickets and stage the
    events that announce it, in one statement."""
    await conn.execute(
        f"""
        WITH assigned AS (
            INSERT INTO assignments (ticket_id, agent_id, weight_milli)
            SELECT * FROM unnest($1::uuid[], $2::text[], $16::int[])
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
        [w for _, _, w in assigned],
    )


async def set_triage(
    conn: asyncpg.Connection, changes: Mapping[UUID, tuple[str, str, str]]
) -> None:
    """A person's triage: each ticket's (category, priority, team); a waiting one keeps its
    place in its queue at the new priority's rank."""
    rows = [(t, c, p, team, PRIORITY_RANK[Priority(p)]) for t, (c, p, team) in changes.items()]
    await conn.execute(
        """
        WITH changed AS (
            UPDATE tickets t SET category = r.category, priority = r.priority, team = r.team
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::smallint[])
                AS r(ticket_id, category, priority, team, rank)
            WHERE t.ticket_id = r.ticket_id
            RETURNING r.ticket_id, r.priority, r.rank
        )
        UPDATE queue q SET priority = c.priority, priority_rank = c.rank
        FROM changed c WHERE q.ticket_id = c.ticket_id
        """,
        *_columns(rows, 5),
    )


async def set_teams(conn: asyncpg.Connection, teams: Mapping[UUID, str]) -> None:
    """Tickets a person handed to another team are that team's from now on."""
    await conn.execute(
        "UPDATE tickets t SET team = r.team FROM unnest($1::uuid[], $2::text[]) AS r(ticket_id, team) "
        "WHERE t.ticket_id = r.ticket_id",
        list(teams),
        list(teams.values()),
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
               q.enqueued_at, k.channel, k.category, k.course_id, coalesce(k.vip, false) AS vip
        FROM unnest($1::text[]) AS t(team)
        CROSS JOIN LATERAL (
            SELECT * FROM queue WHERE queue.team = t.team
            ORDER BY priority_rank, enqueued_at LIMIT $2
        ) q
        LEFT JOIN tickets k ON k.ticket_id = q.ticket_id
        ORDER BY q.priority_rank, q.enqueued_at
        """,
        sorted(set(teams)),
        per_team,
    )


async def active_assignments(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT ticket_id, agent_id, weight_milli FROM assignments WHERE released_at IS NULL"
    )


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


# ---- open incidents and the tickets held for them -------------------------------------------


class Held(NamedTuple):
    """A ticket held for an open incident (no agent's capacity, no queue, no SLA timers)."""

    ticket_id: UUID
    incident_id: UUID
    status_url: str
    linked: bool
    agent_id: str | None  # who held it before: preferred when it is placed again


async def open_incidents(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """The most severe first, then the oldest: the order `shared.incidents.first_match` takes."""
    return await conn.fetch(
        "SELECT incident_id, number, severity, criteria, status_url FROM incidents "
        "ORDER BY severity, opened_at, incident_id"
    )


async def open_incident(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """(incident_id, number, severity, criteria, status_url, opened_at) rows; a redelivery
    changes nothing."""
    await conn.executemany(
        "INSERT INTO incidents (incident_id, number, severity, criteria, status_url, opened_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (incident_id) DO NOTHING",
        rows,
    )


async def update_incidents(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """(incident_id, severity, criteria) of open incidents (a resolved one stays away)."""
    await conn.executemany(
        "UPDATE incidents SET severity = $2, criteria = $3 WHERE incident_id = $1", rows
    )


async def close_incidents(
    conn: asyncpg.Connection, incident_ids: Sequence[UUID]
) -> list[asyncpg.Record]:
    """Forget resolved incidents; returns the tickets held for them that the incident never
    linked (no longer held: the caller places them). Linked ones stay held until desk
    resolves them."""
    return await conn.fetch(
        """
        WITH closed AS (DELETE FROM incidents WHERE incident_id = ANY($1::uuid[]))
        DELETE FROM held WHERE incident_id = ANY($1::uuid[]) AND NOT linked
        RETURNING ticket_id, incident_id, agent_id
        """,
        list(incident_ids),
    )


async def hold(
    conn: asyncpg.Connection, held: Sequence[Held], events: Sequence[Envelope[Any]]
) -> None:
    """Hold tickets (a link marks one held already as linked, keeping who held it first) and
    stage the events that announce it, in one statement."""
    await conn.execute(
        f"""
        WITH held_now AS (
            INSERT INTO held AS h (ticket_id, incident_id, status_url, linked, agent_id)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::boolean[], $5::text[])
            ON CONFLICT (ticket_id) DO UPDATE
            SET incident_id = excluded.incident_id, status_url = excluded.status_url,
                linked = h.linked OR excluded.linked,
                agent_id = coalesce(h.agent_id, excluded.agent_id)
        )
        {outbox.INSERT}
        SELECT * FROM unnest($6::text[], $7::text[], $8::uuid[], $9::text[], $10::bytea[])
        """,
        *_columns(held, 5),
        *_columns([outbox.row(e) for e in events], 5),
    )


async def held_among(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> set[UUID]:
    rows = await conn.fetch(
        "SELECT ticket_id FROM held WHERE ticket_id = ANY($1::uuid[])", list(ticket_ids)
    )
    return {r["ticket_id"] for r in rows}


async def unhold(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    """Tickets no longer held; returns those that were (with who held them before)."""
    return await conn.fetch(
        "DELETE FROM held WHERE ticket_id = ANY($1::uuid[]) RETURNING ticket_id, agent_id",
        list(ticket_ids),
    )
