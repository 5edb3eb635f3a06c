"""routing follows desk and the incident service: transfers to an agent or a team, desk's people
(new ones become agents, disabled ones take nothing), and open incidents (their tickets held off
every agent's capacity, their SLA clocks paused), on the real broker, database and Redis, with
one routing process for the module."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from services.routing.load import PREFIX
from shared import topics
from shared.agents import token_hash
from shared.events import (
    LOW_PERIODIC_SCORE,
    Category,
    Channel,
    Envelope,
    IncidentCriteria,
    IncidentOpened,
    IncidentResolved,
    IncidentSeverity,
    IncidentTicketLinked,
    IncidentTicketUnlinked,
    Learner,
    PersonChanged,
    Priority,
    TicketCreated,
    TicketRetriaged,
    TicketTransferred,
    decode,
    new_event,
    now,
)
from shared.kafka import make_broker, outgoing, publish_confirmed
from shared.settings import CommonSettings
from tests import support
from tests.integration.test_routing_capacity import AGENTS, resolved
from tests.support import RunningStack, ServiceProcess, eventually

SUE = {"Authorization": "Bearer test-sue-token"}  # a supervisor
ADA = {"Authorization": "Bearer test-ada-token"}  # an admin


def person(
    agent_id: str, teams: list[str], *, active: bool = True, token: str | None = None
) -> Envelope[Any]:
    """desk's announcement of a person (an agent) as they now are."""
    return new_event(
        PersonChanged(
            agent_id=agent_id,
            name=agent_id.title(),
            email=f"{agent_id}@example.com",
            role="agent",
            teams=tuple(teams),
            active=active,
            api_token_sha256=() if token is None else (token_hash(token),),
            changed_at=now(),
        ),
        producer="desk",
    )


async def shown(api: httpx.AsyncClient, agent_id: str, **fields: Any) -> dict[str, Any]:
    """The agent as GET /v1/agents shows them once they have these field values."""

    async def look() -> dict[str, Any] | None:
        for a in (await api.get("/v1/agents", headers=SUE)).json():
            if a["agent_id"] == agent_id and all(a[k] == v for k, v in fields.items()):
                return dict(a)
        return None

    found: dict[str, Any] = await eventually(look, timeout=30, interval=0.1)
    return found


@pytest.fixture(scope="module")
def routing(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One routing process for the module; its base URL."""
    port = support.port(22087)
    process = ServiceProcess(
        "routing",
        port,
        {
            **stack.env,
            **support.fresh_groups(),
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            "CARELOOP_ROUTING_HTTP_PORT": str(port),
            "CARELOOP_ROUTING_SWEEP_INTERVAL_SECONDS": "0.5",
        },
        tmp_path_factory.mktemp("routing-follows") / "routing.log",
    )
    process.start()
    try:
        process.wait_healthy()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


class Desk:
    """Publishes desk's events and reads what routing answers about our tickets."""

    def __init__(self, stack: RunningStack, settings: CommonSettings) -> None:
        self.stack = stack
        self.broker = make_broker(settings, client_id="test-routing-follows")
        self.consumer = AIOKafkaConsumer(
            topics.ROUTING, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest"
        )
        self.redis = Redis.from_url(stack.redis_url)
        self.ours: set[uuid.UUID] = set()
        self.seen: dict[uuid.UUID, Envelope[Any]] = {}

    async def send(self, *events: Envelope[Any]) -> None:
        await publish_confirmed(self.broker, [outgoing(e) for e in events])

    async def said(
        self,
        ticket_id: uuid.UUID,
        event_type: str | tuple[str, ...],
        *,
        since: set[uuid.UUID] | None = None,
        **fields: Any,
    ) -> Envelope[Any]:
        """Wait for routing's `event_type` (or one of them) about the ticket with these field
        values; with `since` (event ids seen before), only a new one."""

        def match() -> Envelope[Any] | None:
            for e in self.seen.values():
                if (
                    e.data.ticket_id == ticket_id
                    and e.type in (event_type if isinstance(event_type, tuple) else (event_type,))
                    and e.event_id not in (since or set())
                    and all(getattr(e.data, k) == v for k, v in fields.items())
                ):
                    return e
            return None

        async def look() -> Envelope[Any] | None:
            for records in (await self.consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    e = decode(r.value)
                    if e.data.ticket_id in self.ours:
                        self.seen[e.event_id] = e
            return match()

        found: Envelope[Any] = await eventually(look, timeout=30, interval=0)
        return found

    def count(self, ticket_id: uuid.UUID, event_type: str) -> int:
        return sum(
            1 for e in self.seen.values() if e.data.ticket_id == ticket_id and e.type == event_type
        )

    async def query(self, sql: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.stack.dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    async def state(self, ticket_id: uuid.UUID) -> tuple[bool, bool, int]:
        """Whether routing's ticket waits in a queue, whether an agent holds it, and how many of
        its SLA clocks run."""
        return await self.query(
            """
            SELECT (EXISTS (SELECT 1 FROM routing.queue WHERE ticket_id = $1),
                    EXISTS (SELECT 1 FROM routing.assignments
                            WHERE ticket_id = $1 AND released_at IS NULL),
                    (SELECT count(*)::int FROM routing.sla_clocks
                     WHERE ticket_id = $1 AND running_since IS NOT NULL AND stopped_at IS NULL))
            """,
            ticket_id,
        )

    async def holds(self, agent_id: str, ticket_id: uuid.UUID) -> bool:
        """Redis counts the ticket on the agent's load, and Postgres has them hold it."""
        in_redis = bool(await self.redis.sismember(f"{PREFIX}load:{agent_id}", str(ticket_id)))
        conn = await asyncpg.connect(self.stack.dsn)
        try:
            holder = await conn.fetchval(
                "SELECT agent_id FROM routing.assignments "
                "WHERE ticket_id = $1 AND released_at IS NULL",
                ticket_id,
            )
        finally:
            await conn.close()
        return in_redis and holder == agent_id


@pytest.fixture
async def desk(stack: RunningStack, settings: CommonSettings) -> AsyncIterator[Desk]:
    d = Desk(stack, settings)
    await d.broker.start()
    await d.consumer.start()
    try:
        yield d
    finally:
        await d.consumer.stop()
        await d.broker.stop()
        await d.redis.aclose()


def created(ticket_id: uuid.UUID, subject: str, description: str) -> Envelope[Any]:
    return new_event(
        TicketCreated(
            ticket_id=ticket_id,
            number=f"CL-{ticket_id.int % 1_000_000:06d}",
            channel=Channel.WEB,
            learner=Learner(name="Lin", email="lin@example.com"),
            subject=subject,
            description=description,
            language="en",
            created_at=now(),
        ),
        producer="test",
    )


def transferred(
    ticket_id: uuid.UUID, *, to_agent: str | None, to_team: str, frm: str | None
) -> Envelope[Any]:
    return new_event(
        TicketTransferred(
            ticket_id=ticket_id,
            number=f"CL-{ticket_id.int % 1_000_000:06d}",
            from_agent_id=frm,
            from_team=None,
            to_agent_id=to_agent,
            to_team=to_team,
            reason="the learner asks about an invoice",
            by="sue",
            transferred_at=now(),
        ),
        producer="desk",
    )


async def add_agent(
    api: httpx.AsyncClient, desk: Desk, agent_id: str, team: str, capacity: int
) -> None:
    """An agent of `team`: desk announces the person, routing's admin sets their capacity."""
    await desk.send(person(agent_id, [team]))
    await shown(api, agent_id)
    changed = await api.patch(
        f"/v1/admin/agents/{agent_id}", json={"capacity": capacity}, headers=ADA
    )
    assert changed.status_code == 200, changed.text


async def test_a_transfer_moves_the_ticket_and_its_load(routing: str, desk: Desk) -> None:
    ticket = uuid.uuid4()
    desk.ours.add(ticket)
    async with httpx.AsyncClient(base_url=routing, timeout=10) as api:
        # fay takes finance's queue (however long earlier tests left it); gus is offline.
        await add_agent(api, desk, "fay", "finance", capacity=10_000)
        await add_agent(api, desk, "gus", "finance", capacity=1)
        online = await api.put("/v1/agents/fay/presence", json={"online": True}, headers=SUE)
        assert online.status_code == 200, online.text

        await desk.send(
            created(ticket, "The video player crashes", "Playback freezes in the browser"),
            transferred(ticket, to_agent="ana", to_team="tech_support", frm=None),
        )
        await desk.said(ticket, "ticket.assigned", agent_id="ana", team="tech_support")
        assert await eventually(lambda: desk.holds("ana", ticket))

        await desk.send(transferred(ticket, to_agent=None, to_team="finance", frm="ana"))
        await desk.said(ticket, "ticket.queued", team="finance")
        await desk.said(ticket, "ticket.assigned", agent_id="fay", team="finance")
        assert await eventually(lambda: desk.holds("fay", ticket))
        assert not await desk.redis.sismember(f"{PREFIX}load:ana", str(ticket)), "ana's slot freed"

        # A person may give a ticket to someone offline and full: they decided.
        to_gus = transferred(ticket, to_agent="gus", to_team="finance", frm="fay")
        await desk.send(to_gus, to_gus)  # a redelivery is applied once (the inbox)
        await desk.said(ticket, "ticket.assigned", agent_id="gus")
        assert await eventually(lambda: desk.holds("gus", ticket))
        assert not await desk.redis.sismember(f"{PREFIX}load:fay", str(ticket)), "fay's slot freed"
        agents = (await api.get("/v1/agents", headers=SUE)).json()
        gus = next(a for a in agents if a["agent_id"] == "gus")
        assert gus["load"] == 1 and not gus["available"]
        assert desk.count(ticket, "ticket.assigned") == 3


async def test_the_follow_up_of_a_low_periodic_survey_score_goes_to_a_supervisor(
    routing: str, desk: Desk
) -> None:
    follow_up, plain = uuid.uuid4(), uuid.uuid4()
    desk.ours |= {follow_up, plain}
    async with httpx.AsyncClient(base_url=routing, timeout=10) as api:
        # sue, the one supervisor, with room whatever earlier tests left her (and her
        # capacity back afterwards, for the modules after this one)
        agents = (await api.get("/v1/agents", headers=SUE)).json()
        capacity = next(a["capacity"] for a in agents if a["agent_id"] == "sue")
        roomy = await api.patch("/v1/admin/agents/sue", json={"capacity": 10_000}, headers=ADA)
        assert roomy.status_code == 200, roomy.text
        try:
            online = await api.put("/v1/agents/sue/presence", json={"online": True}, headers=SUE)
            assert online.status_code == 200, online.text
            text = ("Low periodic survey score (overall 1/5)", "Overall 1/5 · Response speed 2/5")
            survey = created(follow_up, *text)
            survey = msgspec.structs.replace(
                survey, data=msgspec.structs.replace(survey.data, source=LOW_PERIODIC_SCORE)
            )

            await desk.send(survey, created(plain, *text))

            routed = await desk.said(follow_up, "ticket.routed", agent_id="sue")
            assert routed.data.priority in (Priority.HIGH, Priority.URGENT)
            placed = await desk.said(plain, "ticket.routed")
            # the same text, the same team; not sue's, whose supervisor she is not
            assert routed.data.team == placed.data.team != "tech_support"
            assert placed.data.agent_id != "sue"
        finally:
            # neither left held or queued (for nobody works customer_service here) for the
            # modules after this one, nor sue with room she does not have
            await desk.send(resolved(follow_up), resolved(plain))

            async def released() -> bool:
                states = [await desk.state(t) for t in (follow_up, plain)]
                return all(not queued and not held for queued, held, _ in states)

            await eventually(released)
            back = {"capacity": capacity}
            await api.patch("/v1/admin/agents/sue", json=back, headers=ADA)


async def test_desks_people_are_routings_agents_and_a_disabled_one_takes_nothing(
    routing: str, desk: Desk
) -> None:
    agent_id, team, token = f"p{uuid.uuid4().hex[:8]}", f"t_{uuid.uuid4().hex[:8]}", "tok-" * 6
    own = {"Authorization": f"Bearer {token}"}
    ticket = uuid.uuid4()
    desk.ours.add(ticket)
    async with httpx.AsyncClient(base_url=routing, timeout=10) as api:
        made = await api.post("/v1/admin/agents", json={"id": agent_id}, headers=ADA)
        assert made.status_code == 409 and "POST /v1/users on desk" in made.text

        await desk.send(person(agent_id, [team], token=token))
        new = await shown(api, agent_id)
        assert (new["online"], new["active"], new["capacity"]) == (False, True, 5)
        assert sorted(new["languages"]) == ["en", "zh"] and new["teams"] == [team]
        assert new["categories"] == [] and new["channels"] == [], "default skills: any"
        teams = (await api.get("/v1/admin/teams", headers=SUE)).json()
        assert team in [t["team"] for t in teams], "desk's team is routing's too"
        online = await api.put(
            f"/v1/agents/{agent_id}/presence", json={"online": True}, headers=own
        )
        assert online.status_code == 200, "the token desk issued works in routing"
        desks = await api.patch(f"/v1/admin/agents/{agent_id}", json={"teams": []}, headers=ADA)
        assert desks.status_code == 422 and "desk" in desks.text

        await desk.send(person(agent_id, [team], token=token, active=False))
        await shown(api, agent_id, active=False, online=False, available=False)
        assert (await api.get("/v1/queues", headers=own)).status_code == 401
        again = await api.put(f"/v1/agents/{agent_id}/presence", json={"online": True}, headers=SUE)
        assert again.status_code == 409 and "disabled" in again.text

        await desk.send(
            created(ticket, "The video player crashes", "Playback freezes in the browser"),
            transferred(ticket, to_agent=None, to_team=team, frm=None),
        )
        await desk.said(ticket, "ticket.queued", team=team)
        await asyncio.sleep(1.5)  # three sweeps (each drains): nothing is given to them
        assert desk.count(ticket, "ticket.assigned") == 0
        assert (await api.get("/v1/queues", headers=SUE)).json().get(team) == 1

        await desk.send(person(agent_id, [team], token=token))  # enabled again
        await shown(api, agent_id, active=True)
        online = await api.put(
            f"/v1/agents/{agent_id}/presence", json={"online": True}, headers=own
        )
        assert online.status_code == 200
        await desk.said(ticket, "ticket.assigned", agent_id=agent_id)


def incident_event(data: Any) -> Envelope[Any]:
    return new_event(data, producer="incident")


async def test_an_open_incidents_tickets_are_held_off_agents_until_unlinked_or_resolved(
    routing: str, desk: Desk
) -> None:
    word, incident = f"outage{uuid.uuid4().hex[:6]}", uuid.uuid4()
    url = f"http://incident.test/status/{incident}"
    matching, linked = uuid.uuid4(), uuid.uuid4()
    desk.ours |= {matching, linked}
    await desk.send(
        incident_event(
            IncidentOpened(
                incident_id=incident,
                number="INC-0042",
                title="Live classes do not load",
                severity=IncidentSeverity.SEV2,
                criteria=IncidentCriteria(keywords=(word.upper(),)),
                status_url=url,
                by="sue",
                opened_at=now(),
            )
        )
    )
    known = "SELECT count(*) FROM routing.incidents WHERE incident_id = $1"
    await eventually(lambda: desk.query(known, incident))

    # A new ticket the criteria match is held: routed to nobody, in no queue, clocks paused.
    await desk.send(created(matching, f"Live class {word}", "The classroom never loads"))
    routed = await desk.said(matching, "ticket.routed")
    assert routed.data.agent_id is None
    assert (routed.data.incident_id, routed.data.incident_url) == (incident, url)
    assert await desk.state(matching) == (False, False, 0)
    # A person's new triage moves it to another team, where it stays held.
    retriaged = TicketRetriaged(
        ticket_id=matching,
        number="CL-000001",
        category=Category.PAYMENT_REFUND,
        priority=Priority.HIGH,
        by="sue",
        reason="it is about a refund for the class",
        retriaged_at=now(),
    )
    await desk.send(new_event(retriaged, producer="desk"))
    team = "SELECT team FROM routing.tickets WHERE ticket_id = $1"

    async def moved() -> bool:
        return bool(await desk.query(team, matching) == "finance")

    await eventually(moved)
    assert await desk.state(matching) == (False, False, 0)

    # A ticket an agent holds, linked by the incident: off their capacity, clocks paused.
    await desk.send(
        created(linked, "The video player crashes", "Playback freezes in the browser"),
        transferred(linked, to_agent="ana", to_team="tech_support", frm=None),
    )
    await desk.said(linked, "ticket.assigned", agent_id="ana")
    assert (await desk.state(linked))[1:] == (True, 2)
    await desk.send(
        incident_event(
            IncidentTicketLinked(
                ticket_id=linked,
                incident_id=incident,
                number="INC-0042",
                title="Live classes do not load",
                status_url=url,
                by="sue",
                linked_at=now(),
            )
        )
    )

    async def off_anas_load() -> bool:
        gone = not await desk.redis.sismember(f"{PREFIX}load:ana", str(linked))
        return gone and await desk.state(linked) == (False, False, 0)

    await eventually(off_anas_load)

    # Unlinked, it is an ordinary ticket again: placed, its clocks running on.
    before = set(desk.seen)
    await desk.send(
        incident_event(
            IncidentTicketUnlinked(
                ticket_id=linked, incident_id=incident, by="sue", unlinked_at=now()
            )
        )
    )
    await desk.said(linked, ("ticket.assigned", "ticket.queued"), since=before)
    assert (await desk.state(linked))[2] == 2

    # Resolved: the ticket routing held that the incident never linked is placed as any other.
    await desk.send(
        incident_event(
            IncidentResolved(
                incident_id=incident,
                resolution="The classroom service is back",
                linked_tickets=0,
                by="sue",
                resolved_at=now(),
            )
        )
    )
    await desk.said(matching, ("ticket.assigned", "ticket.queued"))
    placed = await desk.state(matching)
    assert placed[0] or placed[1], "queued or assigned"
    assert placed[2] == 2
    assert not await desk.query(known, incident)
