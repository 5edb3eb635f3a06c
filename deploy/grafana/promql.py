"""The PromQL the dashboards run, and a check of it by Prometheus' own parser (promtool)."""

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Grafana fills these in before it sends a query; a stand-in of the same kind keeps the
# expression valid PromQL. Dashboard variables appear only inside =~"..." matchers.
_GRAFANA_DURATION = re.compile(r"\$__(?:rate_interval|interval|range)\b")
_DASHBOARD_VARIABLE = re.compile(r"\$(?:\{\w+\}|\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*\w+\)$")


@dataclass(frozen=True, slots=True)
class Expression:
    """One query of one dashboard: `record` names it as a valid Prometheus rule name."""

    record: str
    where: str
    promql: str


def concrete(expr: str) -> str:
    """`expr` as Prometheus would receive it from Grafana, variables filled in."""
    return _DASHBOARD_VARIABLE.sub(".*", _GRAFANA_DURATION.sub("5m", expr))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def expressions(dashboard: dict[str, Any]) -> list[Expression]:
    """Every panel query and every variable's series selector of `dashboard`, concrete."""
    uid = dashboard["uid"]
    prefix = "grafana:" + uid.replace("-", "_")
    found = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"]
        label_values = _LABEL_VALUES.match(query)
        if label_values is None:
            raise ValueError(f"{uid}: variable {variable['name']}: not label_values(): {query}")
        found.append(
            Expression(
                record=f"{prefix}:variable_{variable['name']}",
                where=f"{uid} variable {variable['name']}",
                promql=concrete(label_values["selector"]),
            )
        )
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            found.append(
                Expression(
                    record=f"{prefix}:panel_{panel['id']}_{target['refId']}",
                    where=f"{uid} panel {panel['id']} {panel['title']!r} query {target['refId']}",
                    promql=concrete(target["expr"]),
                )
            )
    return found


def check(found: list[Expression]) -> subprocess.CompletedProcess[str]:
    """Run `promtool check rules` on `found` written as recording rules: Prometheus' own
    parser, so an expression Grafana would send and Prometheus refuse fails here."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise RuntimeError("promtool is not installed (Debian package: prometheus)")
    rules = {
        "groups": [
            {
                "name": "grafana-dashboards",
                "rules": [{"record": e.record, "expr": e.promql} for e in found],
            }
        ]
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboards.rules.yml"
        path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
        return subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
