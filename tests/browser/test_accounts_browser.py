"""An agent logs into the workspace in Chromium at 1366×768: the form in Chinese or English,
a wrong password said plainly, the workspace after login, out again with the header's button,
and a logged-out browser sent back to the form. Screenshots as in conftest."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

ADMIN = {"Authorization": "Bearer test-ada-token"}
PASSWORD = "浏览器 test password"


@pytest.fixture
async def desktop(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    yield context
    await context.close()


async def new_agent(desk_url: str, language: str) -> str:
    agent_id = f"b{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=desk_url) as client:
        made = await client.post(
            "/v1/users",
            headers=ADMIN,
            json={
                "agent_id": agent_id,
                "name": "李娜 Li Na",
                "teams": ["tech_support"],
                "language": language,
                "password": PASSWORD,
            },
        )
    assert made.status_code == 201, made.text
    return agent_id


async def log_in(page: Page, login: str, password: str) -> None:
    await page.fill("#login", login)
    await page.fill("#password", password)
    await page.click("button[type=submit]")


async def shoot(page: Page, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


async def test_an_agent_logs_in_and_out_in_chinese(
    desktop: BrowserContext, desk_url: str, shots: Path
) -> None:
    agent_id = await new_agent(desk_url, "zh")
    page = await desktop.new_page()
    await page.goto(f"{desk_url}/views/mine")
    await expect(page).to_have_url(f"{desk_url}/login?next=%2Fviews%2Fmine")
    await expect(page.locator("h1")).to_have_text("登录 careloop 工作台")  # the browser's zh-CN
    await shoot(page, shots, "login-zh")

    await log_in(page, agent_id, "不是这个密码")
    await expect(page.locator("#login-error")).to_have_text("用户名或密码错误。")
    await expect(page.locator("#login")).to_have_value(agent_id)  # kept; the password is not
    await expect(page.locator("#password")).to_have_value("")
    await shoot(page, shots, "login-zh-wrong-password")

    await log_in(page, agent_id, PASSWORD)
    await expect(page).to_have_url(f"{desk_url}/views/mine")
    await shoot(page, shots, "workspace-after-login-zh")
    [session] = [c for c in await desktop.cookies() if c["name"] == "careloop_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert await page.evaluate("document.cookie.includes('careloop_session')") is False

    await page.locator("form[action='/logout'] button").click()
    await expect(page).to_have_url(f"{desk_url}/login?lang=zh")
    assert not [c for c in await desktop.cookies() if c["name"] == "careloop_session"]
    await page.goto(f"{desk_url}/views/mine")
    await expect(page).to_have_url(f"{desk_url}/login?next=%2Fviews%2Fmine")


async def test_the_form_switches_to_english_and_escapes_what_it_echoes(
    desktop: BrowserContext, desk_url: str, shots: Path
) -> None:
    page = await desktop.new_page()
    await page.goto(f"{desk_url}/login")
    await page.click("text=English")
    await expect(page.locator("h1")).to_have_text("Log in to the careloop workspace")
    await log_in(page, "<img src=x onerror=alert(1)>", "wrong password")
    await expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    await expect(page.locator("img")).to_have_count(0)  # echoed as text, never as markup
    await shoot(page, shots, "login-en-wrong-password")
