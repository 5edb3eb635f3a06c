"""Agents' presence between routing and desk (issue 9), on the real broker, database and Redis:
routing announces each agent's status when it changes, desk's board keeps routing's word in
its own table, and desk's agent.seen keeps an agent's presence in routing alive. One routing
process for the module, with a presence TTL of a few seconds."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from services.desk import presence
from shared import dlq, topics
from shared.db import create_pool
from shared.events import (
    AgentChangeRequested,
    AgentSeen,
    AgentSkills,
    AgentStatus,
    Envelope,
    WeeklyHours,
    decode,
    new_event,
    now,
)
from shared.inbox import EventConsumer
from shared.kafka import make_broker, outgoing, publish_confirmed
from shared.migrate import migrate
from shared.settings import CommonSettings
from tests import support
from tests.integration.inprocess import groups_from_now
from tests.integration.test_desk_events import record
from tests.integration.test_routing_capacity import AGENTS
from tests.support import RunningStack, ServiceProcess, eventually

SUE = {"Authorization": "Bearer test-sue-token"}  # a supervisor
TTL_SECONDS = 3


@pytest.fixture(scope="module")
def routing(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = support.port(22096)
    process = ServiceProcess(
        "routing",
        port,
        {
            **stack.env,
            # Only this module's events: a replay of earlier tests' changes to the same agents
            # landed in the audit these tests read.
            **asyncio.run(groups_from_now(stack.bootstrap, "routing")),
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            "CARELOOP_ROUTING_HTTP_PORT": str(port),
            "CARELOOP_ROUTING_SWEEP_INTERVAL_SECONDS": "0.3",
            "CARELOOP_ROUTING_STATUS_INTERVAL_SECONDS": "60",
            "CARELOOP_ROUTING_PRESENCE_TTL_SECONDS": str(TTL_SECONDS),
        },
        tmp_path_factory.mktemp("agent-status") / "routing.log",
    )
    process.start()
    try:
        process.wait_healthy()
        yield f"http://127.0.0.1:{port}"
        # The tests turn agents on and off; the seed has them all online, as the modules
        # after this one expect (routing keeps presence in the database it shares with them).
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for agent_id in ("ana", "ben", "cai"):
                back = client.put(
                    f"/v1/agents/{agent_id}/presence", json={"online": True}, headers=SUE
                )
                assert back.status_code == 200, back.text
    finally:
        process.stop()


@pytest.fixture
async def api(routing: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=routing, timeout=30) as client:
        yield client


@pytest.fixture
async def statuses(stack: RunningStack) -> AsyncIterator["Statuses"]:
    s = Statuses(stack.bootstrap)
    await s.consumer.start()
    yield s
    await s.consumer.stop()


class Statuses:
    """agent.status events on careloop.routing.v1 published since the test began."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topics.ROUTING, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        self.since = now()
        self.seen: list[Envelope[Any]] = []

    async def wait(self, agent_id: str, **fields: Any) -> Envelope[Any]:
        def match() -> Envelope[Any] | None:
            for e in self.seen:
                if e.data.agent_id == agent_id and all(
                    getattr(e.data, k) == v for k, v in fields.items()
                ):
                    return e
            return None

        async def look() -> Envelope[Any] | None:
            for records in (await self.consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    e = decode(r.value)
                    if e.type == AgentStatus.TYPE and e.occurred_at >= self.since:
                        self.seen.append(e)
            return match()

        found: Envelope[Any] = await eventually(look, timeout=30, interval=0)
        return found


async def set_online(api: httpx.AsyncClient, agent_id: str, online: bool) -> None:
    answer = await api.put(f"/v1/agents/{agent_id}/presence", json={"online": online}, headers=SUE)
    assert answer.status_code == 200, answer.text


async def agent(api: httpx.AsyncClient, agent_id: str) -> dict[str, Any]:
    answer = await api.get("/v1/agents", headers=SUE)
    found: dict[str, Any] = next(a for a in answer.json() if a["agent_id"] == agent_id)
    return found


async def test_routing_announces_an_agents_presence_and_load_when_it_changes(
    api: httpx.AsyncClient, statuses: Statuses
) -> None:
    await set_online(api, "cai", True)
    on = await statuses.wait("cai", online=True, available=True)
    assert on.key == "cai"
    assert (on.data.capacity, on.data.on_shift, on.data.teams) == (4, True, ("tech_support",))
    assert on.data.load >= 0 and on.data.used >= 0

    # Going offline reaches the others within the sweep, not the next full announcement.
    await set_online(api, "cai", False)
    off = await statuses.wait("cai", online=False, available=False)
    assert off.occurred_at - on.occurred_at < timedelta(seconds=5)


async def test_the_board_keeps_routings_newest_word_per_agent(
    api: httpx.AsyncClient, statuses: Statuses, stack: RunningStack, settings: CommonSettings
) -> None:
    await asyncio.to_thread(migrate, stack.dsn, "desk")
    pool = await create_pool(stack.service_dsn("desk"), schema="desk")
    consumer = EventConsumer(
        name="desk",
        handlers=presence.event_handlers(),
        pool=lambda: pool,
        broker=make_broker(settings, client_id="test-agent-status"),
        idempotent=frozenset(presence.IDEMPOTENT),
    )
    try:
        await set_online(api, "ben", True)
        on = await statuses.wait("ben", online=True)
        await set_online(api, "ben", False)
        off = await statuses.wait("ben", online=False)
        # Redelivered and out of order in one batch, then the older one alone: the newest wins.
        await consumer.consume([record(off), record(on)])
        await consumer.consume([record(on)])
        row = await pool.fetchrow("SELECT * FROM agent_status WHERE agent_id = 'ben'")
        assert row is not None
        assert (row["online"], row["capacity"], row["at"]) == (False, 4, off.data.at)
    finally:
        await pool.close()


async def test_desks_seen_keeps_presence_alive_and_never_moves_it_back(
    api: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    await set_online(api, "ana", True)

    async def lapsed() -> bool:
        return not (await agent(api, "ana"))["available"]

    assert await eventually(lapsed, timeout=TTL_SECONDS + 10)

    # What desk's workspace stages (presence.Seen), published as its outbox relay does.
    await asyncio.to_thread(migrate, stack.dsn, "desk")
    conn = await asyncpg.connect(stack.service_dsn("desk"), server_settings={"search_path": "desk"})
    try:
        seen = presence.Seen()
        assert await seen.note(conn, "ana")
        assert not await seen.note(conn, "ana")  # once a minute at most
        payload = await conn.fetchval(
            "DELETE FROM outbox WHERE key = 'ana' AND event_type = 'agent.seen' RETURNING payload"
        )
    finally:
        await conn.close()
    staged = decode(payload)
    broker = make_broker(settings, client_id="test-agent-seen")
    await broker.start()
    try:
        await publish_confirmed(broker, [outgoing(staged)])

        async def back() -> dict[str, Any] | None:
            a = await agent(api, "ana")
            return a if a["available"] else None

        shown = await eventually(back, timeout=30)
        assert datetime.fromisoformat(shown["last_seen_at"]) == staged.data.at

        # An older sighting (a late redelivery) never moves it back; a future one stops at now.
        old = AgentSeen(agent_id="ana", at=staged.data.at - timedelta(hours=1))
        future = AgentSeen(agent_id="ana", at=now() + timedelta(days=1))
        await publish_confirmed(broker, [outgoing(_keyed(old)), outgoing(_keyed(future))])

        async def moved() -> dict[str, Any] | None:
            a = await agent(api, "ana")
            return a if datetime.fromisoformat(a["last_seen_at"]) > staged.data.at else None

        later = await eventually(moved, timeout=30)
        assert datetime.fromisoformat(later["last_seen_at"]) <= now()
    finally:
        await broker.stop()
        await set_online(api, "ana", False)


def change(agent_id: str, by: str = "sue", **fields: Any) -> Envelope[AgentChangeRequested]:
    """What desk's board stages for routing (presence.request_change)."""
    data = AgentChangeRequested(agent_id=agent_id, by=by, requested_at=now(), **fields)
    return msgspec.structs.replace(new_event(data, producer="desk"), key=agent_id)


def _keyed(seen: AgentSeen) -> Envelope[AgentSeen]:
    return msgspec.structs.replace(new_event(seen, producer="desk"), key=seen.agent_id)


async def test_a_supervisors_change_from_the_board_is_applied_and_audited(
    api: httpx.AsyncClient, statuses: Statuses, stack: RunningStack, settings: CommonSettings
) -> None:
    await set_online(api, "cai", False)
    broker = make_broker(settings, client_id="test-agent-change")
    await broker.start()
    try:
        # One routing does not know goes to the dead letters; the next one applies all the same.
        await publish_confirmed(
            broker,
            [
                outgoing(change("zed", online=True)),
                outgoing(change("cai", online=True, capacity=7)),
            ],
        )
        await statuses.wait("cai", online=True, capacity=7)
        await publish_confirmed(broker, [outgoing(change("cai", online=False, capacity=4))])
        await statuses.wait("cai", online=False, capacity=4)
    finally:
        await broker.stop()
    conn = await asyncpg.connect(stack.dsn)
    try:
        audit = await conn.fetch(
            "SELECT actor, action, before, after FROM routing.audit WHERE subject = 'agent:cai' "
            "AND at > now() - interval '1 minute' ORDER BY id"
        )
    finally:
        await conn.close()
    assert [(r["actor"], r["action"]) for r in audit][-4:] == [
        ("sue", "agent.presence_set"),
        ("sue", "agent.changed"),
        ("sue", "agent.presence_set"),
        ("sue", "agent.changed"),
    ]
    last = audit[-1]
    assert '"capacity": 7' in last["before"] and '"capacity": 4' in last["after"]


# ben as tests/integration/agents.yaml seeds him: the modules after this one expect him so.
BEN = AgentSkills(languages=("en",))


async def test_an_admins_skills_and_schedule_from_the_board_are_applied_as_the_admin_api_would(
    statuses: Statuses, stack: RunningStack, settings: CommonSettings
) -> None:
    week = WeeklyHours(timezone="Asia/Shanghai", weekly={"mon": (("09:00", "18:00"),)})
    wanted = AgentSkills(
        languages=("zh", "en"),
        categories=("technical", "payment_refund"),
        channels=("chat", "email"),
        course_lines=("PY",),
        priorities=("urgent", "high"),
        vip=True,
        senior=True,
        schedule=week,
    )
    refusals = [
        # Skills are an admin's to change (PATCH /v1/admin/agents is admins only).
        change("ben", by="sue", languages=("zh",)),
        # What the admin API refuses is refused here too, naming why.
        change("ben", by="ada", categories=("cooking",)),
        change(
            "ben",
            by="ada",
            schedule=WeeklyHours(timezone="Asia/Shanghai", weekly={"tue": (("18:00", "09:00"),)}),
        ),
        change("ben", by="ada", schedule=WeeklyHours(timezone="Mars/Olympus", weekly={})),
    ]
    applied = change("ben", by="ada", **msgspec.structs.asdict(wanted))
    letters = AIOKafkaConsumer(
        topics.dlq(topics.PEOPLE), bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest"
    )
    broker = make_broker(settings, client_id="test-agent-skills")
    await letters.start()
    await broker.start()
    try:
        await publish_confirmed(broker, [outgoing(e) for e in [*refusals, applied]])
        shown = await statuses.wait("ben", skills=wanted)
        assert shown.data.capacity == 4  # what the change left out stays

        reasons: dict[str, str] = {}

        async def dead() -> bool:
            for records in (await letters.getmany(timeout_ms=300)).values():
                for r in records:
                    for e in refusals:
                        if str(e.event_id).encode() in r.value:
                            reasons[str(e.event_id)] = dict(r.headers)[dlq.ERROR].decode()
            return len(reasons) == len(refusals)

        assert await eventually(dead, timeout=30, interval=0)
        why = [reasons[str(e.event_id)] for e in refusals]
        assert (
            "only an admin changes skills and schedules" in why[0] and "sue is supervisor" in why[0]
        )
        assert "unknown categories: cooking" in why[1]
        assert "tue: 18:00-09:00 does not end after it starts" in why[2]
        assert "unknown timezone: Mars/Olympus" in why[3]

        conn = await asyncpg.connect(stack.dsn)
        try:
            audit = await conn.fetch(
                "SELECT actor, action, before, after FROM routing.audit "
                "WHERE subject = 'agent:ben' AND at > now() - interval '1 minute' ORDER BY id"
            )
        finally:
            await conn.close()
        assert [(r["actor"], r["action"]) for r in audit] == [("ada", "agent.changed")]
        assert '"senior": false' in audit[0]["before"] and '"senior": true' in audit[0]["after"]
        assert '"09:00"' in audit[0]["after"]
    finally:
        await publish_confirmed(
            broker, [outgoing(change("ben", by="ada", **msgspec.structs.asdict(BEN)))]
        )
        await statuses.wait("ben", skills=BEN)
        await broker.stop()
        await letters.stop()
