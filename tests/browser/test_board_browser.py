"""The supervisor board in real Chromium, against desk over HTTP on its own stack: routing's
agent.status (as routing publishes it) shows each agent's presence, load against capacity and
last seen, in Chinese on a desktop; a supervisor's change of an agent's presence and capacity
leaves for routing as agent.change_requested. Screenshots go where the portal's go (see conftest)."""

from datetime import timedelta
from pathlib import Path

import msgspec
from playwright.async_api import Browser, Page, expect

from shared import topics
from shared.events import AgentChangeRequested, AgentStatus, Envelope, new_event, now
from tests.browser.test_workspace_browser import DESKTOP, fits, log_in, page_of, passwords, shoot
from tests.browser.tickets import Tickets
from tests.integration.inprocess import find_event, publish
from tests.support import eventually

__all__ = ["passwords"]  # the module's fixture: the test users' passwords, set by an admin


def status(agent_id: str, **fields: object) -> Envelope[AgentStatus]:
    at = now()
    data = AgentStatus(
        **{
            "agent_id": agent_id,
            "online": True,
            "available": True,
            "on_shift": True,
            "capacity": 4,
            "used": 0.0,
            "load": 0,
            "last_seen_at": at - timedelta(minutes=2),
            "teams": ("tech_support",),
            "at": at,
            **fields,
        }  # type: ignore[arg-type]
    )
    return msgspec.structs.replace(new_event(data, producer="routing"), key=agent_id)


async def test_the_board_shows_presence_and_load_against_capacity(
    browser: Browser, desk_url: str, tickets: Tickets, passwords: dict[str, str], shots: Path
) -> None:
    await publish(
        tickets.settings,
        [
            status("ana", used=3.0, load=3),
            status("ben", used=4.0, load=4),
            status("cai", available=False),  # online, but not seen within the presence TTL
            status("sue", online=False, available=False, capacity=2),
        ],
    )
    page: Page = await page_of(browser, desk_url, DESKTOP)
    try:
        await log_in(page, "sue", passwords["sue"])
        row = page.locator("#agents tr[data-agent=ben]")

        async def applied() -> bool:
            await page.goto("/board")
            return "满负荷" in await row.inner_text()

        assert await eventually(applied, timeout=30, interval=0.5)
        ana = page.locator("#agents tr[data-agent=ana]")
        await expect(ana.locator(".presence.available")).to_have_text("可接单")
        await expect(ana.locator("meter")).to_have_attribute("value", "3.0")
        await expect(ana.locator("meter")).to_have_attribute("max", "4")
        await expect(ana.locator("td.load")).to_contain_text("3.0 / 4")
        await expect(row.locator(".presence.full")).to_be_visible()
        cai = page.locator("#agents tr[data-agent=cai] .presence.away")
        await expect(cai).to_have_text("暂离")
        sue = page.locator("#agents tr[data-agent=sue] .presence.offline")
        await expect(sue).to_have_text("离线")
        await fits(page, DESKTOP["width"])
        await shoot(page, shots, "board-presence")

        # A capacity that is no number is refused on the page, naming the field.
        await page.locator("#change-agent-id").select_option("cai")
        await page.locator("#change-capacity").evaluate("e => { e.type = 'text'; }")
        await page.locator("#change-capacity").fill("五")
        await page.locator("#change-agent button[type=submit]").click()
        await expect(page.locator("p.notice.error")).to_contain_text("容量须为 0 到 1000 的整数")

        # Cai online with capacity 6: sent to routing as the supervisor.
        await page.locator("#change-agent-id").select_option("cai")
        await page.locator("#change-online").select_option("online")
        await page.locator("#change-capacity").fill("6")
        await page.locator("#change-agent button[type=submit]").click()
        await expect(page.locator("p.notice[role=status]")).to_contain_text("已提交给路由服务")
        sent = await find_event(
            tickets.settings.kafka_bootstrap,
            topics.PEOPLE,
            lambda e: e.type == AgentChangeRequested.TYPE and e.data.agent_id == "cai",
        )
        assert (sent.key, sent.data.online, sent.data.capacity, sent.data.by) == (
            "cai",
            True,
            6,
            "sue",
        )
    finally:
        await page.context.close()
