"""Integration fixtures: one private stack for this package, a fresh schema per test."""

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from shared.db import create_pool
from shared.plumbing import plumbing_sql
from shared.settings import CommonSettings
from tests.support import RunningStack, port, running_stack


@pytest.fixture(scope="package")
def stack() -> Iterator[RunningStack]:
    # The consumers this process starts join as quickly as the stack's services do (Tansu holds
    # a new member's join for half the session timeout: 3 s at the default 6000).
    with running_stack(port(22000)) as s, pytest.MonkeyPatch.context() as env:
        env.setenv("CARELOOP_KAFKA_SESSION_TIMEOUT_MS", s.env["CARELOOP_KAFKA_SESSION_TIMEOUT_MS"])
        yield s


@pytest.fixture(scope="package")
def settings(stack: RunningStack) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap=stack.bootstrap,
        pg_dsn=stack.dsn,  # type: ignore[arg-type]
        redis_url=stack.redis_url,
    )


@pytest.fixture
async def schema(stack: RunningStack) -> AsyncIterator[str]:
    """A throwaway schema with the standard outbox and inbox, plus an `effects` table."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
        await conn.execute(plumbing_sql(name))
        await conn.execute(
            f"CREATE TABLE {name}.effects (event_id uuid NOT NULL, label text NOT NULL)"
        )
        yield name
    finally:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
        await conn.close()


@pytest.fixture
async def pool(stack: RunningStack, schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(stack.dsn, schema=schema)
    yield pool
    await pool.close()
