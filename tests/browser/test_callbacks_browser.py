"""Call-backs in the workspace, in real Chromium against desk on its own stack: a complaint the
learner confirmed solved is closed, so it is due a call-back (R9.3); its agent finds it in the
call-back list, is refused a score for a learner not reached, records the call made, and the
outcome leaves on Kafka for the satisfaction analysis (Chinese on a desktop, English on a
tablet)."""

from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.async_api import Browser, expect

from shared import topics
from shared.events import Category, Learner
from tests.browser.test_workspace_browser import (
    DESKTOP,
    TABLET,
    fits,
    log_in,
    page_of,
    passwords,
    shoot,
)
from tests.browser.tickets import Tickets
from tests.integration.inprocess import find_event

__all__ = ["passwords"]  # the module's fixture: the test users' passwords, set by an admin

WANG = Learner(name="王芳", email="wangfang@example.com", phone="+8613911112222")


async def closed_complaint(tickets: Tickets, desk_url: str, subject: str, text: str) -> str:
    """A complaint, resolved by ana and confirmed solved by the learner: its number."""
    made = await tickets.assigned(
        category=Category.COMPLAINT, subject=subject, description=text, learner=WANG
    )
    await tickets.reply(made.ticket_id, "非常抱歉，我们已与王老师沟通，并为您补一节课。")
    await tickets.resolve(made.ticket_id, "已补课并提醒老师准时。")
    resolved = await find_event(
        tickets.settings.kafka_bootstrap,
        topics.TICKETS,
        lambda e: e.type == "ticket.resolved" and e.data.ticket_id == made.ticket_id,
    )
    confirm = urlsplit(resolved.data.confirm_url).path  # the learner's link, on this desk
    async with httpx.AsyncClient(base_url=desk_url, timeout=30) as learner:
        answered = await learner.post(confirm, data={"answer": "solved"})
        assert answered.status_code == 200, answered.text
    await tickets.in_state(made.ticket_id, status="closed")
    return made.number


async def test_an_agent_records_a_call_back_after_a_complaint_closed(
    browser: Browser, desk_url: str, tickets: Tickets, passwords: dict[str, str], shots: Path
) -> None:
    number = await closed_complaint(
        tickets, desk_url, "投诉老师直播迟到", "王老师第三次直播迟到二十分钟，希望给个说法。"
    )
    page = await page_of(browser, desk_url, DESKTOP)
    try:
        await log_in(page, "ana", passwords["ana"])
        if await page.locator("html").get_attribute("lang") == "en":  # kept on the account
            await page.get_by_role("button", name="中文").click()
        await page.get_by_role("link", name="回访任务").click()
        await expect(page.locator("h1")).to_have_text("到期的回访")
        due = page.locator(f"section.callback[data-ticket='{number}']")
        await expect(due).to_contain_text("投诉")
        await expect(due.get_by_role("link", name="+8613911112222")).to_have_attribute(
            "href", "tel:+8613911112222"
        )
        await fits(page, DESKTOP["width"])
        await shoot(page, shots, "callbacks-zh")

        await due.get_by_role("radio", name="未接通").check()
        await due.get_by_label("满意度").select_option("2")
        await due.get_by_label("学员怎么说（或未接通的情况）").fill("无人接听")
        await due.get_by_role("button", name="记录回访").click()
        await expect(page.get_by_role("alert")).to_have_text("没有联系上学员时不能填满意度。")

        due = page.locator(f"section.callback[data-ticket='{number}']")
        await due.get_by_role("radio", name="联系上学员").check()
        await due.get_by_label("满意度").select_option("4")
        await due.get_by_label("学员怎么说（或未接通的情况）").fill("补课已上，<b>老师</b>这次准时")
        await due.get_by_role("button", name="记录回访").click()
        await expect(page.get_by_role("status")).to_have_text("回访已记录。")
        await expect(page.locator(f"section.callback[data-ticket='{number}']")).to_have_count(0)
    finally:
        await page.context.close()

    recorded = await find_event(
        tickets.settings.kafka_bootstrap,
        topics.TICKETS,
        lambda e: e.type == "callback.recorded" and e.data.number == number,
    )
    assert (recorded.data.reason, recorded.data.reached, recorded.data.score) == (
        "complaint",
        True,
        4,
    )
    assert recorded.data.note == "补课已上，<b>老师</b>这次准时" and recorded.data.by == "ana"


async def test_a_supervisor_sees_every_call_back_in_english_on_a_tablet(
    browser: Browser, desk_url: str, tickets: Tickets, passwords: dict[str, str], shots: Path
) -> None:
    number = await closed_complaint(
        tickets, desk_url, "Complaint: teacher late again", "Mr Wang was late for the fourth time."
    )
    page = await page_of(browser, desk_url, TABLET)
    try:
        await log_in(page, "sue", passwords["sue"])
        if await page.locator("html").get_attribute("lang") != "en":
            await page.get_by_role("button", name="English").click()
        await page.get_by_role("link", name="Call-backs").click()
        due = page.locator(f"section.callback[data-ticket='{number}']")
        await expect(due).to_contain_text("Complaint")  # ana's ticket: a supervisor sees all
        await expect(due.get_by_role("button", name="Record call-back")).to_be_visible()
        await fits(page, TABLET["width"])
        await shoot(page, shots, "callbacks-en-tablet")
    finally:
        await page.context.close()
