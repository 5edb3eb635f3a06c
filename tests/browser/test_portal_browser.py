"""A learner on a 390×844 phone opens the link from a message: reads the ticket in Chinese or
English, adds a message, answers "solved?", and meets a clear page when the link is old.
Every page is screenshotted (see conftest) and checked for what a phone needs: nothing wider
than the screen, tap targets at least 44 px, Chinese in a CJK font."""

import time
import uuid
from pathlib import Path

from itsdangerous import TimestampSigner
from playwright.async_api import Page, expect

from services.desk.links import SALT, Links
from shared import topics
from shared.events import ArticlesSuggested, SuggestedArticle, new_event, now
from tests.browser.conftest import LINK_SECRET, PHONE
from tests.browser.tickets import Tickets
from tests.integration.inprocess import find_event, publish
from tests.support import RunningStack, eventually

YEAR = 365 * 86_400


async def fits_a_phone(page: Page) -> None:
    """Nothing scrolls sideways, and every control is big enough to tap."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide"
    small = await page.evaluate(
        """() => [...document.querySelectorAll('button, a, input, textarea, summary')]
            .filter(e => e.offsetParent !== null)
            .map(e => [e.outerHTML.slice(0, 80), e.getBoundingClientRect().height])
            .filter(([, h]) => h < 44)"""
    )
    assert small == [], f"tap targets under 44 px: {small}"


async def renders_chinese_with_a_cjk_font(page: Page) -> None:
    fonts = await page.evaluate(
        """async () => { await document.fonts.ready;
            return document.fonts.check('16px "WenQuanYi Micro Hei"', '您的问题'); }"""
    )
    assert fonts, "no CJK font: install fonts-wqy-microhei"


async def shoot(page: Page, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


async def test_a_learner_reads_the_ticket_in_chinese_on_a_phone(
    phone: Page, tickets: Tickets, links: Links, shots: Path
) -> None:
    made = await tickets.replied()

    await phone.goto(links.portal_url(made.ticket_id))

    await expect(phone.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(phone.locator("h1")).to_have_text("课程视频无法播放")
    await expect(phone.locator(".status")).to_have_text("处理中")
    conversation = phone.locator("ol.conversation > li")
    await expect(conversation).to_have_count(3)
    await expect(conversation.nth(0)).to_contain_text("章的视频时一直在加载")
    await expect(conversation.nth(0)).to_contain_text("您")
    await expect(conversation.nth(1)).to_contain_text("客服已接手您的问题")
    await expect(conversation.nth(2)).to_contain_text("请先清除浏览器缓存")
    await expect(phone.get_by_text(made.number)).to_be_visible()
    await renders_chinese_with_a_cjk_font(phone)
    await fits_a_phone(phone)
    await shoot(phone, shots, "zh-assigned")


async def test_the_same_link_reads_in_english_when_asked(
    phone: Page, tickets: Tickets, links: Links, shots: Path
) -> None:
    made = await tickets.replied()
    await phone.goto(links.portal_url(made.ticket_id))

    await phone.get_by_role("link", name="English").tap()

    await expect(phone.locator("html")).to_have_attribute("lang", "en")
    await expect(phone.locator(".status")).to_have_text("In progress")
    await expect(phone.get_by_role("heading", name="Add a message")).to_be_visible()
    await expect(phone.locator("ol.conversation")).to_contain_text("An agent took your request")
    await fits_a_phone(phone)
    await shoot(phone, shots, "en-assigned")


async def test_a_message_added_on_the_phone_lands_on_the_ticket(
    phone: Page, tickets: Tickets, links: Links, shots: Path
) -> None:
    made = await tickets.replied()
    await phone.goto(links.portal_url(made.ticket_id))

    await phone.get_by_role("button", name="发送").tap()
    await expect(phone.get_by_role("alert")).to_have_text("请写下留言内容，或添加一个附件。")
    await shoot(phone, shots, "zh-empty")
    await phone.get_by_label("留言").fill("清除缓存后还是不行。\n用的是 iPhone 上的微信浏览器。")
    await phone.get_by_text("添加附件链接").tap()
    await phone.get_by_label("附件名称").fill("录屏.mp4")
    await phone.get_by_label("附件链接（https://…）").fill("https://pan.example.com/s/8f3k2")
    await shoot(phone, shots, "zh-writing")
    await phone.get_by_role("button", name="发送").tap()

    await expect(phone.get_by_role("status")).to_have_text("您的留言已发送，客服会尽快回复。")
    last = phone.locator("ol.conversation > li").last
    await expect(last).to_contain_text("用的是 iPhone 上的微信浏览器。")
    await expect(last.get_by_role("link", name="录屏.mp4")).to_have_attribute(
        "href", "https://pan.example.com/s/8f3k2"
    )
    [stored] = await tickets.messages(made.ticket_id)
    assert stored["body"] == "清除缓存后还是不行。\n用的是 iPhone 上的微信浏览器。"
    assert stored["channel"] == "web"
    await fits_a_phone(phone)
    await shoot(phone, shots, "zh-sent")


async def test_solved_on_a_resolved_ticket_closes_it(
    phone: Page, tickets: Tickets, links: Links, shots: Path
) -> None:
    made = await tickets.resolved()
    await phone.goto(links.portal_url(made.ticket_id))
    await expect(phone.get_by_role("heading", name="您的问题解决了吗？")).to_be_visible()
    await expect(phone.locator("ol.conversation")).to_contain_text("已为您重置播放权限。")
    await fits_a_phone(phone)
    await shoot(phone, shots, "zh-resolved")

    await phone.get_by_role("button", name="已解决").tap()

    await expect(phone.get_by_role("status")).to_have_text("感谢您的确认，问题已关闭。")
    await expect(phone.locator(".status")).to_have_text("已关闭")
    await expect(phone.locator("#add")).to_contain_text("新建一个问题")
    await tickets.in_state(made.ticket_id, status="closed")
    await shoot(phone, shots, "zh-closed")

    # a message on the closed ticket opens a new one, linked, and the learner lands on it
    await phone.get_by_label("留言").fill("同样的问题又出现了")
    await phone.get_by_role("button", name="发送").tap()
    await expect(phone.get_by_role("status")).to_contain_text("新建了这个问题")
    await expect(phone.locator("ol.conversation")).to_contain_text("同样的问题又出现了")
    await fits_a_phone(phone)
    await shoot(phone, shots, "zh-linked")


async def test_not_solved_on_a_resolved_ticket_reopens_it(
    phone: Page, tickets: Tickets, links: Links, shots: Path
) -> None:
    made = await tickets.resolved(language="en", subject="The video will not play")
    await phone.goto(links.portal_url(made.ticket_id))
    await expect(phone.get_by_role("heading", name="Is your problem solved?")).to_be_visible()
    await fits_a_phone(phone)
    await shoot(phone, shots, "en-resolved")

    await phone.get_by_role("button", name="No, not solved").tap()

    await expect(phone.get_by_role("status")).to_have_text(
        "We are on it again; your request is open."
    )
    await expect(phone.locator(".status")).to_have_text("Reopened")
    await tickets.in_state(made.ticket_id, status="reopened")
    await shoot(phone, shots, "en-reopened")


async def test_an_expired_link_opens_a_page_that_says_what_to_do(
    phone: Page, tickets: Tickets, links: Links, shots: Path
) -> None:
    made = await tickets.assigned()

    class YearOld(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - YEAR

    old = YearOld(LINK_SECRET, salt=SALT).sign(made.ticket_id.hex).decode()
    response = await phone.goto(
        links.portal_url(made.ticket_id).replace(links.portal_token(made.ticket_id), old)
    )

    assert response is not None and response.status == 404
    await expect(phone.get_by_role("heading", name="链接已过期或无效")).to_be_visible()
    await expect(phone.get_by_text("请打开我们最近发给您的消息")).to_be_visible()
    await expect(phone.locator("form")).to_have_count(0)
    await fits_a_phone(phone)
    await shoot(phone, shots, "expired")


async def test_the_emailed_confirmation_page_fits_a_phone_and_its_button_answers(
    phone: Page, tickets: Tickets, stack: RunningStack, shots: Path
) -> None:
    made = await tickets.resolved()
    resolved = await find_event(
        stack.bootstrap,
        topics.TICKETS,
        lambda e: e.type == "ticket.resolved" and e.data.ticket_id == made.ticket_id,
    )

    await phone.goto(resolved.data.confirm_url)
    await renders_chinese_with_a_cjk_font(phone)
    await fits_a_phone(phone)
    await shoot(phone, shots, "confirm")
    await phone.get_by_role("button", name="未解决 · No, not solved").tap()

    await expect(phone.get_by_role("heading", name="我们会继续处理")).to_be_visible()
    await tickets.in_state(made.ticket_id, status="reopened")
    await fits_a_phone(phone)
    await shoot(phone, shots, "confirm-reopened")


async def test_an_offered_article_that_solved_it_closes_the_ticket_from_the_phone(
    phone: Page, tickets: Tickets, links: Links, shots: Path
) -> None:
    made = await tickets.assigned()
    article = uuid.uuid4()
    suggested = ArticlesSuggested(
        ticket_id=made.ticket_id,
        language="zh",
        articles=(
            SuggestedArticle(
                article_id=article,
                title="视频无法播放怎么办",
                url=f"http://127.0.0.1:18087/kb/{article}?lang=zh",
                score=0.09,
            ),
        ),
        suggested_at=now(),
    )
    await publish(tickets.settings, [new_event(suggested, producer="test")])
    solved = phone.get_by_role("button", name="这篇解决了我的问题")

    async def offered() -> bool:
        await phone.goto(links.portal_url(made.ticket_id))
        return await solved.count() == 1

    await eventually(offered)
    await expect(phone.get_by_role("link", name="视频无法播放怎么办")).to_be_visible()
    await fits_a_phone(phone)
    await shoot(phone, shots, "zh-articles-offered")

    await solved.tap()

    await expect(phone.locator(".status")).to_have_text("已关闭")
    await expect(phone.locator(".notice")).to_contain_text("很高兴文章帮到了您")
    await expect(phone.locator("ol.conversation")).to_contain_text("您确认这篇文章解决了问题")
    await expect(solved).to_have_count(0)
    await shoot(phone, shots, "zh-self-served")
