"""`python -m deploy.grafana build OUT` writes the provisioned dashboards; `check` parses their PromQL."""

import argparse
import sys
from pathlib import Path

from deploy.grafana import promql, provisioning


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.grafana", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build", help="write dashboards/*.json and provisioning/*/careloop.yaml under OUT"
    )
    build.add_argument("out", type=Path, help="output directory (created if missing)")
    build.add_argument(
        "--prometheus-url",
        default="http://prometheus:9090",
        help="the Prometheus Grafana queries (default: %(default)s, compose's)",
    )
    build.add_argument(
        "--dashboards-path",
        default="/careloop/dashboards",
        help="where Grafana sees OUT/dashboards (default: %(default)s)",
    )
    build.add_argument(
        "--scrape-interval",
        default="15s",
        help="Prometheus' scrape interval, for Grafana's $__rate_interval (default: %(default)s)",
    )
    commands.add_parser(
        "check", help="parse every dashboard query with promtool (Prometheus' own parser)"
    )
    args = parser.parse_args()
    if args.command == "build":
        for path in provisioning.write(
            args.out,
            prometheus_url=args.prometheus_url,
            dashboards_path=args.dashboards_path,
            scrape_interval=args.scrape_interval,
        ):
            print(path)
        return 0
    found = [e for board in provisioning.dashboards() for e in promql.expressions(board)]
    result = promql.check(found)
    print(result.stdout + result.stderr, end="")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
