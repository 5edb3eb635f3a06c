"""desk's accounts in-process against the real stack: login, lockout, session expiry,
logout everywhere, token revocation, CSRF, disabling, and person.changed on Kafka."""

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.desk.accounts.security import digest
from services.desk.accounts.setup import seed_users
from services.desk.app import create_app
from services.desk.settings import DeskSettings
from shared import topics
from shared.db import create_pool
from shared.service import new_context
from tests.integration.inprocess import environment, find_event, served, service_env
from tests.support import RunningStack

ADMIN = {"Authorization": "Bearer test-ada-token"}
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
async def app(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    # Each test's client claims its own address through a trusted proxy, so that the
    # per-address lockout of one test does not lock the next.
    env = {**service_env(stack), "CARELOOP_DESK_TRUSTED_PROXIES": "127.0.0.1"}
    with environment(env):
        async with served(lambda: create_app(DeskSettings()), "desk") as client:
            yield client


@pytest.fixture
async def db(stack: RunningStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack.dsn)
    yield conn
    await conn.close()


def browser(app: httpx.AsyncClient) -> httpx.AsyncClient:
    """A browser of its own (cookie jar, address) on the same in-process desk."""
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    return httpx.AsyncClient(
        transport=app._transport,
        base_url="http://desk",
        headers={"X-Forwarded-For": address},
        follow_redirects=False,
    )


async def new_user(app: httpx.AsyncClient, role: str = "agent") -> str:
    agent_id = f"u{uuid.uuid4().hex[:10]}"
    r = await app.post(
        "/v1/users",
        headers=ADMIN,
        json={
            "agent_id": agent_id,
            "name": "Wang Fang 王芳",
            "email": f"{agent_id}@example.com",
            "role": role,
            "teams": ["tech_support"],
            "language": "en",
            "password": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    return agent_id


def form_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def log_in(
    client: httpx.AsyncClient, login: str, password: str = PASSWORD, next_path: str = "/"
) -> httpx.Response:
    page = await client.get("/login", params={"next": next_path, "lang": "en"})
    assert page.status_code == 200
    return await client.post(
        "/login",
        data={
            "login": login,
            "password": password,
            "csrf_token": form_token(page.text),
            "next": next_path,
            "lang": "en",
        },
    )


async def test_login_gives_an_httponly_lax_session_that_needs_csrf_for_changes(
    app: httpx.AsyncClient,
) -> None:
    agent_id = await new_user(app)
    async with browser(app) as b:
        r = await log_in(b, agent_id.upper(), next_path="/v1/agent/me")
        assert r.status_code == 303 and r.headers["location"] == "/v1/agent/me"
        cookie = r.headers["set-cookie"]
        assert "careloop_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=lax" in cookie and "Secure" not in cookie  # a local run: plain HTTP
        me = await b.get("/v1/agent/me")
        assert me.status_code == 200 and me.json()["agent_id"] == agent_id

        # A change with the cookie alone is what a forged cross-site form would send.
        forged = await b.post("/v1/account/tokens", json={"name": "ci"})
        assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
        wrong = await b.post(
            "/v1/account/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": "x"}
        )
        assert wrong.status_code == 403
        logout = await b.post("/logout")
        assert logout.status_code == 403  # a form without the token does not log anyone out
        assert (await b.get("/v1/agent/me")).status_code == 200


async def test_an_api_token_is_shown_once_works_until_revoked(
    app: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    agent_id = await new_user(app)
    async with browser(app) as b:
        await log_in(b, f"{agent_id}@EXAMPLE.com")  # the e-mail is a login name too
        csrf = await session_csrf(db, b)
        made = await b.post(
            "/v1/account/tokens", json={"name": "crm sync"}, headers={"X-CSRF-Token": csrf}
        )
        assert made.status_code == 201, made.text
        token, token_id = made.json()["token"], made.json()["token_id"]
        listed = (await b.get("/v1/account/tokens")).json()
        assert [t["name"] for t in listed] == ["crm sync"] and "token" not in listed[0]

    bearer = {"Authorization": f"Bearer {token}"}
    assert (await app.get("/v1/agent/me", headers=bearer)).json()["agent_id"] == agent_id
    assert (await app.get("/v1/account/tokens", headers=bearer)).json()[0]["last_used_at"]
    # A bearer call needs no CSRF token: no browser sends the header by itself.
    assert (await app.delete(f"/v1/account/tokens/{token_id}", headers=bearer)).status_code == 204
    gone = await app.get("/v1/agent/me", headers=bearer)
    assert gone.status_code == 401 and gone.headers["www-authenticate"] == "Bearer"


async def session_csrf(db: asyncpg.Connection, client: httpx.AsyncClient) -> str:
    """The session's CSRF token, as a page renders it for the user."""
    token: str = await db.fetchval(
        "SELECT csrf_token FROM desk.sessions WHERE session_sha256 = $1", digest_of(client)
    )
    return token


def digest_of(client: httpx.AsyncClient) -> str:
    return digest(client.cookies["careloop_session"])


async def test_wrong_passwords_lock_the_name_then_the_address(
    app: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    agent_id = await new_user(app)
    async with browser(app) as b:
        for n in range(5):  # by id or by e-mail: the same account
            login = agent_id if n % 2 else f"{agent_id}@example.com"
            r = await log_in(b, login, password="not the password")
            assert r.status_code == 401 and "Wrong user name or password." in r.text
        locked = await log_in(b, agent_id)  # the right password, too late
        assert locked.status_code == 429 and "Too many failed logins" in locked.text
        assert int(locked.headers["retry-after"]) > 0
        # An unknown name is refused the same way (timing and words tell nothing).
        for n in range(15):
            r = await log_in(b, f"nobody{n}", password="whatever it is")
            assert r.status_code == 401
        other = await new_user(app)
        assert (await log_in(b, other)).status_code == 429  # 20 from this address
    async with browser(app) as fresh:
        assert (await log_in(fresh, other)).status_code == 303  # from elsewhere: fine
    # The window slides: failures older than it lock nothing.
    await db.execute(
        "UPDATE desk.login_failures SET at = at - interval '16 minutes' WHERE login = $1",
        agent_id,
    )
    async with browser(app) as later:
        assert (await log_in(later, agent_id)).status_code == 303


async def test_sessions_end_when_idle_or_old_and_everywhere_at_once(
    app: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    agent_id = await new_user(app)
    async with browser(app) as laptop, browser(app) as tablet, browser(app) as phone:
        for b in (laptop, tablet, phone):
            assert (await log_in(b, agent_id)).status_code == 303
        await db.execute(
            "UPDATE desk.sessions SET last_seen_at = now() - interval '61 minutes' "
            "WHERE session_sha256 = $1",
            digest_of(phone),
        )
        assert (await phone.get("/v1/agent/me")).status_code == 401
        await db.execute(
            "UPDATE desk.sessions SET created_at = now() - interval '13 hours' "
            "WHERE session_sha256 = $1",
            digest_of(tablet),
        )
        assert (await tablet.get("/v1/agent/me")).status_code == 401
        assert (await tablet.post("/logout")).headers["location"] == "/login?next=%2Flogout"

        assert (await log_in(tablet, agent_id)).status_code == 303
        held = [b.cookies["careloop_session"] for b in (laptop, tablet)]
        everywhere = await laptop.post(
            "/logout-everywhere", data={"csrf_token": await session_csrf(db, laptop)}
        )
        assert everywhere.status_code == 303
        assert everywhere.headers["location"].startswith("/login")
    for cookie in held:  # even a browser that kept its cookie is out
        async with browser(app) as b:
            b.cookies.set("careloop_session", cookie)
            assert (await b.get("/v1/agent/me")).status_code == 401
    actions = [
        r["action"]
        for r in await db.fetch(
            "SELECT action FROM desk.account_audit WHERE agent_id = $1 ORDER BY id", agent_id
        )
    ]
    assert actions == ["created", "login", "login", "login", "login", "logout_everywhere"]


async def test_a_disabled_user_is_out_and_announced(
    app: httpx.AsyncClient, stack: RunningStack, db: asyncpg.Connection
) -> None:
    agent_id = await new_user(app)
    async with browser(app) as b:
        await log_in(b, agent_id)
        made = await b.post(
            "/v1/account/tokens",
            json={"name": "bot"},
            headers={"X-CSRF-Token": await session_csrf(db, b)},
        )
        bearer = {"Authorization": f"Bearer {made.json()['token']}"}
        changed = await app.patch(f"/v1/users/{agent_id}", headers=ADMIN, json={"active": False})
        assert changed.status_code == 200 and changed.json()["active"] is False
        assert (await b.get("/v1/agent/me")).status_code == 401
        assert (await app.get("/v1/agent/me", headers=bearer)).status_code == 401
        assert (await log_in(b, agent_id)).status_code == 403
    event = await find_event(
        stack.bootstrap,
        topics.PEOPLE,
        lambda e: e.key == agent_id and e.data.active is False,
    )
    assert event.data.teams == ("tech_support",) and len(event.data.api_token_sha256) == 1


async def test_only_admins_manage_users_and_never_themselves(app: httpx.AsyncClient) -> None:
    agent_id = await new_user(app)
    ana = {"Authorization": "Bearer test-ana-token"}
    sue = {"Authorization": "Bearer test-sue-token"}
    assert (await app.get("/v1/users", headers=ana)).status_code == 403
    assert (await app.get("/v1/users", headers=sue)).status_code == 200
    assert (
        await app.patch(f"/v1/users/{agent_id}", headers=sue, json={"role": "admin"})
    ).status_code == 403
    assert (
        await app.patch("/v1/users/ada", headers=ADMIN, json={"active": False})
    ).status_code == 409
    taken = await app.post(
        "/v1/users",
        headers=ADMIN,
        json={"agent_id": agent_id, "name": "Again", "password": PASSWORD},
    )
    assert taken.status_code == 409
    short = await app.post(
        "/v1/users", headers=ADMIN, json={"agent_id": "shorty", "name": "S", "password": "abc"}
    )
    assert short.status_code == 422
    reset = await app.put(
        f"/v1/users/{agent_id}/password", headers=ADMIN, json={"password": "another good one"}
    )
    assert reset.status_code == 204
    async with browser(app) as b:
        assert (await log_in(b, agent_id)).status_code == 401
        assert (await log_in(b, agent_id, password="another good one")).status_code == 303
    trail = (await app.get(f"/v1/users/{agent_id}/audit", headers=ADMIN)).json()
    assert [(t["actor"], t["action"]) for t in trail][:2] == [
        ("ada", "created"),
        ("ada", "password_set"),
    ]


async def test_the_login_form_escapes_and_speaks_both_languages(app: httpx.AsyncClient) -> None:
    async with browser(app) as b:
        zh = await b.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
        assert "登录 careloop 工作台" in zh.text and 'lang="zh-CN"' in zh.text
        page = await b.get("/login", params={"lang": "en", "next": "/tickets?q=<script>"})
        assert "Log in to the careloop workspace" in page.text
        assert "<script>" not in page.text and "&lt;script&gt;" in page.text
        away = await b.get("/login", params={"next": "//evil.example/"})
        assert 'name="next" value="/"' in away.text
        stale = await b.post(
            "/login", data={"login": "ana", "password": "x", "csrf_token": "forged"}
        )
        assert stale.status_code == 403


async def test_the_seed_makes_users_with_first_passwords_and_tokens_once(
    app: httpx.AsyncClient, stack: RunningStack, tmp_path: Path
) -> None:
    agent_id = f"s{uuid.uuid4().hex[:10]}"
    seed_file = tmp_path / "agents.yaml"

    async def seed(name: str) -> None:
        seed_file.write_text(
            f"agents:\n  - {{id: {agent_id}, name: {name}, teams: [finance], "
            f"token: seed-{agent_id}-token, password: {agent_id}-first-password}}\n",
            encoding="utf-8",
        )
        with environment({**service_env(stack), "CARELOOP_AGENTS_FILE": str(seed_file)}):
            ctx = new_context("desk", DeskSettings())
        ctx._pool = await create_pool(stack.dsn, schema="desk")
        try:
            await seed_users(ctx)
        finally:
            await ctx.pool.close()

    await seed("Qian Li")
    await seed("Renamed In The File")  # desk owns the user now: the file changes nothing
    bearer = {"Authorization": f"Bearer seed-{agent_id}-token"}
    me = await app.get("/v1/agent/me", headers=bearer)
    assert me.status_code == 200 and me.json()["name"] == "Qian Li"
    assert [t["name"] for t in (await app.get("/v1/account/tokens", headers=bearer)).json()] == [
        "seed"
    ]
    async with browser(app) as b:
        assert (await log_in(b, agent_id, password=f"{agent_id}-first-password")).status_code == 303


async def test_a_login_name_with_control_characters_is_just_wrong(app: httpx.AsyncClient) -> None:
    async with browser(app) as b:
        for login in ("ana\x00", "\x1b[31mana", "ana\r\nX-Injected: 1"):
            assert (await log_in(b, login, password="whatever it is")).status_code == 401
