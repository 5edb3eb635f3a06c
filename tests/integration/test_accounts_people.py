"""Other services learn people from desk: knowledge, fed by careloop.people.v1, lets in a
token desk issued, and stops a revoked one and a disabled person's."""

import re
import uuid
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import httpx
import pytest

from services.desk.accounts.security import digest
from services.desk.app import create_app as desk_app
from services.desk.settings import DeskSettings
from services.knowledge.app import create_app as knowledge_app
from services.knowledge.settings import KnowledgeSettings
from tests.integration.inprocess import environment, served, service_env
from tests.support import RunningStack, eventually, fresh_groups

ADMIN = {"Authorization": "Bearer test-ada-token"}
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
async def both(stack: RunningStack) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    env = {**service_env(stack), **fresh_groups()}
    env.setdefault("CARELOOP_KNOWLEDGE_PG_DSN", stack.dsn)
    with environment(env):
        async with (
            served(lambda: desk_app(DeskSettings()), "desk") as desk,
            served(lambda: knowledge_app(KnowledgeSettings()), "knowledge") as knowledge,
        ):
            yield desk, knowledge


async def test_knowledge_follows_desks_people(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], stack: RunningStack
) -> None:
    desk, knowledge = both
    # The seed's people are known before desk says anything.
    assert (await knowledge.get("/v1/articles", headers=ADMIN)).status_code == 200

    agent_id = f"p{uuid.uuid4().hex[:10]}"
    made = await desk.post(
        "/v1/users",
        headers=ADMIN,
        json={
            "agent_id": agent_id,
            "name": "Zhou Min 周敏",
            "teams": ["finance"],
            "password": PASSWORD,
        },
    )
    assert made.status_code == 201, made.text
    script, laptop = await own_tokens(desk, stack, agent_id, "script", "laptop")

    async def knowledge_says(token: str) -> int:
        answer = await knowledge.get("/v1/articles", headers={"Authorization": f"Bearer {token}"})
        return answer.status_code

    await eventually(lambda: is_(knowledge_says(script["token"]), 200))
    revoked = await desk.delete(f"/v1/users/{agent_id}/tokens/{script['token_id']}", headers=ADMIN)
    assert revoked.status_code == 204
    await eventually(lambda: is_(knowledge_says(script["token"]), 401))
    assert await knowledge_says(laptop["token"]) == 200

    disabled = await desk.patch(f"/v1/users/{agent_id}", headers=ADMIN, json={"active": False})
    assert disabled.status_code == 200
    await eventually(lambda: is_(knowledge_says(laptop["token"]), 401))


async def is_(answer: Awaitable[int], expected: int) -> bool:
    return await answer == expected


async def own_tokens(
    desk: httpx.AsyncClient, stack: RunningStack, agent_id: str, *names: str
) -> list[dict[str, str]]:
    """API tokens the person makes for themselves, logged in as the workspace would be."""
    async with httpx.AsyncClient(transport=desk._transport, base_url="http://desk") as b:
        form = await b.get("/login")
        login = await b.post(
            "/login",
            data={
                "login": agent_id,
                "password": PASSWORD,
                "csrf_token": re.findall(r'name="csrf_token" value="([^"]+)"', form.text)[0],
            },
        )
        assert login.status_code == 303
        conn = await asyncpg.connect(stack.dsn)
        try:
            csrf = await conn.fetchval(
                "SELECT csrf_token FROM desk.sessions WHERE session_sha256 = $1",
                digest(b.cookies["careloop_session"]),
            )
        finally:
            await conn.close()
        made = []
        for name in names:
            r = await b.post(
                "/v1/account/tokens", json={"name": name}, headers={"X-CSRF-Token": csrf}
            )
            assert r.status_code == 201, r.text
            made.append(r.json())
        return made
