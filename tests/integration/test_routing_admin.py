"""routing's admin API against the real stack: agents' skills, schedules, teams and weights
change without a restart, audited, bad input refused naming it (people themselves are desk's);
skills and seniority decide where a ticket goes; presence lapses without a heartbeat."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from services.routing.load import PREFIX
from shared.events import Channel, Learner, LearnerContext, TicketCreated, new_event, now
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from tests import support
from tests.integration.inprocess import publish
from tests.integration.test_routing_capacity import AGENTS, Scene
from tests.integration.test_routing_follows import person
from tests.support import RunningStack, ServiceProcess, eventually

ADA = {"Authorization": "Bearer test-ada-token"}  # an admin
SUE = {"Authorization": "Bearer test-sue-token"}  # a supervisor
ANA = {"Authorization": "Bearer test-ana-token"}  # an agent
# What the seed gives the tech_support agents; every test that changes them puts this back.
SEEDED = {"senior": False, "vip": False, "channels": [], "categories": [], "schedule": None}


def start(stack: RunningStack, log: Path, port: int, **settings: str) -> ServiceProcess:
    process = ServiceProcess(
        "routing",
        port,
        {
            **stack.env,
            **support.fresh_groups(),
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            "CARELOOP_ROUTING_HTTP_PORT": str(port),
            "CARELOOP_ROUTING_SWEEP_INTERVAL_SECONDS": "0.5",
            **settings,
        },
        log,
    )
    process.start()
    process.wait_healthy()
    return process


@pytest.fixture(scope="module")
def api(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    port = support.port(22088)
    process = start(stack, tmp_path_factory.mktemp("routing-admin") / "routing.log", port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        process.stop()


@pytest.fixture
def team(api: httpx.Client) -> str:
    """A team of the test's own, so that no other test's tickets meet its agents."""
    name = f"t_{uuid.uuid4().hex[:8]}"
    assert (
        api.put(f"/v1/admin/teams/{name}", json={"name": "Night"}, headers=ADA).status_code == 200
    )
    return name


def new_agent(api: httpx.Client, settings: CommonSettings, team: str, **fields: Any) -> str:
    """A person desk announces in `team`, once routing shows them, with `fields` set by the
    admin API; their id."""
    agent_id = f"a{uuid.uuid4().hex[:8]}"
    asyncio.run(publish(settings, [person(agent_id, [team])]))
    deadline = time.monotonic() + 30
    while agent_id not in agents(api):
        assert time.monotonic() < deadline, f"routing never learned {agent_id} from desk"
        time.sleep(0.1)
    if fields:
        changed = api.patch(f"/v1/admin/agents/{agent_id}", json=fields, headers=ADA)
        assert changed.status_code == 200, changed.text
    return agent_id


@pytest.fixture(scope="module")
def newcomer(api: httpx.Client, settings: CommonSettings) -> str:
    """An agent of a team of their own, for tests that only change them."""
    team = f"t_{uuid.uuid4().hex[:8]}"
    assert api.put(f"/v1/admin/teams/{team}", json={"name": "Own"}, headers=ADA).is_success
    return new_agent(api, settings, team)


def agents(api: httpx.Client) -> dict[str, dict[str, Any]]:
    return {a["agent_id"]: a for a in api.get("/v1/agents", headers=SUE).json()}


# ---- who may do what ----------------------------------------------------------------------


def test_an_agent_may_not_use_the_admin_api(api: httpx.Client, team: str) -> None:
    assert api.get("/v1/admin/teams", headers=ANA).status_code == 403
    answer = api.post(
        "/v1/admin/agents", json={"id": "zz", "name": "Z", "teams": [team]}, headers=ANA
    )
    assert answer.status_code == 403


def test_a_supervisor_reads_but_does_not_change(api: httpx.Client, team: str) -> None:
    assert api.get("/v1/admin/teams", headers=SUE).status_code == 200
    assert api.get("/v1/admin/channel-weights", headers=SUE).status_code == 200
    assert api.get("/v1/admin/audit", headers=SUE).status_code == 200
    assert api.patch("/v1/admin/agents/ana", json={"capacity": 9}, headers=SUE).status_code == 403


# ---- agents: created, changed, audited, without a restart ----------------------------------


def test_people_are_made_in_desk_and_their_skills_here(api: httpx.Client, newcomer: str) -> None:
    made = api.post("/v1/admin/agents", json={"id": "zz", "name": "Z"}, headers=ADA)
    assert made.status_code == 409 and "desk" in made.json()["detail"]

    answer = api.patch(
        f"/v1/admin/agents/{newcomer}",
        json={"languages": ["zh"], "channels": ["chat", "email"], "capacity": 3},
        headers=ADA,
    )

    assert answer.status_code == 200, answer.text
    shown = agents(api)[newcomer]
    assert (shown["channels"], shown["capacity"]) == (["chat", "email"], 3)
    assert shown["email"] == f"{newcomer}@example.com", "desk's address"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"categories": ["technical", "bogus"]}, "unknown categories: bogus"),
        ({"channels": ["fax"]}, "unknown channels: fax"),
        ({"priorities": ["asap"]}, "unknown priorities: asap"),
        ({"languages": ["fr"]}, "unknown languages: fr"),
        ({"skills": ["x"]}, "skills"),
        ({"capacity": -1}, "capacity"),
        ({"email": "n@example.com"}, "email: a person's name, e-mail, role and teams are desk's"),
        ({"teams": ["finance"]}, "teams: a person's name, e-mail, role and teams are desk's"),
        ({"schedule": {"weekly": {"mon": [["18:00", "09:00"]]}}}, "does not end after it starts"),
    ],
    ids=[
        "category",
        "channel",
        "priority",
        "language",
        "skill",
        "capacity",
        "email",
        "team",
        "schedule",
    ],
)
def test_bad_input_is_422_naming_it(
    api: httpx.Client, newcomer: str, fields: dict[str, Any], named: str
) -> None:
    answer = api.patch(f"/v1/admin/agents/{newcomer}", json=fields, headers=ADA)

    assert answer.status_code == 422, answer.text
    assert named in answer.text


def test_a_change_is_audited_with_who_before_and_after(
    api: httpx.Client, settings: CommonSettings, team: str
) -> None:
    agent_id = new_agent(api, settings, team, capacity=2)

    answer = api.patch(
        f"/v1/admin/agents/{agent_id}", json={"capacity": 6, "senior": True}, headers=ADA
    )

    assert answer.status_code == 200 and answer.json()["capacity"] == 6
    (last, first) = api.get(
        "/v1/admin/audit", params={"subject": f"agent:{agent_id}"}, headers=SUE
    ).json()
    assert (first["before"]["capacity"], first["after"]["capacity"]) == (5, 2)
    assert last["action"] == "agent.changed" and last["actor"] == "ada"
    assert (last["before"]["capacity"], last["after"]["capacity"]) == (2, 6)
    assert (last["before"]["senior"], last["after"]["senior"]) == (False, True)


def test_a_patch_of_an_unknown_agent_is_404_and_of_an_impossible_id_422(api: httpx.Client) -> None:
    assert (
        api.patch("/v1/admin/agents/nobody", json={"capacity": 1}, headers=ADA).status_code == 404
    )
    assert api.patch("/v1/admin/agents/No%00", json={"capacity": 1}, headers=ADA).status_code == 422


def test_a_schedule_that_leaves_a_team_with_no_hours_is_refused(
    api: httpx.Client, settings: CommonSettings, team: str
) -> None:
    nine_to_six = {"weekly": {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed")}}
    agent_id = new_agent(api, settings, team, schedule=nine_to_six)

    answer = api.patch(
        f"/v1/admin/agents/{agent_id}", json={"schedule": {"weekly": {}}}, headers=ADA
    )

    assert answer.status_code == 409
    assert team in answer.json()["detail"] and "no working hours" in answer.json()["detail"]
    new_agent(api, settings, team)  # always on shift
    again = api.patch(
        f"/v1/admin/agents/{agent_id}", json={"schedule": {"weekly": {}}}, headers=ADA
    )
    assert again.status_code == 200, "the team keeps the newcomer's hours"


def test_channel_weights_change_audited_and_unknown_channels_are_named(api: httpx.Client) -> None:
    bad = api.put("/v1/admin/channel-weights", json={"weights": {"fax": 1}}, headers=ADA)
    assert bad.status_code == 422 and "unknown channels: fax" in bad.text

    answer = api.put("/v1/admin/channel-weights", json={"weights": {"email": 0.5}}, headers=ADA)

    assert answer.status_code == 200 and answer.json()["weights"]["email"] == 0.5
    (entry,) = api.get(
        "/v1/admin/audit", params={"subject": "channel_weights", "limit": 1}, headers=SUE
    ).json()
    assert entry["action"] == "weights.changed" and entry["after"]["email"] == 0.5


# ---- placement by skill and seniority -----------------------------------------------------


def vip_ticket(ticket_id: uuid.UUID, n: int, *, channel: Channel = Channel.CHAT) -> Any:
    return new_event(
        TicketCreated(
            ticket_id=ticket_id,
            number=f"CL-9{n:05d}",
            channel=channel,
            learner=Learner(name="Learner", email=f"vip{n}@example.com"),
            subject="The video player crashes",
            description="Playback freezes in the browser",
            language="en",
            created_at=now(),
            learner_context=LearnerContext(learner_id=f"L{n}", tier="vip", updated_at=now()),
        ),
        producer="test",
    )


async def test_vip_tickets_go_to_the_senior_agent_first_and_skills_keep_others_away(
    stack: RunningStack, settings: CommonSettings, api: httpx.Client
) -> None:
    await ensure_topics(settings)
    patch = {"cai": {"senior": True}, "ben": {"channels": ["email"]}}
    http = httpx.AsyncClient(base_url=api.base_url, timeout=10)
    for agent_id, fields in patch.items():
        changed = await http.patch(f"/v1/admin/agents/{agent_id}", json=fields, headers=ADA)
        assert changed.status_code == 200, changed.text
    try:
        async with Scene(stack, settings, 6) as scene:
            await scene.clear_leftovers()
            await scene.send([vip_ticket(t, i) for i, t in enumerate(scene.ids)])
            await eventually(lambda: scene.placed(6), timeout=60)
            holders = [e.data.agent_id for e in scene.assignments()]
        # Cai (senior, capacity 4) takes the first four; then the others who may: never Ben,
        # who takes only e-mail.
        assert holders.count("cai") == 4, holders
        assert "ben" not in holders, holders
    finally:
        for agent_id in patch:
            await http.patch(f"/v1/admin/agents/{agent_id}", json=SEEDED, headers=ADA)
        await http.aclose()


async def test_an_off_shift_agent_is_not_available(stack: RunningStack, api: httpx.Client) -> None:
    never: dict[str, Any] = {"schedule": {"weekly": {}}}
    redis = Redis.from_url(stack.redis_url)
    http = httpx.AsyncClient(base_url=api.base_url, timeout=10)
    try:
        answer = await http.patch("/v1/admin/agents/ana", json=never, headers=ADA)
        assert answer.status_code == 200, answer.text
        assert agents(api)["ana"]["available"] is False
        assert not await redis.sismember(PREFIX + "online", "ana"), "Redis hands ana nothing"
    finally:
        await redis.aclose()
        await http.patch("/v1/admin/agents/ana", json=SEEDED, headers=ADA)
        await http.aclose()
    assert agents(api)["ana"]["available"] is True


# ---- presence lapses without a heartbeat --------------------------------------------------


def test_heartbeats_are_the_agents_own(api: httpx.Client) -> None:
    assert api.post("/v1/agents/ben/heartbeat", headers=ANA).status_code == 403
    assert api.post("/v1/agents/nobody/heartbeat", headers=SUE).status_code == 404
    assert api.post("/v1/agents/Bad%00/heartbeat", headers=SUE).status_code == 422


async def test_presence_lapses_after_the_ttl_and_a_heartbeat_brings_it_back(
    stack: RunningStack, tmp_path: Path
) -> None:
    # Its own router with a short TTL; the module's router (default TTL) runs meanwhile, so
    # what this one says over HTTP is checked, not the Redis they both write.
    port = support.port(22089)
    process = start(
        stack, tmp_path / "routing.log", port, CARELOOP_ROUTING_PRESENCE_TTL_SECONDS="2"
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            beat = await client.post("/v1/agents/ana/heartbeat", headers=ANA)
            assert beat.status_code == 200 and beat.json()["available"] is True

            async def lapsed() -> bool:
                listed = (await client.get("/v1/agents", headers=SUE)).json()
                return [a["available"] for a in listed if a["agent_id"] == "ana"] == [False]

            await eventually(lapsed, timeout=15)
            again = await client.post("/v1/agents/ana/heartbeat", headers=ANA)
            assert again.json()["available"] is True
    finally:
        process.stop()


async def test_an_email_takes_half_a_slot_so_one_unit_of_capacity_holds_two(
    stack: RunningStack, settings: CommonSettings, api: httpx.Client
) -> None:
    await ensure_topics(settings)
    http = httpx.AsyncClient(base_url=api.base_url, timeout=10)
    others = ("ben", "cai", "sue")
    try:
        for agent_id in others:
            off = await http.put(
                f"/v1/agents/{agent_id}/presence", json={"online": False}, headers=SUE
            )
            assert off.status_code == 200
        assert (
            await http.patch("/v1/admin/agents/ana", json={"capacity": 1}, headers=ADA)
        ).is_success
        async with Scene(stack, settings, 3) as scene:
            await scene.clear_leftovers()
            mails = [
                vip_ticket(t, 50 + i, channel=Channel.EMAIL) for i, t in enumerate(scene.ids[:2])
            ]
            await scene.send(mails)
            await eventually(lambda: scene.placed(2), timeout=60)
            await scene.send([vip_ticket(scene.ids[2], 52)])  # a chat: a whole unit
            await eventually(lambda: scene.placed(3), timeout=60)
            holders = {e.data.ticket_id: e.data.agent_id for e in scene.assignments()}
        assert [holders.get(t) for t in scene.ids] == ["ana", "ana", None]
        (ana,) = [
            a for a in (await http.get("/v1/agents", headers=SUE)).json() if a["agent_id"] == "ana"
        ]
        assert (ana["load"], ana["used"]) == (2, 1.0)
    finally:
        await http.patch("/v1/admin/agents/ana", json={"capacity": 4}, headers=ADA)
        for agent_id in others:
            await http.put(f"/v1/agents/{agent_id}/presence", json={"online": True}, headers=SUE)
        await http.aclose()


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(
        [
            "name",
            "email",
            "teams",
            "capacity",
            "languages",
            "categories",
            "channels",
            "course_lines",
            "priorities",
            "vip",
            "senior",
            "schedule",
            "role",
            "token",
        ]
    ),
    value=st.one_of(
        st.text(max_size=40),
        st.integers(),
        st.lists(st.text(max_size=12), max_size=3),
        st.dictionaries(st.text(max_size=8), st.lists(st.lists(st.text(max_size=6)))),
        st.none(),
    ),
)
def test_no_admin_body_makes_routing_answer_5xx(
    api: httpx.Client, newcomer: str, field: str, value: object
) -> None:
    # In a team of their own: whatever the bodies make of them, no ticket meets them.
    created = api.post(
        "/v1/admin/agents", json={"id": "f1", "name": "F", field: value}, headers=ADA
    )
    changed = api.patch(f"/v1/admin/agents/{newcomer}", json={field: value}, headers=ADA)
    audit = api.get("/v1/admin/audit", params={"subject": str(value)}, headers=SUE)

    assert created.status_code < 500, (field, value, created.text)
    assert changed.status_code < 500, (field, value, changed.text)
    assert audit.status_code < 500, (value, audit.text)
