"""Each service's PostgreSQL role reaches only its own schema, and every login needs a password."""

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest

from deploy.local.harness import ROOT
from deploy.local.stack import DB_SERVICES
from shared.migrate import migrate
from tests.support import RunningStack, port


async def test_a_service_role_cannot_read_another_services_tables(stack: RunningStack) -> None:
    await asyncio.to_thread(migrate, stack.service_dsn("routing"), "routing")
    routing = await asyncpg.connect(stack.service_dsn("routing"))
    desk = await asyncpg.connect(stack.service_dsn("desk"))
    try:
        assert await routing.fetchval("SELECT count(*) FROM routing.agents") >= 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="schema routing"):
            await desk.fetch("SELECT * FROM routing.agents")
    finally:
        await routing.close()
        await desk.close()


async def test_a_wrong_password_is_refused(stack: RunningStack) -> None:
    wrong = stack.service_dsn("desk").replace("careloop_desk:", "careloop_desk:not-", 1)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)


async def test_no_password_is_refused_even_for_the_admin(stack: RunningStack) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host="127.0.0.1", port=stack.stack.pg_port, user="careloop_admin", password=""
        )


async def test_no_service_role_is_a_superuser_or_may_create_schemas(stack: RunningStack) -> None:
    admin = await asyncpg.connect(stack.dsn)
    try:
        rows = await admin.fetch(
            """
            SELECT rolname, rolsuper, rolcreaterole, rolcreatedb,
                   has_database_privilege(rolname, current_database(), 'CREATE') AS create_schema
            FROM pg_roles WHERE rolname LIKE 'careloop\\_%' AND rolname <> 'careloop_admin'
            """
        )
    finally:
        await admin.close()
    assert {r["rolname"] for r in rows} == {f"careloop_{s}" for s in DB_SERVICES}
    assert set(DB_SERVICES) >= {"desk", "routing", "notify", "survey", "metrics", "knowledge"}
    assert not any(r["rolsuper"] or r["rolcreaterole"] or r["rolcreatedb"] for r in rows)
    assert not any(r["create_schema"] for r in rows)


async def test_migrations_applied_by_the_admin_leave_the_tables_to_the_service_role(
    stack: RunningStack,
) -> None:
    await asyncio.to_thread(migrate, stack.dsn, "survey")
    admin = await asyncpg.connect(stack.dsn)
    try:
        owners = await admin.fetch(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'survey'"
        )
    finally:
        await admin.close()
    assert [r["tableowner"] for r in owners] == ["careloop_survey"]


def test_desk_in_production_refuses_to_start_with_the_demo_agents(stack: RunningStack) -> None:
    env = {
        **os.environ,
        **stack.env,
        "CARELOOP_ENV": "production",
        "CARELOOP_DESK_HTTP_PORT": str(port(22990)),
    }
    env.pop("CARELOOP_AGENTS_FILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "services.desk"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "refusing to start: no agents configured" in done.stdout + done.stderr
