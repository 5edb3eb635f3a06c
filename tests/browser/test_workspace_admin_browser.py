"""The workspace's own pages in real Chromium, against desk over HTTP on its own stack: an agent
makes a draft article of a reply in the knowledge base (knowledge in this process, on the same
broker and database) and finds it in the ticket's conversation with its page; an admin changes an agent's skills and weekly schedule from the board (Chinese, 1366×768), refused
on the page where routing would refuse it, then sent to routing as agent.change_requested; a
supervisor sees them read-only (English, a 1024×768 tablet); an agent, on their own account
page, makes a personal API token (shown once), uses and revokes it, changes their password
(which ends their other sessions) and logs out everywhere. Screenshots as in conftest."""

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest
from playwright.async_api import Browser, Page, expect

from services.knowledge.app import create_app as knowledge_app
from services.knowledge.settings import KnowledgeSettings
from shared import topics
from shared.events import (
    AgentChangeRequested,
    AgentSkills,
    ArticleDraftRequested,
    WeeklyHours,
    new_event,
)
from tests.browser.test_accounts_browser import new_agent
from tests.browser.test_board_browser import status
from tests.browser.test_workspace_browser import (
    ADA,
    DESKTOP,
    TABLET,
    fits,
    log_in,
    page_of,
    passwords,
    shoot,
)
from tests.browser.tickets import Tickets
from tests.integration.inprocess import environment, find_event, publish, served
from tests.integration.test_knowledge import knowledge_env
from tests.support import RunningStack, eventually

__all__ = ["passwords"]  # the module's fixture: the test users' passwords, set by an admin

ADMIN_PASSWORD = "ada-browser-pass-2026"
FIRST_PASSWORD = "浏览器 test password"  # test_accounts_browser.new_agent's
CAI = AgentSkills(
    languages=("zh", "en"),
    channels=("chat",),
    course_lines=("PY",),
    senior=True,
    schedule=WeeklyHours(
        timezone="Asia/Shanghai",
        weekly={"mon": (("09:00", "18:00"),), "tue": (("09:00", "18:00"),)},
    ),
)


ANA = {"Authorization": "Bearer test-ana-token"}


@pytest.fixture(scope="module")
async def knowledge(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    """knowledge as its process runs it (its consumer, its API), in this event loop."""
    with environment(knowledge_env(stack)):
        settings = KnowledgeSettings()
        async with served(lambda: knowledge_app(settings), "knowledge") as client:
            yield client


@pytest.fixture(scope="module")
async def admin(desk_url: str) -> str:
    async with httpx.AsyncClient(base_url=desk_url, timeout=30) as client:
        r = await client.put(
            "/v1/users/ada/password", headers=ADA, json={"password": ADMIN_PASSWORD}
        )
        assert r.status_code == 204, r.text
    return ADMIN_PASSWORD


async def shoot_at(page: Page, shots: Path, selector: str, name: str) -> None:
    """The part of a long page below the fold (the workspace scrolls its main pane)."""
    await page.locator(selector).scroll_into_view_if_needed()
    await page.screenshot(path=str(shots / f"workspace-{name}.png"))


async def shown_skills(page: Page, agent_id: str) -> None:
    """The agent's page, once desk stored routing's status with their skills."""

    async def known() -> bool:
        await page.goto(f"/board/agents/{agent_id}")
        return await page.locator("#skills-form").count() > 0

    assert await eventually(known, timeout=30, interval=0.5)


async def test_an_agent_makes_a_draft_article_of_a_reply_and_finds_it_in_the_conversation(
    browser: Browser,
    desk_url: str,
    tickets: Tickets,
    knowledge: httpx.AsyncClient,
    passwords: dict[str, str],
    shots: Path,
) -> None:
    made = await tickets.replied(subject="视频一直在缓冲 <i>x</i>")
    page = await page_of(browser, desk_url, DESKTOP)
    try:
        await log_in(page, "ana", passwords["ana"])
        await page.goto(f"/tickets/{made.number}")
        reply = page.locator("#conversation [data-kind=reply]").first
        await expect(reply).to_contain_text("请先清除浏览器缓存")
        await reply.get_by_role("button", name="做成知识文章").click()
        await expect(page.locator("p.notice[role=status]")).to_contain_text("已发送到知识库")
        asked = await find_event(
            tickets.settings.kafka_bootstrap,
            topics.TICKETS,
            lambda e: e.type == ArticleDraftRequested.TYPE and e.data.ticket_id == made.ticket_id,
        )
        assert (asked.data.by, asked.data.category, asked.data.language) == (
            "ana",
            "technical",
            "zh",
        )

        # knowledge made ana's draft; the conversation says so, with the article's page.
        line = page.locator("#conversation li.event", has_text="知识文章草稿")

        async def shown() -> bool:
            if await line.count():
                return True
            await page.reload()
            return False

        assert await eventually(shown, timeout=30, interval=0.5)
        await expect(line).to_contain_text("“您好，请先清除浏览器缓存，然后重新登录再试一次。”")
        link = line.get_by_role("link", name="文章页")
        article_id = str(asked.data.article_id)
        await expect(link).to_have_attribute("href", re.compile(f"/kb/{article_id}\\?lang=zh$"))
        draft = await knowledge.get(f"/v1/articles/{article_id}", headers=ANA)
        assert draft.status_code == 200, draft.text
        article = draft.json()
        assert (article["status"], article["owner_id"], article["category"]) == (
            "draft",
            "ana",
            "technical",
        )
        assert article["source_ticket_id"] == str(made.ticket_id)
        assert article["body"] == "您好，请先清除浏览器缓存，然后重新登录再试一次。"
        await fits(page, DESKTOP["width"])
        await shoot(page, shots, "article-from-reply-zh")

        # Asked again, it is the same draft. Cai's request after it, for the same ticket (so
        # in order behind it), shows when knowledge has read both.
        await (
            page.locator("#conversation [data-kind=reply]")
            .first.get_by_role("button", name="做成知识文章")
            .click()
        )
        await expect(page.locator("p.notice[role=status]")).to_be_visible()
        cai = msgspec.structs.replace(asked.data, article_id=uuid.uuid4(), by="cai")
        await publish(tickets.settings, [new_event(cai, producer="test")])

        async def behind() -> bool:
            r = await knowledge.get(f"/v1/articles/{cai.article_id}", headers=ADA)
            return r.status_code == 200

        assert await eventually(behind, timeout=30, interval=0.3)
        drafts = (
            await knowledge.get("/v1/articles", headers=ANA, params={"status": "draft"})
        ).json()
        assert [a["article_id"] for a in drafts if a["title"] == article["title"]] == [article_id]
    finally:
        await page.context.close()


async def test_an_admin_changes_an_agents_skills_and_schedule_from_the_board(
    browser: Browser, desk_url: str, tickets: Tickets, admin: str, shots: Path
) -> None:
    await publish(tickets.settings, [status("cai", skills=CAI)])
    page = await page_of(browser, desk_url, DESKTOP)
    try:
        await log_in(page, "ada", admin)
        await page.goto("/board")
        await page.locator("#agents tr[data-agent=cai] a.skills-link").click()
        await expect(page).to_have_url(f"{desk_url}/board/agents/cai")
        await shown_skills(page, "cai")
        form = page.locator("#skills-form")
        # The form shows what routing holds.
        await expect(form.get_by_label("中文")).to_be_checked()
        await expect(form.get_by_label("在线客服")).to_be_checked()
        await expect(form.get_by_label("邮件")).not_to_be_checked()
        await expect(form.locator("#course-lines")).to_have_value("PY")
        await expect(form.get_by_label("资深", exact=False)).to_be_checked()
        await expect(form.locator("input[name=schedule][value=weekly]")).to_be_checked()
        await expect(form.locator("#day-mon")).to_have_value("09:00-18:00")
        await expect(form.locator("#day-sat")).to_have_value("")

        # What routing would refuse is refused here, naming it; what was typed stays.
        await form.locator("#day-sat").fill("9点到12点")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#skills-error")).to_have_text(
            "周六：“9点到12点”不是 HH:MM-HH:MM 格式的时段。"
        )
        await expect(form.locator("#day-sat")).to_have_value("9点到12点")
        await form.locator("#day-sat").fill("10:00-12:00")
        await form.locator("#course-lines").fill("PY, JA-N2")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#skills-error")).to_contain_text("路由服务会拒绝这项修改")
        await expect(page.locator("#skills-error")).to_contain_text("course_lines")
        await form.locator("#day-fri").fill("18:00-09:00")
        await form.locator("#course-lines").fill("PY")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#skills-error")).to_contain_text(
            "fri: 18:00-09:00 does not end after it starts"
        )
        await fits(page, DESKTOP["width"])
        await shoot(page, shots, "skills-refused-zh")

        await form.locator("#day-fri").fill("")
        await form.get_by_label("技术问题", exact=True).check()
        await form.get_by_label("紧急", exact=True).check()
        await form.get_by_label("可接 VIP 学员").check()
        await form.locator("#course-lines").fill("py ja_n2")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("p.notice[role=status]")).to_contain_text("已提交给路由服务")
        sent = await find_event(
            tickets.settings.kafka_bootstrap,
            topics.PEOPLE,
            lambda e: (
                e.type == AgentChangeRequested.TYPE
                and e.data.agent_id == "cai"
                and e.data.by == "ada"
            ),
        )
        change: AgentChangeRequested = sent.data
        assert sent.key == "cai"
        assert (change.online, change.capacity) == (None, None)  # presence and capacity stay
        assert change.languages == ("zh", "en") and change.channels == ("chat",)
        assert change.categories == ("technical",) and change.priorities == ("urgent",)
        assert change.course_lines == ("PY", "JA_N2")
        assert (change.vip, change.senior) == (True, True)
        assert change.schedule == WeeklyHours(
            timezone="Asia/Shanghai",
            weekly={
                "mon": (("09:00", "18:00"),),
                "tue": (("09:00", "18:00"),),
                "sat": (("10:00", "12:00"),),
            },
        )
        await shoot(page, shots, "skills-sent-zh")
        await shoot_at(page, shots, "#schedule", "skills-schedule-zh")

        # Always on shift is a schedule of null, which routing reads as "no schedule".
        await form.locator("input[name=schedule][value=always]").check()
        await form.locator("button[type=submit]").click()
        await expect(page.locator("p.notice[role=status]")).to_be_visible()
        cleared = await find_event(
            tickets.settings.kafka_bootstrap,
            topics.PEOPLE,
            lambda e: (
                e.type == AgentChangeRequested.TYPE
                and e.data.agent_id == "cai"
                and e.data.by == "ada"
                and e.data.schedule is None
            ),
        )
        # The page shows what routing holds (no routing here: still Cai's first skills).
        assert (cleared.data.channels, cleared.data.categories) == (("chat",), ())
    finally:
        await page.context.close()


async def test_a_supervisor_sees_skills_read_only_in_english_on_a_tablet(
    browser: Browser, desk_url: str, tickets: Tickets, passwords: dict[str, str], shots: Path
) -> None:
    await publish(tickets.settings, [status("cai", skills=CAI)])
    page = await page_of(browser, desk_url, TABLET)
    try:
        await log_in(page, "sue", passwords["sue"])
        if await page.locator("html").get_attribute("lang") != "en":
            await page.get_by_role("button", name="English").click()
        await shown_skills(page, "cai")
        await expect(page.locator("h1")).to_contain_text("Skills and schedule: Cai")
        await expect(page.get_by_text("Only admins change skills and schedules")).to_be_visible()
        await expect(page.locator("#skills-form button[type=submit]")).to_have_count(0)
        await expect(page.get_by_label("chat", exact=True)).to_be_checked()
        await expect(page.get_by_label("chat", exact=True)).to_be_disabled()
        await expect(page.locator("#day-mon")).to_be_disabled()
        await fits(page, TABLET["width"])
        await shoot(page, shots, "skills-read-only-en-tablet")
        await shoot_at(page, shots, "#schedule", "skills-schedule-en-tablet")

        # Posted anyway (with the session's CSRF token), routing's rule holds: 403.
        csrf = await page.locator("body").get_attribute("data-csrf")
        answer = await page.request.post(
            "/board/agents/cai/skills", form={"csrf_token": csrf or "", "language-zh": "on"}
        )
        assert answer.status == 403
    finally:
        await page.context.close()


async def test_an_agent_keeps_their_own_password_sessions_and_api_tokens(
    browser: Browser, desk_url: str, shots: Path
) -> None:
    agent_id = await new_agent(desk_url, "zh")
    page = await page_of(browser, desk_url, DESKTOP)
    other = await page_of(browser, desk_url, TABLET)  # the same agent on another device
    try:
        await log_in(other, agent_id, FIRST_PASSWORD)
        await log_in(page, agent_id, FIRST_PASSWORD)
        await page.locator("header.top a[href='/account']").click()
        await expect(page.locator("h1")).to_contain_text("我的账号")

        # A token, shown once; it works at once, and stops when revoked.
        await page.locator("#token-name").fill("报表脚本 <b>x</b>")
        await page.get_by_role("button", name="创建令牌").click()
        token = (await page.locator("#token-value").inner_text()).strip()
        row = page.locator("#token-list tbody tr", has_text="报表脚本 <b>x</b>")
        await expect(row).to_contain_text("有效")
        await fits(page, DESKTOP["width"])
        await shoot(page, shots, "account-token-zh")
        bearer = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=desk_url, timeout=30) as client:
            assert (await client.get("/v1/account/tokens", headers=bearer)).status_code == 200
            await page.goto("/account")
            await expect(page.locator("#token-value")).to_have_count(0)  # never shown again
            await row.get_by_role("button", name="吊销").click()
            await expect(page.locator("p.notice[role=status]")).to_have_text(
                "令牌已吊销，立即失效。"
            )
            await expect(row).to_contain_text("已吊销")
            await shoot_at(page, shots, "#token-list", "account-tokens-zh")
            assert (await client.get("/v1/account/tokens", headers=bearer)).status_code == 401

        # The password: the current one is required, the new one typed twice.
        new = f"新的密码 {uuid.uuid4().hex[:6]}"
        await page.locator("#current").fill("not my password")
        await page.locator("#new").fill(new)
        await page.locator("#again").fill(new)
        await page.get_by_role("button", name="修改密码").click()
        await expect(page.locator("#account-error")).to_have_text("当前密码不正确。")
        await page.locator("#current").fill(FIRST_PASSWORD)
        await page.locator("#new").fill(new)
        await page.locator("#again").fill(new + "!")
        await page.get_by_role("button", name="修改密码").click()
        await expect(page.locator("#account-error")).to_have_text("两次输入的新密码不一致。")
        await page.locator("#current").fill(FIRST_PASSWORD)
        await page.locator("#new").fill(new)
        await page.locator("#again").fill(new)
        await page.get_by_role("button", name="修改密码").click()
        await expect(page.locator("p.notice[role=status]")).to_have_text(
            "密码已修改；其他设备上的登录已退出。"
        )
        await other.goto("/views/mine")  # that device's session ended
        await expect(other.locator("#login")).to_be_visible()
        await log_in(other, agent_id, new)

        # Log out everywhere: this device and the other are both at the login form.
        await page.get_by_role("button", name="在所有设备上退出").click()
        await expect(page.locator("#login")).to_be_visible()
        await other.goto("/views/mine")
        await expect(other.locator("#login")).to_be_visible()
    finally:
        await page.context.close()
        await other.context.close()


async def test_the_account_page_in_english_on_a_tablet(
    browser: Browser, desk_url: str, shots: Path
) -> None:
    agent_id = await new_agent(desk_url, "en")
    page = await page_of(browser, desk_url, TABLET)
    try:
        await log_in(page, agent_id, FIRST_PASSWORD)
        await page.goto("/account")
        await expect(page.locator("h1")).to_contain_text("My account")
        await page.locator("#current").fill(FIRST_PASSWORD)
        await page.locator("#new").fill("short")
        await page.locator("#again").fill("short")
        await page.locator("#new").evaluate("e => e.removeAttribute('minlength')")
        await page.locator("#again").evaluate("e => e.removeAttribute('minlength')")
        await page.get_by_role("button", name="Change password").click()
        await expect(page.locator("#account-error")).to_have_text(
            "The new password needs at least 10 characters."
        )
        await page.locator("#token-name").fill("CRM sync")
        await page.get_by_role("button", name="Create token").click()
        await expect(page.locator("#new-token")).to_contain_text("Copy it now")
        await fits(page, TABLET["width"])
        await shoot(page, shots, "account-en-tablet")
    finally:
        await page.context.close()
