"""Fuzzed requests to every desk and survey route: never a 5xx but 503.

Paths, queries, headers and bodies carry NUL, lone surrogates, other controls, invalid
UTF-8, wrong JSON types and odd media types, against the apps running in-process on the
real stack (a 500 comes back as a response, not an exception).
"""

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.desk.app import create_app as create_desk
from services.desk.settings import DeskSettings
from services.survey.app import create_app as create_survey
from services.survey.settings import SurveySettings
from shared.settings import CommonSettings
from tests.integration.inprocess import ANA, SUE, environment, served, service_env
from tests.integration.test_desk_http import assigned_ticket, resolve_and_get_token
from tests.integration.test_survey_http import sent_token
from tests.support import RunningStack


@dataclass
class Scene:
    desk: httpx.AsyncClient
    survey: httpx.AsyncClient
    ticket_id: str
    confirm_token: str
    survey_token: str


@pytest.fixture(scope="module")
async def scene(stack: RunningStack, settings: CommonSettings) -> AsyncIterator[Scene]:
    with environment(service_env(stack)):
        async with (
            served(lambda: create_desk(DeskSettings()), "desk") as desk,
            served(lambda: create_survey(SurveySettings()), "survey") as survey,
        ):
            ticket_id = await assigned_ticket(desk, settings)
            confirm_token = await resolve_and_get_token(desk, stack, ticket_id)
            _, survey_token = await sent_token(stack, settings)
            yield Scene(desk, survey, str(ticket_id), confirm_token, survey_token)


NASTY = st.sampled_from(["\x00", "\ud800", "\udfff", "\x07", "\x7f", "\x85", "\u2028", "\ufffe"])
# Half the characters from NASTY: astral characters alone reach JSON only as valid pairs.
text = st.text(alphabet=st.one_of(NASTY, st.characters()), max_size=40) | st.lists(
    NASTY | st.characters(max_codepoint=0xFF), min_size=1, max_size=8
).map("".join)
raw_bytes = st.binary(max_size=60)


def encode(value: str | bytes) -> str:
    """Percent-encoded for a URL, invalid UTF-8 and lone surrogates included."""
    data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return quote(data, safe="")


json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=10,
)
FIELDS = [
    "body",
    "resolution",
    "answer",
    "overall",
    "response_speed",
    "problem_solving",
    "attitude",
    "comment",
]


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A body and its content type: shaped like the real ones, or anything at all."""
    kind = draw(
        st.sampled_from(["json-shaped", "json-shaped", "json-any", "form", "bytes", "none"])
    )
    if kind == "json-shaped":
        obj = draw(st.dictionaries(st.sampled_from(FIELDS), text | json_value, max_size=6))
        return json.dumps(obj).encode(), "application/json"
    if kind == "json-any":
        return json.dumps(draw(json_value)).encode(), draw(
            st.sampled_from(["application/json", "text/plain", None])
        )
    if kind == "form":
        pairs = draw(
            st.lists(st.tuples(st.sampled_from(FIELDS) | text, text | raw_bytes), max_size=6)
        )
        body = "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs).encode()
        return body, draw(
            st.sampled_from(
                ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
            )
        )
    if kind == "bytes":
        return draw(raw_bytes), draw(
            st.sampled_from(["application/json", "application/x-www-form-urlencoded", None])
        )
    return b"", None


def segment(real: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(real), text.map(encode), raw_bytes.map(encode))


def query() -> st.SearchStrategy[str]:
    key = st.sampled_from(["status", "everyone", "limit"]) | text
    value = st.sampled_from(["true", "false", "yes", "1", "assigned", "500", "0"]) | text
    return st.lists(st.tuples(key, value | raw_bytes), max_size=4).map(
        lambda pairs: "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs)
    )


authorization = st.one_of(
    st.just(ANA["Authorization"]),
    st.just(SUE["Authorization"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
    st.none(),
)


def desk_routes(scene: Scene) -> st.SearchStrategy[tuple[str, str]]:
    ticket = segment(scene.ticket_id) | st.just(str(uuid.uuid4()))
    token = segment(scene.confirm_token)
    return st.one_of(
        st.just(("GET", "/v1/agent/me")),
        st.just(("GET", "/v1/agent/tickets")),
        ticket.map(lambda t: ("GET", f"/v1/tickets/{t}")),
        ticket.map(lambda t: ("POST", f"/v1/tickets/{t}/replies")),
        ticket.map(lambda t: ("POST", f"/v1/tickets/{t}/resolve")),
        token.map(lambda t: ("POST", f"/v1/confirmations/{t}")),
        token.map(lambda t: ("GET", f"/confirm/{t}")),
        token.map(lambda t: ("POST", f"/confirm/{t}")),
    )


def survey_routes(scene: Scene) -> st.SearchStrategy[tuple[str, str]]:
    token = segment(scene.survey_token)
    return st.one_of(
        token.map(lambda t: ("GET", f"/s/{t}")),
        token.map(lambda t: ("POST", f"/s/{t}")),
        token.map(lambda t: ("POST", f"/v1/surveys/{t}")),
    )


async def send(
    client: httpx.AsyncClient,
    route: tuple[str, str],
    *,
    qs: str,
    body: tuple[bytes, str | None],
    auth: str | None,
) -> httpx.Response:
    method, path = route
    headers: dict[str, Any] = {}
    if body[1] is not None:
        headers["content-type"] = body[1]
    if auth is not None:
        headers["authorization"] = auth.encode("latin-1")
    url = f"{path}?{qs}" if qs else path
    return await client.request(method, url, content=body[0] or None, headers=headers)


FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=st.data())
async def test_no_desk_route_answers_5xx_but_503(scene: Scene, data: st.DataObject) -> None:
    route = data.draw(desk_routes(scene), label="route")
    r = await send(
        scene.desk,
        route,
        qs=data.draw(query(), label="query"),
        body=data.draw(bodies(), label="body"),
        auth=data.draw(authorization, label="authorization"),
    )
    assert r.status_code < 500 or r.status_code == 503, (route, r.status_code, r.text[:300])


@FUZZ
@given(data=st.data())
async def test_no_survey_route_answers_5xx_but_503(scene: Scene, data: st.DataObject) -> None:
    route = data.draw(survey_routes(scene), label="route")
    r = await send(
        scene.survey,
        route,
        qs=data.draw(query(), label="query"),
        body=data.draw(bodies(), label="body"),
        auth=None,
    )
    assert r.status_code < 500 or r.status_code == 503, (route, r.status_code, r.text[:300])
