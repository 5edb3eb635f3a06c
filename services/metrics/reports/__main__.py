"""`python -m services.metrics.reports`: render a report for any range, or fill a local run
with a month of demo history.

    python -m services.metrics.reports render --from 2026-11-01 --to 2026-12-01 --out var/reports/
    python -m services.metrics.reports demo-history --days 45
"""

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from services.metrics.reports import demo
from services.metrics.reports.periods import custom
from services.metrics.reports.schedule import Made, make_report
from services.metrics.reports.settings import LANGUAGES, ReportSettings
from services.metrics.settings import MetricsSettings
from shared.db import create_pool


async def render_range(start: date, end: date, language: str | None) -> Made:
    settings = ReportSettings()
    if language:
        settings = settings.model_copy(update={"language": language})
    dsn = MetricsSettings().for_service("metrics").pg_dsn.get_secret_value()
    pool = await create_pool(dsn, schema="metrics", max_size=2)
    try:
        async with pool.acquire() as conn:
            return await make_report(conn, custom(start, end), settings, now=datetime.now(UTC))
    finally:
        await pool.close()


def write(made: Made, out: Path) -> list[Path]:
    period = made.report.period
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"careloop-{period.kind}-{period.start.isoformat()}-{period.end.isoformat()}"
    html, pdf = stem.with_suffix(".html"), stem.with_suffix(".pdf")
    html.write_text(made.html, encoding="utf-8")
    pdf.write_bytes(made.pdf)
    return [html, pdf]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.metrics.reports",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser(
        "render", help="render the report of [--from, --to) to HTML and PDF"
    )
    render.add_argument(
        "--from",
        dest="start",
        type=date.fromisoformat,
        required=True,
        help="first day, e.g. 2026-11-01 (local calendar)",
    )
    render.add_argument(
        "--to",
        dest="end",
        type=date.fromisoformat,
        required=True,
        help="first day after the range, e.g. 2026-12-01",
    )
    render.add_argument("--out", type=Path, default=Path("var/reports"), help="folder to write to")
    render.add_argument("--language", choices=LANGUAGES, help="default: CARELOOP_REPORTS_LANGUAGE")
    history = commands.add_parser(
        "demo-history", help="publish past tickets' events to the local run's Kafka"
    )
    history.add_argument("--days", type=int, default=45, help="how many days back, up to today")
    history.add_argument("--per-day", type=int, default=30, help="tickets per day, on average")
    history.add_argument("--seed", type=int, default=7, help="the same seed gives the same history")
    args = parser.parse_args(argv)
    if args.command == "render":
        if args.end <= args.start:
            parser.error(f"--to ({args.end}) must be after --from ({args.start})")
        made = asyncio.run(render_range(args.start, args.end, args.language))
        for path in write(made, args.out):
            print(path)
        return 0
    if args.days < 1 or args.per_day < 1:
        parser.error("--days and --per-day must be at least 1")
    published = asyncio.run(
        demo.publish_history(days=args.days, per_day=args.per_day, seed=args.seed)
    )
    print(f"published {published} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
