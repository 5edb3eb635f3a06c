"""routing's HTTP API as a client sees it: logins, agent ids and bodies it cannot keep refused
with a 4xx, never a 500, and every answer in its OpenAPI document."""

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.settings import CommonSettings
from tests import support
from tests.integration.inprocess import publish
from tests.integration.test_routing_capacity import AGENTS
from tests.integration.test_routing_follows import person
from tests.support import RunningStack, ServiceProcess

SUE = {"Authorization": "Bearer test-sue-token"}  # a supervisor
ANA = {"Authorization": "Bearer test-ana-token"}  # an agent


@pytest.fixture(scope="module")
def api(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    port = support.port(22086)
    process = ServiceProcess(
        "routing",
        port,
        {
            **stack.env,
            **support.fresh_groups(),
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            "CARELOOP_ROUTING_HTTP_PORT": str(port),
        },
        tmp_path_factory.mktemp("routing-api") / "routing.log",
    )
    process.start()
    try:
        process.wait_healthy()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        process.stop()


def presence(
    api: httpx.Client, raw_agent_id: str, body: object = None, **kw: object
) -> httpx.Response:
    """PUT presence with `raw_agent_id` sent as is (already percent-encoded where needed)."""
    return api.put(
        f"/v1/agents/{raw_agent_id}/presence",
        json={"online": True} if body is None else body,
        headers=SUE,
        **kw,  # type: ignore[arg-type]
    )


def test_queues_without_a_token_is_401(api: httpx.Client) -> None:
    answer = api.get("/v1/queues")

    assert answer.status_code == 401 and answer.json()["detail"]


def test_queues_with_a_token_is_the_depth_per_team(api: httpx.Client) -> None:
    answer = api.get("/v1/queues", headers=ANA)

    assert answer.status_code == 200
    assert all(isinstance(v, int) for v in answer.json().values())


def test_agents_without_a_token_is_401(api: httpx.Client) -> None:
    assert api.get("/v1/agents").status_code == 401


@pytest.mark.parametrize(
    "raw",
    ["ana%00", "%00", "an%ED%A0%80a", "%ED%A0%80", "%FF%FE", "Ana", "a", "ana%0Aben", "x" * 51],
    ids=[
        "nul",
        "only-nul",
        "surrogate",
        "only-surrogate",
        "not-utf8",
        "upper",
        "short",
        "lf",
        "long",
    ],
)
def test_an_agent_id_that_cannot_be_one_is_422(api: httpx.Client, raw: str) -> None:
    answer = presence(api, raw)

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["path", "agent_id"]


def test_a_well_formed_unknown_agent_is_404(api: httpx.Client) -> None:
    answer = presence(api, "nobody")

    assert answer.status_code == 404 and answer.json() == {"detail": "no such agent"}


def test_an_agent_sees_only_their_own_address_supervisors_see_everyones(
    api: httpx.Client, settings: CommonSettings
) -> None:
    # desk gives them addresses (and the tokens they had).
    announced = [person(a, ["tech_support"], token=f"test-{a}-token") for a in ("ana", "ben")]
    asyncio.run(publish(settings, announced))

    def addresses(headers: dict[str, str]) -> dict[str, str | None]:
        answer = api.get("/v1/agents", headers=headers)
        assert answer.status_code == 200
        return {a["agent_id"]: a["email"] for a in answer.json() if a["agent_id"] in ("ana", "ben")}

    deadline = time.monotonic() + 30
    while addresses(SUE) != {"ana": "ana@example.com", "ben": "ben@example.com"}:
        assert time.monotonic() < deadline, "routing never took desk's addresses"
        time.sleep(0.1)

    assert addresses(ANA) == {"ana": "ana@example.com", "ben": None}
    assert addresses(SUE) == {"ana": "ana@example.com", "ben": "ben@example.com"}


def test_an_agent_setting_anothers_presence_is_403(api: httpx.Client) -> None:
    answer = api.put("/v1/agents/ben/presence", json={"online": True}, headers=ANA)

    assert answer.status_code == 403


@pytest.mark.parametrize(
    "body", [{"online": "yes"}, {"online": 1}, {"online": "true"}, {}, {"online": True, "x": 1}]
)
def test_presence_takes_only_a_json_boolean(api: httpx.Client, body: object) -> None:
    assert presence(api, "ana", body).status_code == 422


@pytest.mark.parametrize("content", [b"{", b'{"online": tru\xff}', b"\x00"])
def test_a_body_that_is_not_json_is_a_4xx(api: httpx.Client, content: bytes) -> None:
    answer = api.put(
        "/v1/agents/ana/presence",
        content=content,
        headers={**SUE, "content-type": "application/json"},
    )

    assert 400 <= answer.status_code < 500
    assert answer.headers["content-type"].startswith("application/json")


def test_a_body_over_the_limit_is_413_in_json(api: httpx.Client) -> None:
    answer = presence(api, "ana", {"online": True, "pad": "x" * 300_000})

    assert answer.status_code == 413 and answer.json()["detail"]


def test_going_online_answers_what_changed(api: httpx.Client) -> None:
    answer = presence(api, "ana", {"online": True})

    assert answer.status_code == 200
    assert answer.json()["agent_id"] == "ana" and answer.json()["online"] is True


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("get", "/v1/agents", {"200", "401", "422", "503"}),
        ("get", "/v1/queues", {"200", "401", "422", "503"}),
        (
            "put",
            "/v1/agents/{agent_id}/presence",
            {"200", "400", "401", "403", "404", "409", "413", "422", "503"},
        ),
    ],
)
def test_openapi_lists_every_answer_of_a_route(
    api: httpx.Client, method: str, path: str, codes: set[str]
) -> None:
    route = api.get("/openapi.json").json()["paths"][path][method]

    assert set(route["responses"]) == codes
    assert all("application/json" in r["content"] for r in route["responses"].values())


def test_openapi_documents_the_agent_id_pattern(api: httpx.Client) -> None:
    route = api.get("/openapi.json").json()["paths"]["/v1/agents/{agent_id}/presence"]["put"]

    (param,) = [p for p in route["parameters"] if p["name"] == "agent_id"]
    assert param["in"] == "path" and param["schema"]["pattern"] == "^[a-z][a-z0-9_-]{1,49}$"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    agent_id=st.text(min_size=1, max_size=60),
    online=st.one_of(st.just(True), st.text(), st.integers()),
)
def test_no_agent_id_or_presence_body_makes_routing_answer_5xx(
    api: httpx.Client, agent_id: str, online: object
) -> None:
    raw = quote(agent_id.encode("utf-8", "surrogatepass"), safe="")
    answer = presence(api, raw, {"online": online})

    assert answer.status_code < 500, (agent_id, online, answer.text)
