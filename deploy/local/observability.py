"""Prometheus and Alertmanager for a local run: their configuration, the rules they load, argv.

Prometheus scrapes every careloop service's /metrics (job name = service name) and evaluates
the shipped rules in deploy/prometheus/rules; Alertmanager sends every alert by e-mail to the
stack's SMTP sink, so a newcomer sees an alert arrive in var/mail. Everything is generated
under the stack's var/ folder at start from the ports in force; nothing here is for production
(docker-compose.yml and deploy/k8s carry their own).
"""

import importlib
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"

# Where alerts go: the SMTP sink keeps every message, whatever the address.
ALERT_FROM = "careloop-alerts@careloop.localhost"
ALERT_TO = "oncall@careloop.localhost"

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """A Prometheus duration (`90s`, `1h30m`) in seconds; ValueError for anything else."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _SECONDS[u] for n, u in parts)


PROCFILE = ROOT / "deploy" / "local" / "Procfile"


def services() -> list[str]:
    """The careloop services the local run starts (`python -m services.<name>` in the
    Procfile), so that Prometheus expects exactly those."""
    return sorted(re.findall(r"^\w+: python -m services\.(\w+)$", PROCFILE.read_text(), re.M))


def service_ports() -> dict[str, int]:
    """Each service's HTTP port as the service itself reads it (CARELOOP_<SERVICE>_HTTP_PORT,
    else its default), so the scrape targets follow whatever the run set."""
    ports = {}
    for name in services():
        module = importlib.import_module(f"services.{name}.settings")
        settings_class = next(
            value
            for value in vars(module).values()
            if isinstance(value, type) and "http_port" in getattr(value, "model_fields", {})
        )
        ports[name] = int(settings_class().http_port)
    return ports


@dataclass(frozen=True)
class Observability:
    """The two processes of one stack: where they listen, keep data and send mail."""

    folder: Path
    prometheus_port: int
    alertmanager_port: int
    smtp_port: int
    interval: str = "5s"  # scrape and rule evaluation, short for a local run
    # Longest `for:` a local alert waits; None keeps the shipped rules' own.
    alert_for: str | None = None

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def prometheus_config(
        self, targets: Mapping[str, int], *, metrics_token: str | None = None
    ) -> dict[str, Any]:
        """One scrape job per service, named after it, and the local copy of the rules."""
        auth = {"authorization": {"credentials": metrics_token}} if metrics_token else {}
        return {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(self.folder / "rules" / "*.yml")],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{self.alertmanager_port}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": name,
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                    **auth,
                }
                for name, port in sorted(targets.items())
            ],
        }

    def alertmanager_config(self) -> dict[str, Any]:
        """Every alert by e-mail to the SMTP sink, grouped per alert and team, sent at once."""
        return {
            "global": {
                "smtp_smarthost": f"127.0.0.1:{self.smtp_port}",
                "smtp_from": ALERT_FROM,
                "smtp_require_tls": False,
            },
            "route": {
                "receiver": "oncall",
                "group_by": ["alertname", "team"],
                "group_wait": "1s",
                "group_interval": "10s",
                "repeat_interval": "4h",
            },
            "receivers": [
                {"name": "oncall", "email_configs": [{"to": ALERT_TO, "send_resolved": True}]}
            ],
        }

    def write_prometheus(
        self, targets: Mapping[str, int], *, metrics_token: str | None = None
    ) -> None:
        """Prometheus' configuration and the local copy of the rules, replacing an earlier
        run's."""
        (self.folder / "prometheus-data").mkdir(parents=True, exist_ok=True)
        rules = self.folder / "rules"
        shutil.rmtree(rules, ignore_errors=True)
        rules.mkdir(parents=True)
        for source in sorted(RULES_DIR.glob("*.yml")):
            groups = yaml.safe_load(source.read_text())
            (rules / source.name).write_text(yaml.safe_dump(self.local_rules(groups)))
        (self.folder / "prometheus.yml").write_text(
            yaml.safe_dump(self.prometheus_config(targets, metrics_token=metrics_token))
        )

    def write_alertmanager(self) -> None:
        (self.folder / "alertmanager-data").mkdir(parents=True, exist_ok=True)
        (self.folder / "alertmanager.yml").write_text(yaml.safe_dump(self.alertmanager_config()))

    def local_rules(self, groups: dict[str, Any]) -> dict[str, Any]:
        """The shipped rules with each group evaluated at the local interval and, with
        `alert_for`, no alert waiting longer than it; the shipped files stay as they are."""
        local = []
        for group in groups.get("groups", []):
            group = {**group, "interval": self.interval}
            rules = []
            for rule in group.get("rules", []):
                if (
                    self.alert_for is not None
                    and "for" in rule
                    and seconds(rule["for"]) > seconds(self.alert_for)
                ):
                    rule = {**rule, "for": self.alert_for}
                rules.append(rule)
            local.append({**group, "rules": rules})
        return {"groups": local}

    def prometheus_argv(self) -> list[str]:
        return [
            PROMETHEUS,
            f"--config.file={self.folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.folder / 'prometheus-data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
        ]

    def alertmanager_argv(self) -> list[str]:
        return [
            ALERTMANAGER,
            f"--config.file={self.folder / 'alertmanager.yml'}",
            f"--storage.path={self.folder / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
            "--cluster.listen-address=",  # one instance: no gossip port
        ]


def metrics_token() -> str | None:
    """The bearer token the services' /metrics want, when the run set one."""
    return os.environ.get("CARELOOP_METRICS_TOKEN") or None
