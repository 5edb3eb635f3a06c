"""`python -m services.desk.corrections [--since DATE] [--out FILE]`: agents' triage
corrections as triage corpus lines (data/triage/*.jsonl), for the next training run.

Each ticket a person re-triaged becomes one example with the category and priority it ended
with, its text, channel and language, and the learner's situation when it was created (tier,
minutes to the next class or exam). Run it against desk's database (CARELOOP_DESK_PG_DSN, or
in a local run `eval "$(python -m deploy.local.stack env)"` first), read the lines, keep them
in a new file under data/triage/, then `python -m services.routing.triage train evaluate`.
"""

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from services.desk.settings import DeskSettings
from shared.db import create_pool

_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{3,}")


def language_of(text: str) -> str:
    """zh, en, or mixed when a Chinese text carries English words too."""
    if not _CJK.search(text):
        return "en"
    return "mixed" if len(_LATIN_WORD.findall(text)) >= 2 else "zh"


def _minutes_until(moments: Sequence[Any], since: datetime, key: str) -> int | None:
    ahead = [
        int((at - since).total_seconds() // 60)
        for m in moments
        if (at := _when(m.get(key))) is not None and at >= since
    ]
    return min(ahead) if ahead else None


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    at = datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def example(row: dict[str, Any]) -> dict[str, Any]:
    """One corrected ticket as a corpus line (the format services/routing/triage reads)."""
    context = row["learner_context"] or {}
    created: datetime = row["created_at"]
    text = f"{row['subject']}\n{row['description']}"
    return {
        "id": f"correction-{row['number']}",
        "channel": row["channel"] if row["channel"] != "service" else "web",
        "language": language_of(text),
        "subject": row["subject"],
        "description": row["description"],
        "context": {
            "tier": context.get("tier", "standard"),
            "next_class_in_minutes": _minutes_until(
                context.get("courses", ()), created, "next_class_at"
            ),
            "next_exam_in_minutes": _minutes_until(context.get("exams", ()), created, "at"),
        },
        "category": row["category"],
        "priority": row["priority"],
        "reason": f"agent correction by {row['actor']}: {row['reason']}",
    }


async def corrections(conn: asyncpg.Connection, since: date | None) -> list[dict[str, Any]]:
    """Every re-triaged ticket once, with its latest correction, oldest first."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (t.ticket_id)
               t.number, t.channel, t.subject, t.description, t.category, t.priority,
               t.learner_context, t.created_at, h.actor, h.detail->>'reason' AS reason, h.at
        FROM history h JOIN tickets t USING (ticket_id)
        WHERE h.kind = 'retriaged' AND ($1::date IS NULL OR h.at >= $1::date)
        ORDER BY t.ticket_id, h.at DESC
        """,
        since,
    )
    return [example(dict(r)) for r in sorted(rows, key=lambda r: r["at"])]


async def _read(since: date | None) -> list[dict[str, Any]]:
    settings = DeskSettings().for_service("desk")
    pool = await create_pool(settings.pg_dsn.get_secret_value(), schema="desk", max_size=1)
    try:
        async with pool.acquire() as conn:
            return await corrections(conn, since)
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.desk.corrections")
    parser.add_argument("--since", type=date.fromisoformat, help="only corrections from DATE")
    parser.add_argument("--out", help="append to this file (default: standard output)")
    args = parser.parse_args()
    lines = asyncio.run(_read(args.since))
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    print(f"{len(lines)} corrected tickets", file=sys.stderr)


if __name__ == "__main__":
    main()
