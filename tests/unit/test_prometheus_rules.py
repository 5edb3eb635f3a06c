"""The Prometheus rules load, their promtool cases pass, and every alert is tested and documented.

promtool comes from Debian's `prometheus` package (`bin/careloop test` installs it); without it
these tests fail rather than skip, so CI cannot pass with the rules unchecked.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
# Each careloop service is scraped as the job of its name (compose, deploy/k8s, the local run).
SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/__main__.py"))
SEVERITIES = {"critical", "warning"}


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt-get install prometheus (bin/careloop test does)")
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]


def _alerts() -> list[dict[str, Any]]:
    return [r for r in _rules() if "alert" in r]


def _alert_cases() -> list[dict[str, Any]]:
    return [
        case
        for path in TEST_FILES
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", ())
    ]


def test_the_rule_files_are_valid() -> None:
    assert RULE_FILES
    done = _promtool("check", "rules", *RULE_FILES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_promtool_cases_pass() -> None:
    assert TEST_FILES
    done = _promtool("test", "rules", *TEST_FILES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_stays_quiet() -> None:
    cases = _alert_cases()
    for alert in _alerts():
        mine = [c for c in cases if c["alertname"] == alert["alert"]]
        assert any(c.get("exp_alerts") for c in mine), f"{alert['alert']} never fires in a test"
        assert any(not c.get("exp_alerts") for c in mine), f"{alert['alert']} is never quiet"


def test_every_alert_has_a_severity_and_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOKS.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    for alert in _alerts():
        assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
        runbook = alert["annotations"]["runbook_url"]
        assert runbook == f"docs/runbooks.md#{alert['alert'].lower()}", runbook
        assert alert["alert"].lower() in anchors, f"docs/runbooks.md has no ## {alert['alert']}"


def test_recording_rules_are_named_level_metric_operation() -> None:
    for rule in _rules():
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:careloop_[a-z_]+:[a-z0-9_]+", rule["record"]) or (
                re.fullmatch(r"careloop:[a-z_]+:[a-z0-9_]+", rule["record"])
            ), rule["record"]


def test_a_service_down_covers_every_service_failing_its_scrape_or_gone() -> None:
    """Every service, both ways: a target whose scrape fails (up == 0), and a job with no target
    at all (absent), which is what compose's DNS and Kubernetes discovery leave of a service
    whose every replica has stopped."""
    (alert,) = [a for a in _alerts() if a["alert"] == "CareloopServiceDown"]
    (failing,) = re.findall(r'up\{job=~"([a-z|]+)"\} == 0', alert["expr"])
    gone = re.findall(r'absent\(up\{job="([a-z]+)"\}\)', alert["expr"])
    assert sorted(failing.split("|")) == SERVICES
    assert sorted(gone) == SERVICES
