"""Every route of every service, read from its /openapi.json, fuzzed over HTTP with any unicode
(NUL, lone surrogates as JSON escapes or raw bytes, huge strings, wrong types) in path, query and
body, with and without a valid token: the answer is never a 5xx other than 503."""

import json
from functools import cache

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chaos.domain import Operation, encode_body, operations, url_quote
from tests.e2e.conftest import AGENTS, PORTS, Platform
from tests.support import SERVICES

EXAMPLES_PER_ROUTE = 60
TOKENS = [f"Bearer {a['token']}" for a in yaml.safe_load(AGENTS.read_text())["agents"]]

texts = st.text(
    st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=60
)
nasty = st.sampled_from(["\x00", "\ud800", "\udfff", "\r\n", "\u202e", "\ufeff", "%00", "../"])
huge = st.builds(
    lambda c, n: c * n, st.sampled_from(["x", "账", "\x00"]), st.sampled_from([20_001, 300_000])
)
strings = st.one_of(texts, nasty, huge, st.uuids().map(str), st.from_regex(r"\A[a-z]{1,12}\Z"))
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
segments = st.one_of(texts, nasty, st.uuids().map(str), st.from_regex(r"\A[a-z]{1,12}\Z"))
auth = st.sampled_from([None, "Bearer not-a-token", "Basic eDp5", *TOKENS])


# Served by every service whether or not its OpenAPI document lists them; the last stands
# for any path the service does not know.
PLUMBING = tuple(
    Operation("GET", path, query, None)
    for path, query in (
        ("/healthz", ()),
        ("/metrics", ()),
        ("/docs", ()),
        ("/openapi.json", ()),
        ("/{anything}", ("q",)),
    )
)


@cache
def routes(service: str) -> tuple[Operation, ...]:
    spec = httpx.get(f"http://127.0.0.1:{PORTS[service]}/openapi.json", timeout=10).json()
    documented = tuple(operations(spec))
    known = {(op.method, op.path) for op in documented}
    return documented + tuple(op for op in PLUMBING if (op.method, op.path) not in known)


def request_for(op: Operation, data: st.DataObject) -> tuple[str, dict[str, str], bytes | None]:
    path = op.path
    while "{" in path:
        head, rest = path.split("{", 1)
        path = head + (url_quote(data.draw(segments)) or "x") + rest.split("}", 1)[1]
    query = [f"{q}={url_quote(data.draw(segments))}" for q in op.query if data.draw(st.booleans())]
    if query:
        path += "?" + "&".join(query)
    headers = {"content-type": op.content_type}
    if token := data.draw(auth):
        headers["authorization"] = token
    body = None
    if op.body_fields is not None:
        fields = {f: values for f in op.body_fields}
        shape = st.one_of(st.fixed_dictionaries({}, optional=fields), values)
        body = encode_body(data.draw(shape), op.content_type)
    return path, headers, body


def fuzz(client: httpx.Client, op: Operation) -> None:
    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        path, headers, body = request_for(op, data)
        r = client.request(op.method, path, content=body, headers=headers)
        assert r.status_code < 500 or r.status_code == 503, (
            f"{r.status_code} for {op.method} {path[:300]} body {(body or b'')[:300]!r}: "
            f"{r.text[:200]}"
        )

    check()


@pytest.mark.parametrize("service", SERVICES)
def test_no_route_answers_a_5xx_but_503_to_hostile_input(platform: Platform, service: str) -> None:
    failures: list[str] = []
    with httpx.Client(base_url=platform.url(service), timeout=30) as client:
        for op in routes(service):
            try:
                fuzz(client, op)
            except AssertionError as exc:
                failures.append(f"{service} {op.method} {op.path}: {str(exc).splitlines()[0]}")
    assert not failures, json.dumps(failures, indent=1, ensure_ascii=False)
