"""The People pages in real Chromium, against desk over HTTP on its own stack: an admin (Chinese,
1366×768) creates an agent (a login the account API refuses is refused on the page with the API's
reason, the form kept), sets their teams and resets their password; the agent logs in with it
on a 1024×768 tablet; disabled, the agent's open session ends and their next login is refused. A
supervisor (English, tablet) sees the same pages without any form. Screenshots as in conftest."""

import re
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.test_workspace_browser import DESKTOP, TABLET, fits, log_in, page_of, shoot
from tests.support import RunningStack

ADA = {"Authorization": "Bearer test-ada-token"}
ADMIN_PASSWORD = "ada-people-pass-2026"
FIRST = "第一个密码 first-2026"
RESET = "reset-密码-2026-x"


@pytest.fixture(scope="module")
async def admin(desk_url: str) -> str:
    """ada's password, set through the account API as an administrator would."""
    async with httpx.AsyncClient(base_url=desk_url, timeout=30) as client:
        r = await client.put(
            "/v1/users/ada/password", headers=ADA, json={"password": ADMIN_PASSWORD}
        )
        assert r.status_code == 204, r.text
    return ADMIN_PASSWORD


async def supervisor_in_english(desk_url: str) -> tuple[str, str]:
    agent_id, password = f"s{uuid.uuid4().hex[:10]}", "supervisor-pass-2026"
    async with httpx.AsyncClient(base_url=desk_url, timeout=30) as client:
        made = await client.post(
            "/v1/users",
            headers=ADA,
            json={
                "agent_id": agent_id,
                "name": "Mei Supervisor",
                "role": "supervisor",
                "teams": ["finance"],
                "language": "en",
                "password": password,
            },
        )
    assert made.status_code == 201, made.text
    return agent_id, password


async def refused_login(page: Page, login: str, password: str) -> None:
    await page.goto("/login")
    await page.locator("#login").fill(login)
    await page.locator("#password").fill(password)
    await page.locator("form[action='/login'] button[type=submit]").click()


async def test_an_admin_creates_an_agent_sets_teams_resets_and_disables_them(
    browser: Browser, desk_url: str, stack: RunningStack, admin: str, shots: Path
) -> None:
    agent_id = f"p{uuid.uuid4().hex[:10]}"
    page = await page_of(browser, desk_url, DESKTOP)
    agent = await page_of(browser, desk_url, TABLET)
    try:
        await log_in(page, "ada", admin)
        await page.locator("nav.views").get_by_role("link", name="人员与账号").click()
        await expect(page.locator("h1")).to_have_text("人员与账号")
        await expect(page.locator("#people-list tr[data-person=ada]")).to_contain_text("管理员")

        # A login the API refuses: its reason on the page, what was typed kept (not the password).
        form = page.locator("#new-person form")
        await form.locator("#new-agent-id").fill("Zhang San")
        await form.locator("#new-name").fill("张三 <b>Zhang</b>")
        await form.locator("#new-email").fill(f"{agent_id}@careloop.example")
        await form.locator("#new-teams").fill("finance")
        await form.locator("#new-password").fill(FIRST)
        await form.get_by_role("button", name="创建用户").click()
        error = page.locator("#people-error")
        await expect(error).to_contain_text("没有保存：agent_id: String should match pattern")
        await expect(form.locator("#new-name")).to_have_value("张三 <b>Zhang</b>")
        await expect(form.locator("#new-password")).to_have_value("")

        await form.locator("#new-agent-id").fill(agent_id)
        await form.locator("#new-password").fill(FIRST)
        await form.get_by_role("button", name="创建用户").click()
        await expect(page).to_have_url(re.compile(rf"/people/{agent_id}\?notice=created$"))
        await expect(page.locator("h1")).to_contain_text("张三 <b>Zhang</b>")  # text, not markup
        await expect(page.locator("#person-teams")).to_have_text("finance")

        # Teams: one more, typed with a Chinese comma.
        await page.locator("#teams").fill("finance，tech_support")
        await page.get_by_role("button", name="保存").click()
        await expect(page.locator("#person-notice")).to_have_text("资料已保存。")
        await expect(page.locator("#person-teams")).to_have_text("finance, tech_support")

        # A password shorter than the API's minimum is refused, then a good one is set.
        await page.locator("#new-password").fill("short")
        await page.locator("#new-password").evaluate("e => e.removeAttribute('minlength')")
        await page.locator("#person-password").get_by_role("button", name="重置密码").click()
        await expect(page.locator("#person-error")).to_contain_text(
            "password: String should have at least 10 characters"
        )
        await page.locator("#new-password").fill(RESET)
        await page.locator("#person-password").get_by_role("button", name="重置密码").click()
        await expect(page.locator("#person-notice")).to_contain_text("密码已重置")
        await fits(page, DESKTOP["width"])
        await shoot(page, shots, "person-zh")

        # The agent logs in with the reset password on a tablet.
        await log_in(agent, agent_id, RESET)
        await expect(agent.locator("header.top .who")).to_contain_text("张三")

        # Disabled: their open session ends and the next login is refused.
        await page.get_by_role("button", name="停用账号").click()
        await expect(page.locator("#person-notice")).to_contain_text("账号已停用")
        await expect(page.locator("#person-state")).to_have_text("已停用")
        await agent.goto("/views/mine")
        await expect(agent).to_have_url(re.compile(r"/login\?next="))
        await refused_login(agent, agent_id, RESET)
        await expect(agent.locator("#login-error")).to_have_text("该账号已停用，请联系管理员。")

        # The API's own rule, said on the page: an admin cannot disable themselves.
        await page.goto("/people/ada")
        await page.get_by_role("button", name="停用账号").click()
        await expect(page.locator("#person-error")).to_have_text(
            "没有保存：admins cannot change their own role or disable themselves"
        )
        await expect(page.locator("#person-state")).to_have_text("启用")

        await page.goto("/people")
        row = page.locator(f"#people-list tr[data-person={agent_id}]")
        await expect(row).to_contain_text("已停用")
        await expect(row).to_contain_text("finance, tech_support")
        await fits(page, DESKTOP["width"])
        await shoot(page, shots, "people-zh")

        conn = await asyncpg.connect(stack.dsn)
        try:
            actions = await conn.fetch(
                "SELECT actor, action FROM desk.account_audit WHERE agent_id = $1 ORDER BY id",
                agent_id,
            )
        finally:
            await conn.close()
        assert [tuple(a) for a in actions] == [
            ("ada", "created"),
            ("ada", "updated"),
            ("ada", "password_set"),
            (agent_id, "login"),
            ("ada", "disabled"),
        ]

        # A supervisor, in English on a tablet, reads the same pages and gets no form.
        supervisor, password = await supervisor_in_english(desk_url)
        await agent.context.clear_cookies()
        await log_in(agent, supervisor, password)
        await agent.locator("nav.views").get_by_role("link", name="People").click()
        await expect(agent.locator("h1")).to_have_text("People and accounts")
        await expect(agent.locator("#new-person")).to_have_count(0)
        await fits(agent, TABLET["width"])
        await shoot(agent, shots, "people-en-tablet")
        await agent.locator(f"#people-list a[href='/people/{agent_id}']").click()
        await expect(agent.locator("#person-state")).to_have_text("disabled")
        await expect(agent.locator("form[action^='/people/']")).to_have_count(0)
        await fits(agent, TABLET["width"])
        await shoot(agent, shots, "person-en-tablet")
    finally:
        await page.context.close()
        await agent.context.close()
