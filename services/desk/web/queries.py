"""The workspace's reads: the views' ticket lists and counts, and the learner card. Writes go
through desk's handlers, like the JSON API's; these only read, and only what the user may see
(an agent: tickets assigned to them or in their teams; supervisors and admins: all)."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from services.desk.web.views import AT_RISK_WITHIN, OPEN, View
from shared.agents import Role

_COLUMNS = """
    t.ticket_id, t.number, t.status, t.subject, t.category, t.priority, t.team, t.assignee_id,
    a.name AS assignee_name, t.channel, t.language, t.created_at, t.updated_at,
    t.first_response_due_at, t.resolution_due_at, t.first_responded_at, t.needs_review,
    t.triage_confidence, t.learner->>'name' AS learner_name
"""

# Who is asking, as the row `me` every query joins: their id, teams, whether they see every
# ticket, the open statuses and the at-risk horizon.
_ME = """
    WITH me AS (SELECT $1::text AS agent_id, $2::text[] AS teams, $3::bool AS sees_all,
                       $4::text[] AS open, $5::interval AS horizon)
"""
_VISIBLE = "(me.sees_all OR t.assignee_id = me.agent_id OR t.team = ANY(me.teams))"
_NEXT_DUE = """CASE WHEN t.first_responded_at IS NULL THEN t.first_response_due_at
                    ELSE t.resolution_due_at END"""
_WHERE: dict[View, str] = {
    View.MINE: "t.assignee_id = me.agent_id AND t.status = ANY(me.open)",
    View.TEAM: "t.team = ANY(me.teams) AND t.status = ANY(me.open)",
    View.REVIEW: f"t.needs_review AND t.status = ANY(me.open) AND {_VISIBLE}",
    View.RISK: f"""t.status = ANY(me.open) AND t.status <> 'pending_learner' AND {_VISIBLE}
        AND {_NEXT_DUE} < now() + me.horizon""",
    View.ALL: "me.sees_all AND t.status = ANY(me.open)",
}
_ORDER = {View.RISK: _NEXT_DUE}
_BY_PRIORITY = "array_position(ARRAY['urgent', 'high', 'medium', 'low'], t.priority), t.created_at"


def _scope(agent_id: str, role: Role, teams: Sequence[str]) -> list[Any]:
    return [agent_id, list(teams), role is not Role.AGENT, list(OPEN), AT_RISK_WITHIN]


async def view_tickets(
    conn: asyncpg.Connection,
    view: View,
    *,
    agent_id: str,
    role: Role,
    teams: Sequence[str],
    limit: int = 200,
) -> list[asyncpg.Record]:
    """A view's tickets: most urgent first (at risk: the nearest due time first)."""
    return await conn.fetch(
        f"""{_ME}
        SELECT {_COLUMNS} FROM me, tickets t LEFT JOIN agents a ON a.agent_id = t.assignee_id
        WHERE {_WHERE[view]}
        ORDER BY {_ORDER.get(view, _BY_PRIORITY)}
        LIMIT $6
        """,
        *_scope(agent_id, role, teams),
        limit,
    )


async def view_counts(
    conn: asyncpg.Connection, *, agent_id: str, role: Role, teams: Sequence[str]
) -> dict[View, int]:
    """How many tickets each view holds, in one pass over the open tickets."""
    filters = ",\n".join(f"count(*) FILTER (WHERE {_WHERE[v]}) AS {v.value}" for v in View)
    row = await conn.fetchrow(
        f"{_ME} SELECT {filters} FROM me, tickets t WHERE t.status = ANY(me.open)",
        *_scope(agent_id, role, teams),
    )
    assert row is not None
    return {v: row[v.value] for v in View}


async def visible_ticket(
    conn: asyncpg.Connection, ticket_id: UUID, *, agent_id: str, role: Role, teams: Sequence[str]
) -> asyncpg.Record | None:
    """The ticket with its assignee's name, or None when it does not exist or the user may
    not see it (the page says the same for both, so ids cannot be probed)."""
    return await conn.fetchrow(
        f"""{_ME}
        SELECT t.*, a.name AS assignee_name FROM me, tickets t
        LEFT JOIN agents a ON a.agent_id = t.assignee_id
        WHERE t.ticket_id = $6 AND {_VISIBLE}
        """,
        *_scope(agent_id, role, teams),
        ticket_id,
    )


async def earlier_tickets(
    conn: asyncpg.Connection,
    ticket: asyncpg.Record,
    *,
    agent_id: str,
    role: Role,
    teams: Sequence[str],
    limit: int = 10,
) -> list[asyncpg.Record]:
    """The learner's other tickets that the user may open, newest first: by their LMS id, else
    their e-mail. One the user may not open is left out, not listed without a link: its
    number, subject and status are already more than an agent of another team may know."""
    learner = ticket["learner"] or {}
    if not (ticket["learner_id"] or learner.get("email")):
        return []
    return await conn.fetch(
        f"""{_ME}
        SELECT t.ticket_id, t.number, t.status, t.subject, t.category, t.created_at
        FROM me, tickets t
        WHERE t.ticket_id <> $6 AND {_VISIBLE}
            AND (t.learner_id = $7
                 OR ($7::text IS NULL AND lower(t.learner->>'email') = lower($8)))
        ORDER BY t.created_at DESC LIMIT $9
        """,
        *_scope(agent_id, role, teams),
        ticket["ticket_id"],
        ticket["learner_id"],
        learner.get("email"),
        limit,
    )


async def tickets_brief(conn: asyncpg.Connection, ids: Sequence[UUID]) -> list[asyncpg.Record]:
    """Who a batch of tickets concerns, for the live feed: number, subject, assignee, team."""
    return await conn.fetch(
        "SELECT ticket_id, number, subject, assignee_id, team FROM tickets "
        "WHERE ticket_id = ANY($1::uuid[])",
        list(ids),
    )


async def agents_load(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every active person who works tickets: their open tickets (working and pending the
    learner) from desk's tickets, and routing's last word on their presence and load against
    capacity (`agent_status`, from agent.status; NULL columns when routing never said)."""
    return await conn.fetch(
        """
        SELECT a.agent_id, a.name, a.role, a.teams,
               count(t.ticket_id) FILTER (WHERE t.status IN ('assigned', 'reopened')) AS working,
               count(t.ticket_id) FILTER (WHERE t.status = 'pending_learner') AS pending,
               s.online, s.available, s.on_shift, s.capacity, s.used, s.load, s.last_seen_at,
               s.skills, s.at AS status_at
        FROM agents a
        LEFT JOIN agent_status s ON s.agent_id = a.agent_id
        LEFT JOIN tickets t ON t.assignee_id = a.agent_id
            AND t.status IN ('assigned', 'reopened', 'pending_learner')
        WHERE a.active AND a.role <> 'admin'
        GROUP BY a.agent_id, s.agent_id ORDER BY a.name
        """
    )


async def queue_depth(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Tickets waiting for an agent, by team and priority."""
    return await conn.fetch(
        """
        SELECT team, priority, count(*) AS depth FROM tickets
        WHERE status = 'queued' GROUP BY team, priority ORDER BY team
        """
    )
