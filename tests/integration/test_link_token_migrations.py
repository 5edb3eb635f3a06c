"""The migrations that keep link tokens as digests hash the tokens already stored, so links
e-mailed before the upgrade still work."""

import hashlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import psycopg
import pytest
from yoyo import get_backend, read_migrations

from shared.migrate import SERVICES_DIR, yoyo_url
from tests.support import RunningStack

OLD = "dGhpcy1pcy1hbi1vbGQtcmF3LXRva2VuLTEyMw"


@pytest.fixture
async def database(stack: RunningStack) -> AsyncIterator[str]:
    """A database of its own, so that old migrations can run without touching the stack's."""
    name = f"mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(stack.dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield stack.dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


def apply(dsn: str, service: str, *, first: int | None = None) -> None:
    """Apply `service`'s migrations, only the `first` ones when given."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {service}")
    backend = get_backend(yoyo_url(dsn, service))
    migrations = read_migrations(str(SERVICES_DIR / service / "migrations"))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending[:first] if first is not None else pending)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_desk_s_migration_hashes_the_confirmation_tokens_already_stored(
    database: str,
) -> None:
    apply(database, "desk", first=2)
    conn = await asyncpg.connect(database)
    try:
        ticket_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO desk.tickets (ticket_id, channel, learner, subject, description, "
            "language, submitted_at, status, confirm_token) "
            "VALUES ($1, 'web', '{}', 's', 'd', 'en', now(), 'resolved', $2)",
            ticket_id,
            OLD,
        )
        apply(database, "desk")
        stored = await conn.fetchval(
            "SELECT confirm_token_sha256 FROM desk.tickets WHERE ticket_id = $1", ticket_id
        )
    finally:
        await conn.close()
    assert stored == digest(OLD)


async def test_survey_s_migration_hashes_sent_tokens_and_drops_unsent_ones(database: str) -> None:
    apply(database, "survey", first=2)
    conn = await asyncpg.connect(database)
    try:
        sent, unsent = uuid.uuid4(), uuid.uuid4()
        for survey_id, status, token in ((sent, "requested", OLD), (unsent, "scheduled", "x" * 32)):
            await conn.execute(
                "INSERT INTO survey.surveys (survey_id, ticket_id, resolution_event_id, token, "
                "status, due_at) VALUES ($1, $2, $3, $4, $5, now())",
                survey_id,
                uuid.uuid4(),
                uuid.uuid4(),
                token,
                status,
            )
        apply(database, "survey")
        rows = dict(await conn.fetch("SELECT survey_id, token_sha256 FROM survey.surveys"))
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'survey' AND table_name = 'surveys'"
        )
    finally:
        await conn.close()
    assert rows == {sent: digest(OLD), unsent: None}
    assert "token" not in {c["column_name"] for c in columns}
