"""Warm-start the early warning's baseline from ticket history older than Kafka keeps:
`python -m services.incident.baseline < tickets.jsonl`.

Each line is one past ticket, `{"created_at": "2026-10-05T09:12:00+08:00", "channel": "app",
"course_id": "PY101", "category": "technical"}` (course and category may be null), e.g. desk's
tickets exported with psql (README, "incident"). Only hours before the first hour the service
holds are added: the hours it counted from careloop.tickets.v1 itself are never counted twice,
so the import may run before or after the service first started, and again.
"""

import asyncio
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

import asyncpg
import msgspec

from services.incident import repo
from services.incident.handlers import hour_of
from services.incident.settings import IncidentSettings
from shared.events import Category, Channel

Key = tuple[str, str, datetime]


class PastTicket(msgspec.Struct, frozen=True, kw_only=True):
    created_at: datetime
    channel: Channel
    course_id: str | None = None
    category: Category | None = None


_DECODER = msgspec.json.Decoder(PastTicket)


class BadLine(ValueError):
    """A line that is not a past ticket, naming the line and what is wrong."""


def hourly(lines: Iterable[str], *, before: datetime | None) -> Counter[Key]:
    """The tickets per (dimension, value, hour) of `lines`, only hours before `before`."""
    counts: Counter[Key] = Counter()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            ticket = _DECODER.decode(line)
        except msgspec.ValidationError as exc:
            raise BadLine(f"line {number}: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise BadLine(f"line {number}: not JSON ({exc})") from exc
        if ticket.created_at.tzinfo is None:
            raise BadLine(f"line {number}: created_at has no time zone")
        hour = hour_of(ticket.created_at)
        if before is not None and hour >= before:
            continue
        counts["channel", ticket.channel.value, hour] += 1
        if ticket.course_id:
            counts["course", ticket.course_id, hour] += 1
        if ticket.category:
            counts["category", ticket.category.value, hour] += 1
    return counts


async def load(lines: Iterable[str], settings: IncidentSettings) -> int:
    """Add the history to the baseline; returns how many hourly counts it added to."""
    conn = await asyncpg.connect(
        settings.for_service("incident").pg_dsn.get_secret_value(),
        server_settings={"search_path": "incident"},
    )
    try:
        async with conn.transaction():
            counts = hourly(lines, before=await repo.tickets.history_start(conn))
            await repo.tickets.count_hourly(conn, counts)
    finally:
        await conn.close()
    return len(counts)


def main() -> None:
    try:
        added = asyncio.run(load(sys.stdin, IncidentSettings()))
    except BadLine as exc:
        sys.exit(f"nothing imported: {exc}")
    print(f"{added} hourly counts added to the baseline")


if __name__ == "__main__":
    main()
