"""The local run's Prometheus and Alertmanager configuration (deploy/local/observability.py)."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.observability import RULES_DIR, Observability, seconds, services

TARGETS = {"intake": 18081, "desk": 18082}


def local(tmp_path: Path, alert_for: str | None = "1m") -> Observability:
    return Observability(
        folder=tmp_path,
        prometheus_port=19090,
        alertmanager_port=19093,
        smtp_port=11025,
        alert_for=alert_for,
    )


def tool(name: str) -> str:
    found = shutil.which(name, path="/usr/bin")
    if found is None:
        pytest.fail(f"{name} is missing: bin/careloop test installs Debian's prometheus packages")
    return found


def test_durations_read_as_prometheus_writes_them() -> None:
    assert seconds("90s") == 90
    assert seconds("1h30m") == 5400
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        seconds("5 minutes")


def test_local_alerts_wait_no_longer_than_the_cap_and_shorter_ones_keep_theirs(
    tmp_path: Path,
) -> None:
    shipped: dict[str, Any] = {
        "groups": [
            {
                "name": "g",
                "interval": "1m",
                "rules": [
                    {"alert": "Slow", "expr": "up == 0", "for": "15m"},
                    {"alert": "Quick", "expr": "up == 0", "for": "30s"},
                    {"record": "job:up:sum", "expr": "sum by (job) (up)"},
                ],
            }
        ]
    }
    (group,) = local(tmp_path).local_rules(shipped)["groups"]
    assert group["interval"] == "5s"
    assert [r.get("for") for r in group["rules"]] == ["1m", "30s", None]
    assert shipped["groups"][0]["rules"][0]["for"] == "15m"


def test_without_a_cap_the_shipped_for_stays(tmp_path: Path) -> None:
    shipped = {
        "groups": [{"name": "g", "rules": [{"alert": "Slow", "expr": "up == 0", "for": "15m"}]}]
    }
    (group,) = local(tmp_path, alert_for=None).local_rules(shipped)["groups"]
    assert group["rules"][0]["for"] == "15m"


def test_every_service_is_a_job_of_its_name_with_the_token_when_set(tmp_path: Path) -> None:
    config = local(tmp_path).prometheus_config(TARGETS, metrics_token="s3cret")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["desk"]["static_configs"] == [{"targets": ["127.0.0.1:18082"]}]
    assert jobs["intake"]["authorization"] == {"credentials": "s3cret"}
    assert "authorization" not in local(tmp_path).prometheus_config(TARGETS)["scrape_configs"][0]


def test_the_local_run_scrapes_the_services_its_procfile_starts() -> None:
    assert {"intake", "desk", "routing", "notify", "survey", "metrics"} <= set(services())


def test_written_configs_and_rules_pass_promtool_and_amtool(tmp_path: Path) -> None:
    observability = local(tmp_path)
    observability.write_prometheus(TARGETS)
    observability.write_alertmanager()
    assert sorted(p.name for p in (tmp_path / "rules").glob("*.yml")) == sorted(
        p.name for p in RULES_DIR.glob("*.yml")
    )
    for argv in (
        [tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        [tool("amtool"), "check-config", str(tmp_path / "alertmanager.yml")],
    ):
        checked = subprocess.run(argv, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    routed = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    assert routed["global"]["smtp_smarthost"] == "127.0.0.1:11025"
