"""Writes the dashboards and the Grafana provisioning files that load them."""

import json
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from deploy.grafana.boards import DASHBOARDS

DATASOURCE_NAME = "Prometheus"
DATASOURCE_UID = "careloop-prometheus"
FOLDER = "careloop"


def dashboards() -> list[dict[str, Any]]:
    """Every dashboard as the JSON model Grafana stores."""
    return [json.loads(json.dumps(make().build(), cls=JSONEncoder)) for make in DASHBOARDS]


def write(
    out: Path, *, prometheus_url: str, dashboards_path: str, scrape_interval: str
) -> list[Path]:
    """Write dashboards/<uid>.json and provisioning/{datasources,dashboards}/careloop.yaml
    under `out`; `dashboards_path` is where Grafana will see out/dashboards.

    Grafana's $__rate_interval is at least four scrape intervals, so the datasource carries
    the real one: with Grafana's 15 s default and a slower scrape, rates would come out empty."""
    datasource = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": DATASOURCE_NAME,
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": scrape_interval},
            }
        ],
    }
    provider = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "careloop",
                "folder": FOLDER,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": dashboards_path},
            }
        ],
    }
    files = {
        out / "provisioning" / "datasources" / "careloop.yaml": yaml.safe_dump(
            datasource, sort_keys=False
        ),
        out / "provisioning" / "dashboards" / "careloop.yaml": yaml.safe_dump(
            provider, sort_keys=False
        ),
        **{
            out / "dashboards" / f"{board['uid']}.json": json.dumps(board, indent=2) + "\n"
            for board in dashboards()
        },
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
