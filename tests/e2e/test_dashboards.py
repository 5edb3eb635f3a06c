"""Every series the Grafana dashboards query is one careloop really exports.

Compared with the live /metrics of every service of the e2e stack, the recording rules in
deploy/prometheus/rules and the two series Prometheus makes itself (up, ALERTS): a renamed
metric or a typo in a panel fails here instead of showing an empty panel in production."""

import re
import uuid
from pathlib import Path

import httpx
import promql_parser
import yaml

from deploy.grafana import promql, provisioning
from tests.e2e.conftest import Platform
from tests.support import eventually

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
PROMETHEUS_MADE = {"up", "ALERTS"}
# The series a family of each type is exposed as (prometheus_client's text format: a counter's
# TYPE line already carries _total).
SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.MULTILINE)


def exposed(text: str) -> set[str]:
    """The series names a /metrics page exposes, declared families included even before
    their first sample (a labelled counter nothing has counted yet is still exported)."""
    declared = {name + s for name, kind in _TYPE.findall(text) for s in SUFFIXES.get(kind, ("",))}
    return declared | set(_SAMPLE.findall(text))


def recorded() -> set[str]:
    """The names the recording rules in deploy/prometheus/rules give Prometheus."""
    names = set()
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def series_names(expr: str) -> set[str]:
    """The metric names an expression selects, read by a PromQL parser."""
    found: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name: {expr}"
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


async def test_every_series_a_dashboard_uses_is_exported_or_recorded(platform: Platform) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        submitted = await client.post(
            f"{platform.url('intake')}/v1/tickets",
            json={
                "name": "刘洋",
                "email": "liuyang@example.com",
                "subject": "直播课进不去",
                "description": "点击进入直播间一直转圈，已经换了浏览器还是不行",
                "external_id": f"web-{uuid.uuid4()}",
            },
        )
        assert submitted.status_code == 202

        async def counted() -> re.Match[str] | None:
            text = (await client.get(f"{platform.url('metrics')}/metrics")).text
            return re.search(r'^careloop_tickets_created_total\{[^}]*channel="web"', text, re.M)

        await eventually(counted, timeout=60)
        pages = [
            (await client.get(f"{platform.url(name)}/metrics")).text for name in platform.services
        ]

    known = set().union(*map(exposed, pages)) | recorded() | PROMETHEUS_MADE
    unknown = {
        f"{e.where}: {name}"
        for board in provisioning.dashboards()
        for e in promql.expressions(board)
        for name in series_names(e.promql)
        if name not in known
    }
    assert not unknown, "\n".join(sorted(unknown))


def test_series_names_are_read_from_the_whole_expression() -> None:
    assert series_names(
        "histogram_quantile(0.9, sum by (le) (rate(a_seconds_bucket[5m])))"
        " / on() group_left b offset 1h or vector(0)"
    ) == {"a_seconds_bucket", "b"}


def test_a_declared_family_counts_as_exposed_before_its_first_sample() -> None:
    page = (
        "# HELP h_seconds Time.\n# TYPE h_seconds histogram\n"
        "# HELP c_total Things.\n# TYPE c_total counter\n"
        'g{team="x"} 1.0\n'
    )
    assert exposed(page) == {"h_seconds_bucket", "h_seconds_count", "h_seconds_sum", "c_total", "g"}
