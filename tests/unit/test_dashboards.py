"""The generated Grafana dashboards: PromQL Prometheus accepts, and panels a reader can trust."""

import importlib
import json
import pkgutil
import re
from pathlib import Path
from typing import Any

import prometheus_client
import promql_parser
import pytest
import yaml

from deploy.grafana import promql, provisioning

BOARDS = provisioning.dashboards()
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range"}
# The incident service's own bookkeeping of the learner snapshots it consumes, not a reading of
# an incident.
NOT_INCIDENT_READINGS = {"careloop_incident_learner_snapshots_total"}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


@pytest.mark.parametrize("board", BOARDS, ids=[b["uid"] for b in BOARDS])
def test_every_query_parses_in_prometheus(board: dict[str, Any]) -> None:
    found = promql.expressions(board)
    result = promql.check(found)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(found)} rules found" in result.stdout


def test_the_check_fails_on_a_query_prometheus_refuses() -> None:
    broken = promql.Expression(
        record="grafana:test:panel_1_A",
        where="test",
        promql="sum by (team) (rate(careloop_tickets_created_total[5m])",
    )
    result = promql.check([broken])
    assert result.returncode != 0
    assert "grafana:test:panel_1_A" in result.stdout + result.stderr


def test_grafana_variables_are_filled_in_as_prometheus_would_receive_them() -> None:
    assert (
        promql.concrete('rate(x{team=~"$team", channel=~"${channel}"}[$__rate_interval])')
        == 'rate(x{team=~".*", channel=~".*"}[5m])'
    )


@pytest.mark.parametrize("board", BOARDS, ids=[b["uid"] for b in BOARDS])
def test_panel_ids_are_unique_within_a_dashboard(board: dict[str, Any]) -> None:
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), ids


@pytest.mark.parametrize("board", BOARDS, ids=[b["uid"] for b in BOARDS])
def test_every_panel_has_a_title_a_unit_a_reading_guide_and_a_query(
    board: dict[str, Any],
) -> None:
    for panel in panels(board):
        assert panel["title"], panel
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert len(panel.get("description", "")) > 40, panel["title"]
        assert panel["targets"], panel["title"]


@pytest.mark.parametrize("board", BOARDS, ids=[b["uid"] for b in BOARDS])
def test_panels_query_the_prometheus_the_datasource_variable_picks(
    board: dict[str, Any],
) -> None:
    for panel in panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert {t["datasource"]["uid"] for t in panel["targets"]} == {"${datasource}"}


@pytest.mark.parametrize("board", BOARDS, ids=[b["uid"] for b in BOARDS])
def test_every_variable_a_query_uses_is_defined_on_its_dashboard(board: dict[str, Any]) -> None:
    defined = {v["name"] for v in board["templating"]["list"]} | GRAFANA_BUILTINS
    for panel in panels(board):
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)\}?", target["expr"]))
            assert used <= defined, (panel["title"], used - defined)


def test_dashboards_have_distinct_uids_and_titles() -> None:
    assert len({b["uid"] for b in BOARDS}) == len({b["title"] for b in BOARDS}) == len(BOARDS) == 5


def test_the_build_writes_what_grafana_provisions(tmp_path: Path) -> None:
    written = provisioning.write(
        tmp_path,
        prometheus_url="http://prometheus.example:9090",
        dashboards_path="/careloop/dashboards",
        scrape_interval="5s",
    )
    assert all(p.is_relative_to(tmp_path) for p in written)
    [source] = yaml.safe_load(
        (tmp_path / "provisioning" / "datasources" / "careloop.yaml").read_text()
    )["datasources"]
    assert source["type"] == "prometheus" and source["name"] == "Prometheus"
    assert source["url"] == "http://prometheus.example:9090"
    assert source["jsonData"] == {"timeInterval": "5s"}
    [provider] = yaml.safe_load(
        (tmp_path / "provisioning" / "dashboards" / "careloop.yaml").read_text()
    )["providers"]
    assert provider["type"] == "file" and provider["options"] == {"path": "/careloop/dashboards"}
    files = sorted((tmp_path / "dashboards").glob("*.json"))
    assert [json.loads(f.read_text())["uid"] + ".json" for f in files] == [f.name for f in files]
    assert {f.stem for f in files} == {b["uid"] for b in BOARDS}


def incident_families() -> set[str]:
    """The careloop_incident_* families the incident service's modules declare, as its /metrics
    page names them (less prometheus_client's <counter>_created gauges: a start time)."""
    package = importlib.import_module("services.incident")
    for module in pkgutil.walk_packages(package.__path__, "services.incident."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    page = prometheus_client.generate_latest().decode()
    declared = re.findall(r"^# TYPE (careloop_incident_\w+) \w+$", page, re.M)
    return {name for name in declared if not name.endswith("_created")}


def selected(expr: str) -> set[str]:
    found: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_the_incidents_dashboard_shows_every_reading_of_the_incident_service() -> None:
    (board,) = [b for b in BOARDS if b["uid"] == "careloop-incidents"]
    shown = set().union(*(selected(e.promql) for e in promql.expressions(board)))
    families = incident_families()
    assert families > NOT_INCIDENT_READINGS
    assert sorted(families - NOT_INCIDENT_READINGS - shown) == []
