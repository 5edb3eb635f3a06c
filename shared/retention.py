"""Retention of personal data (R7.3), as every service that keeps some runs it: the settings,
the scheduled loop, and how a text or a person is made anonymous.

Each service has its own job (`run_once`: one round, one set-based statement per table, in a
batch), and runs it with `scheduled`. A round only touches what is settled and older than the
retention period, and marks or empties what it did, so a second round changes nothing. The
pseudonym is the same in every service for the same ticket, so records still join up.
"""

import hashlib
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import structlog
from pydantic import AliasChoices, Field

from shared.events import now
from shared.service import Context, every

log = structlog.get_logger(__name__)

BATCH = 200
DEFAULT_DAYS = 730


def days_setting(group: str) -> Any:
    """The `retention_days` setting of service `group`: CARELOOP_<GROUP>_RETENTION_DAYS, else
    desk's CARELOOP_DESK_RETENTION_DAYS, so one value set for desk holds for every service."""
    return Field(
        DEFAULT_DAYS,
        gt=0,
        validation_alias=AliasChoices(
            f"CARELOOP_{group}_RETENTION_DAYS".upper(), "CARELOOP_DESK_RETENTION_DAYS"
        ),
        description=f"This many days after a ticket (or a learner) is settled, {group}'s "
        "personal data of it is pseudonymised or purged (R7.3); unset: desk's "
        "CARELOOP_DESK_RETENTION_DAYS, else 730.",
    )


def interval_setting(group: str) -> Any:
    """The `retention_interval_seconds` setting of service `group`."""
    return Field(
        3600,
        gt=0,
        validation_alias=AliasChoices(f"CARELOOP_{group}_RETENTION_INTERVAL_SECONDS".upper()),
        description=f"How often {group} pseudonymises or purges the personal data that is due.",
    )


class RetentionSettings(Protocol):
    retention_days: float
    retention_interval_seconds: float


# One round of a service's job: given a connection in a transaction and the moment before which
# settled data is due, at most `limit` rows a table; how many rows of each table it changed.
Round = Callable[[asyncpg.Connection, datetime, int], Awaitable[Mapping[str, int]]]


async def keep(
    pool: asyncpg.Pool,
    settings: RetentionSettings,
    run_once: Round,
    *,
    what: str,
    limit: int = BATCH,
) -> None:
    """Run `run_once` forever, each round in its own transaction: again at once while a table
    had a full batch, else after the interval."""

    async def step() -> bool:
        expired = now() - timedelta(days=settings.retention_days)
        async with pool.acquire() as conn, conn.transaction():
            counts = await run_once(conn, expired, limit)
        if any(counts.values()):
            log.info("retention", service=what, **counts)
        return any(n >= limit for n in counts.values())

    await every(settings.retention_interval_seconds, step, what=f"{what} retention")


def scheduled(run_once: Round, *, what: str) -> Callable[[Context[Any]], Coroutine[Any, Any, None]]:
    """The service's background task that keeps `run_once` running."""

    async def retention(ctx: Context[Any]) -> None:
        await keep(ctx.pool, ctx.settings, run_once, what=what)

    return retention


EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d ()-]{6,}\d(?![\w])")


def masked(text: str) -> str:
    """A text without the e-mail addresses and phone numbers it carries."""
    return _PHONE.sub("[phone]", EMAIL.sub("[email]", text))


def pseudonym(key: UUID) -> str:
    """The name a learner goes by once their personal data is gone: stable per ticket (or
    per row, where there is no ticket), and telling nothing about them."""
    return "learner-" + hashlib.sha256(key.bytes).hexdigest()[:10]


async def mask_texts(
    conn: asyncpg.Connection,
    *,
    table: str,
    keys: Mapping[str, str],
    columns: Sequence[str],
    where: str,
    args: Sequence[Any],
) -> int:
    """Mask the text `columns` of `table`'s rows that `where` (with `args`) picks, in one
    statement; `keys` names the columns that identify a row, with their types. Only rows that
    change are written; returns how many. Names come from code, never from input."""
    key_names = list(keys)
    rows = await conn.fetch(
        f"SELECT {', '.join([*key_names, *columns])} FROM {table} WHERE {where}", *args
    )
    changed = [r for r in rows if any(r[c] is not None and masked(r[c]) != r[c] for c in columns)]
    if not changed:
        return 0
    names = [*key_names, *columns]
    types = [*keys.values(), *["text"] * len(columns)]
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    await conn.execute(
        f"""
        UPDATE {table} x SET {", ".join(f"{c} = r.{c}" for c in columns)}
        FROM unnest({arrays}) AS r({", ".join(names)})
        WHERE {" AND ".join(f"x.{k} = r.{k}" for k in key_names)}
        """,
        *[[r[k] for r in changed] for k in key_names],
        *[[None if r[c] is None else masked(r[c]) for r in changed] for c in columns],
    )
    return len(changed)
