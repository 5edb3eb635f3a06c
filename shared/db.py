"""The Postgres pool: one per process, JSON codecs set, connections opened with retries."""

import json
from typing import Any

import asyncpg
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

from shared.errors import is_transient


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: nothing more.

    asyncpg rolls back a transaction left open and drops listeners before this runs. Its
    default reset adds a round trip per use (`RESET ALL`, `UNLISTEN *`, releasing session
    advisory locks…) for state careloop never leaves on a pooled connection: session locks,
    LISTEN and session settings live on dedicated connections (the outbox relay, notify's
    listener), and pooled work uses `pg_advisory_xact_lock` and `SET LOCAL` only.
    """


@retry(
    retry=retry_if_exception(is_transient),
    wait=wait_exponential(multiplier=0.2, max=2),
    stop=stop_after_delay(60),
    reraise=True,
)
async def create_pool(dsn: str, *, schema: str, max_size: int = 8) -> asyncpg.Pool:
    """A pool whose search_path is the service's own schema, so SQL never names another's."""
    pool: Any = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"search_path": schema, "application_name": f"careloop-{schema}"},
    )
    return pool
