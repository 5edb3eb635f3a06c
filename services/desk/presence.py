"""Agents' presence between desk and routing (issue 9): routing's status of each agent, kept
for the supervisor board, and desk's word that an agent is using the workspace.

routing owns presence, capacity, schedules and live load. It announces each agent's state
(`agent.status` on careloop.routing.v1) when it changes and every ~30 s; desk keeps the newest
per agent in `agent_status`, so the board reads its own table, never routing. In turn, while
an agent has the workspace open (a page load, or the live feed held open), desk publishes
`agent.seen` at most once a minute per agent; routing moves their last-seen time forward, so
their presence does not lapse under CARELOOP_ROUTING_PRESENCE_TTL_SECONDS. A supervisor's
change on the board (online/offline, capacity; an admin's skills and weekly schedule) goes to
routing the same way, as `agent.change_requested`; routing applies and audits it (or refuses it
as its admin API would), and its next status shows it.
"""

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from shared import outbox
from shared.events import (
    AgentChangeRequested,
    AgentSeen,
    AgentSkills,
    AgentStatus,
    Envelope,
    new_event,
    now,
)
from shared.inbox import Handler

SEEN_EVERY = timedelta(minutes=1)
# Upserting a status is idempotent by agent (the newest `at` wins): no inbox row.
IDEMPOTENT = [AgentStatus.TYPE]


async def on_status(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    newest: dict[str, AgentStatus] = {}
    for e in events:
        s: AgentStatus = e.data
        if s.agent_id not in newest or s.at > newest[s.agent_id].at:
            newest[s.agent_id] = s
    rows = [
        (
            s.agent_id,
            s.online,
            s.available,
            s.on_shift,
            s.active,
            s.capacity,
            s.used,
            s.load,
            s.last_seen_at,
            list(s.teams),
            msgspec.to_builtins(s.skills) if s.skills is not None else None,
            s.at,
        )
        for s in newest.values()
    ]
    await conn.executemany(
        """
        INSERT INTO agent_status AS a (agent_id, online, available, on_shift, active, capacity,
                                       used, load, last_seen_at, teams, skills, at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT (agent_id) DO UPDATE SET
            online = excluded.online, available = excluded.available,
            on_shift = excluded.on_shift, active = excluded.active,
            capacity = excluded.capacity, used = excluded.used, load = excluded.load,
            last_seen_at = excluded.last_seen_at, teams = excluded.teams,
            skills = excluded.skills, at = excluded.at
        WHERE excluded.at > a.at
        """,
        rows,
    )


def event_handlers() -> dict[str, Handler]:
    return {AgentStatus.TYPE: on_status}


class Seen:
    """Announces agents using the workspace, at most once per SEEN_EVERY each (per desk
    process: several replicas may each announce; routing keeps the latest either way)."""

    def __init__(self) -> None:
        self._last: dict[str, datetime] = {}

    def due(self, agent_id: str, at: datetime | None = None) -> bool:
        last = self._last.get(agent_id)
        return last is None or (at or now()) - last >= SEEN_EVERY

    async def note(self, conn: asyncpg.Connection, agent_id: str) -> bool:
        """Stage `agent.seen` for `agent_id` unless announced within SEEN_EVERY; whether it
        was staged."""
        at = now()
        if not self.due(agent_id, at):
            return False
        self._last[agent_id] = at  # before any await: one announcement however many pages
        event = new_event(AgentSeen(agent_id=agent_id, at=at), producer="desk")
        await outbox.add(conn, [msgspec.structs.replace(event, key=agent_id)])
        return True


MAX_CAPACITY = 1000  # as AgentChangeRequested allows


async def request_change(
    conn: asyncpg.Connection,
    *,
    agent_id: str,
    online: bool | None = None,
    capacity: int | None = None,
    skills: AgentSkills | None = None,
    by: str,
) -> bool:
    """Stage a change of an agent the board lists (active, not an admin) for routing: presence
    and capacity, or (`skills`) all their skills and schedule at once; False when there is no
    such agent."""
    listed = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM agents WHERE agent_id = $1 AND active AND role <> 'admin')",
        agent_id,
    )
    if not listed:
        return False
    change = AgentChangeRequested(
        agent_id=agent_id, online=online, capacity=capacity, by=by, requested_at=now()
    )
    if skills is not None:
        change = msgspec.structs.replace(change, **msgspec.structs.asdict(skills))
    event = new_event(change, producer="desk")
    await outbox.add(conn, [msgspec.structs.replace(event, key=agent_id)])
    return True
