"""The agents' workspace in real Chromium, against desk over HTTP on its own stack: an agent
logs in at 1366×768, sees a new ticket arrive without reloading, works it (reply, internal
note with an @mention, resolve with a code), sees the learner's answer arrive live, merges
a duplicate into another and transfers it, and finds a ticket by Chinese text; a supervisor on a 1024×768 tablet reads the
workspace in English. Screenshots go where the portal's go (see conftest)."""

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, expect

from services.desk.links import Links
from shared.events import (
    ArticlesSuggested,
    Category,
    Channel,
    Priority,
    SuggestedArticle,
    TicketRouted,
    new_event,
    now,
)
from tests.browser.tickets import Tickets
from tests.integration.inprocess import SUE, publish
from tests.support import eventually

DESKTOP: ViewportSize = {"width": 1366, "height": 768}
TABLET: ViewportSize = {"width": 1024, "height": 768}
ADA = {"Authorization": "Bearer test-ada-token"}
PASSWORDS = {"ana": "ana-browser-pass-2026", "sue": "sue-browser-pass-2026"}


@pytest.fixture(scope="module")
async def passwords(desk_url: str) -> dict[str, str]:
    """The test agents file has no passwords (only local runs seed demo ones): an admin sets
    them through the account API, as an administrator would."""
    async with httpx.AsyncClient(base_url=desk_url, timeout=30) as client:
        for agent_id, password in PASSWORDS.items():
            r = await client.put(
                f"/v1/users/{agent_id}/password", headers=ADA, json={"password": password}
            )
            assert r.status_code == 204, r.text
    return PASSWORDS


async def page_of(browser: Browser, desk_url: str, viewport: ViewportSize) -> Page:
    context = await browser.new_context(
        viewport=viewport, locale="zh-CN", base_url=desk_url, device_scale_factor=1
    )
    return await context.new_page()


@pytest.fixture
async def desk(browser: Browser, desk_url: str) -> AsyncIterator[Page]:
    page = await page_of(browser, desk_url, DESKTOP)
    yield page
    await page.context.close()


@pytest.fixture
async def tablet(browser: Browser, desk_url: str) -> AsyncIterator[Page]:
    page = await page_of(browser, desk_url, TABLET)
    yield page
    await page.context.close()


async def log_in(page: Page, agent_id: str, password: str) -> None:
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.locator("#login").fill(agent_id)
    await page.locator("#password").fill(password)
    await page.locator("form[action='/login'] button[type=submit]").click()
    await expect(page.locator("header.top .brand")).to_be_visible()
    await expect(page.locator("body")).to_have_attribute("data-live", "on", timeout=30_000)


async def fits(page: Page, width: int) -> None:
    scroll = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll} px wide"


async def shoot(page: Page, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"workspace-{name}.png"), full_page=True)


async def eventually_shown(page: Page, locator: Locator) -> None:
    """Shown once desk stored it: the page is read again until it is (nothing pushes it)."""

    async def shown() -> bool:
        if await locator.count():
            return True
        await page.reload()
        return False

    await eventually(shown, timeout=20, interval=0.3)


async def test_an_agent_works_a_ticket_in_chinese_and_sees_it_live(
    desk: Page,
    desk_url: str,
    browser: Browser,
    tickets: Tickets,
    links: Links,
    passwords: dict[str, str],
    shots: Path,
) -> None:
    await log_in(desk, "ana", passwords["ana"])
    await expect(desk.locator("h1")).to_have_text("我的工单")

    made = await tickets.assigned(
        agent_id="ana", subject="<script>alert(1)</script>视频打不开", description=None
    )

    row = desk.locator("table.tickets tbody tr", has_text=made.number)
    await expect(row).to_be_visible(timeout=20_000)  # no reload: the live feed
    await expect(row).to_contain_text("<script>alert(1)</script>视频打不开")  # text, not markup
    await expect(desk.locator("#toasts .toast").first).to_contain_text(made.number)
    await expect(desk.locator("nav.views [data-count=mine]")).not_to_have_text("0")
    await shoot(desk, shots, "zh-mine")

    await row.locator("a").click()
    await expect(desk.locator("h1")).to_have_text("<script>alert(1)</script>视频打不开")
    conversation = desk.locator("#conversation ol.conversation")
    await expect(conversation).to_contain_text("章的视频时一直在加载")
    await expect(conversation).to_contain_text("已分配给")
    await expect(desk.locator("#learner")).to_contain_text("李雷")

    # A supervisor's macro and the article knowledge suggested, inserted into the reply.
    async with httpx.AsyncClient(base_url=desk_url, timeout=30) as client:
        r = await client.post(
            "/v1/macros",
            headers=SUE,
            json={
                "name": f"缓存问题 {made.number}",
                "body": "{{ learner.name }}您好，请清除浏览器缓存后重新登录。",
                "language": "zh",
            },
        )
        assert r.status_code == 201, r.text
    await publish(
        tickets.settings,
        [
            new_event(
                ArticlesSuggested(
                    ticket_id=made.ticket_id,
                    language="zh",
                    articles=(
                        SuggestedArticle(
                            article_id=uuid.uuid4(),
                            title="视频无法播放怎么办",
                            url="https://help.example.com/kb/video-playback",
                            score=0.9,
                        ),
                    ),
                    suggested_at=now(),
                ),
                producer="test",
            )
        ],
    )
    suggestion = desk.locator("#suggestions li", has_text="视频无法播放怎么办")
    await eventually_shown(desk, suggestion)

    await desk.keyboard.press("r")
    await expect(desk.locator("#reply-body")).to_be_focused()
    await desk.locator("#macro").select_option(label=f"缓存问题 {made.number}")
    await desk.get_by_role("button", name="插入").first.click()
    await expect(desk.locator("#reply-body")).to_have_value(
        "李雷您好，请清除浏览器缓存后重新登录。"
    )
    await desk.locator("#reply-body").press("End")
    await desk.locator("#reply-body").press("Enter")
    await suggestion.get_by_role("button", name="插入").click()
    await expect(desk.locator("#reply-body")).to_have_value(
        "李雷您好，请清除浏览器缓存后重新登录。\n"
        "视频无法播放怎么办: https://help.example.com/kb/video-playback"
    )
    await desk.keyboard.press("Control+Enter")
    await expect(desk.locator(".notice")).to_have_text("回复已发送。")
    await expect(conversation.locator("[data-kind=reply]")).to_contain_text(
        "help.example.com/kb/video-playback"
    )

    await desk.keyboard.press("n")
    await desk.locator("#note-body").fill("@cai 这个学员上周也反馈过播放问题")
    await desk.get_by_role("button", name="添加备注").click()
    await expect(desk.locator(".notice")).to_have_text("备注已添加。")
    await expect(conversation.locator("[data-kind=note]")).to_contain_text("@cai")

    # The learner answers on their phone; the agent's open page shows it without a reload.
    phone = await browser.new_page(locale="zh-CN")
    await phone.goto(links.portal_url(made.ticket_id))
    await phone.get_by_label("留言").fill("清除缓存后可以播放了，谢谢！")
    await phone.get_by_role("button", name="发送").click()
    await phone.close()
    await expect(conversation.locator("[data-kind=message]")).to_contain_text(
        "清除缓存后可以播放了", timeout=20_000
    )
    await shoot(desk, shots, "zh-ticket")

    await desk.locator("#resolve summary").click()
    await desk.locator("#resolution-code").select_option("answered")
    await desk.locator("#resolution").fill("清除缓存后已可以正常播放。")
    await desk.locator("#resolve button[type=submit]").click()
    await expect(desk.locator(".notice")).to_have_text("工单已解决，已请学员确认。")
    t = await tickets.ticket(made.ticket_id)
    assert t is not None and t["status"] == "resolved"


async def test_an_agent_merges_a_duplicate_transfers_and_finds_a_ticket_by_chinese_text(
    desk: Page, tickets: Tickets, passwords: dict[str, str], shots: Path
) -> None:
    made = await tickets.assigned(agent_id="ana", subject="发票抬头开错了", description=None)
    duplicate = await tickets.assigned(agent_id="ana", subject="发票抬头写错了，请重开")
    await log_in(desk, "ana", passwords["ana"])

    await desk.goto(f"/tickets/{duplicate.number}")
    await desk.locator("#merge summary").click()
    await desk.locator("#merge-into").fill(duplicate.number)
    await desk.locator("#merge button[type=submit]").click()
    await expect(desk.locator(".notice.error")).to_contain_text("操作没有完成")  # into itself
    await desk.locator("#merge summary").click()
    await desk.locator("#merge-into").fill(made.number)
    await desk.locator("#merge button[type=submit]").click()
    await expect(desk.locator(".notice")).to_have_text("工单已合并。")
    await expect(desk.locator("h1")).to_have_text("发票抬头开错了")
    await expect(desk.locator("#conversation")).to_contain_text(f"{duplicate.number} 已合并到这里")

    await desk.goto(f"/tickets/{made.number}")
    await desk.locator("#transfer summary").click()
    await desk.locator("#transfer-to").select_option("agent:cai")
    await desk.locator("#transfer-reason").fill("需要技术同事确认开票系统")
    await desk.locator("#transfer button[type=submit]").click()
    await expect(desk.locator(".notice")).to_have_text("工单已转交。")
    await expect(desk.locator("#details")).to_contain_text("Cai")
    await expect(desk.locator("#conversation")).to_contain_text(
        "已转交给 cai：需要技术同事确认开票系统"
    )

    await desk.keyboard.press("/")
    await desk.keyboard.type("发票抬头")
    await desk.keyboard.press("Enter")
    results = desk.locator("table.tickets tbody tr")
    await expect(results.filter(has_text=made.number)).to_have_count(1)
    await shoot(desk, shots, "zh-search")


async def test_a_supervisor_reads_the_workspace_in_english_on_a_tablet(
    tablet: Page, tickets: Tickets, passwords: dict[str, str], shots: Path
) -> None:
    made = await tickets.assigned(agent_id="ben", language="en", subject="Refund not received")
    await log_in(tablet, "sue", passwords["sue"])
    # The choice is kept on the account: an earlier test may have left sue in English.
    if await tablet.locator("html").get_attribute("lang") != "en":
        await tablet.get_by_role("button", name="English").click()
    await expect(tablet.locator("html")).to_have_attribute("lang", "en")

    await tablet.goto("/views/all")
    await expect(tablet.locator("h1")).to_have_text("All open")
    await expect(tablet.locator("table.tickets")).to_contain_text(made.number)
    await expect(tablet.locator("table.tickets")).to_contain_text("Refund not received")
    await fits(tablet, TABLET["width"])
    await shoot(tablet, shots, "en-all-tablet")

    await tablet.goto(f"/tickets/{made.number}")
    await expect(tablet.get_by_role("heading", name="Learner")).to_be_visible()
    await fits(tablet, TABLET["width"])
    await shoot(tablet, shots, "en-ticket-tablet")


async def test_a_supervisor_reassigns_a_ticket_at_risk_from_the_board(
    tablet: Page, tickets: Tickets, passwords: dict[str, str], shots: Path
) -> None:
    made = await tickets.submitted(language="en", subject="Exam starts in an hour, cannot log in")
    at = now()
    await publish(
        tickets.settings,
        [
            new_event(
                TicketRouted(
                    ticket_id=made.ticket_id,
                    channel=Channel.EMAIL,
                    category=Category.ACCOUNT_SECURITY,
                    priority=Priority.URGENT,
                    team="tech_support",
                    language="en",
                    first_response_due_at=at + timedelta(minutes=20),
                    resolution_due_at=at + timedelta(hours=4),
                    agent_id="ben",
                    routed_at=at,
                ),
                producer="test",
            )
        ],
    )
    await tickets.in_state(made.ticket_id, status="assigned")
    await log_in(tablet, "sue", passwords["sue"])

    await tablet.goto("/board")
    await expect(tablet.locator("#agents")).to_contain_text("Ben")
    at_risk = tablet.locator("#at-risk table.tickets")
    await expect(at_risk).to_contain_text(made.number)
    await expect(at_risk.locator(".due.soon")).not_to_have_count(0)
    await fits(tablet, TABLET["width"])
    await shoot(tablet, shots, "board-tablet")

    await tablet.locator("#reassign-ticket").select_option(made.number)
    await tablet.locator("#reassign-agent").select_option("cai")
    await tablet.locator("#at-risk input[name=reason]").fill("Ben 在开会，考试前必须处理")
    await tablet.locator("#at-risk button[type=submit]").click()
    await expect(tablet.locator("p.notice[role=status]")).to_be_visible()
    await tickets.in_state(made.ticket_id, assignee_id="cai")
