"""The learner portal and the learner API's read side, on desk in-process against the real
stack: what the page shows, what its forms store (and refuse), and whose tickets the API
gives out."""

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import httpx
import pytest

from services.desk import handlers
from services.desk.app import create_app
from services.desk.links import Links
from services.desk.settings import DeskSettings
from shared import topics
from shared.events import ArticlesSuggested, Channel, Learner, SuggestedArticle, new_event, now
from shared.settings import CommonSettings
from shared.signing import DEMO_SECRETS, learner_token
from tests.browser.tickets import HAN_MEIMEI, Tickets
from tests.integration.inprocess import environment, find_event, publish, served, service_env
from tests.support import RunningStack, eventually, fresh_groups

SECRET = "portal-integration-test-link-secret-0123456789"


@pytest.fixture(scope="module")
def desk_env(stack: RunningStack) -> dict[str, str]:
    return {**service_env(stack), **fresh_groups(), "CARELOOP_DESK_LINK_SECRET": SECRET}


@pytest.fixture(scope="module")
async def desk(desk_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    with environment(desk_env):
        async with served(lambda: create_app(DeskSettings()), "desk") as client:
            yield client


@pytest.fixture(scope="module")
def tickets(desk: httpx.AsyncClient, settings: CommonSettings, stack: RunningStack) -> Tickets:
    return Tickets(desk=desk, settings=settings, dsn=stack.dsn)


LinkPath = Callable[[uuid.UUID], str]


@pytest.fixture(scope="module")
def links(desk_env: dict[str, str]) -> Links:
    with environment(desk_env):
        return handlers.links_for(DeskSettings())


@pytest.fixture(scope="module")
def link_path(links: Links) -> LinkPath:
    return lambda ticket_id: "/t/" + links.portal_token(ticket_id)


def field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field on the page"
    return found.group(1)


async def form_of(desk: httpx.AsyncClient, path: str) -> dict[str, str]:
    page = await desk.get(path)
    assert page.status_code == 200
    return {"csrf": field(page.text, "csrf"), "nonce": field(page.text, "nonce")}


def bearer(learner_id: str, name: str) -> dict[str, str]:
    token = learner_token(
        source="app", secret=DEMO_SECRETS["app"], learner_id=learner_id, name=name
    )
    return {"Authorization": f"Bearer {token}"}


async def test_the_page_shows_status_and_conversation_in_the_tickets_language_or_the_asked_one(
    desk: httpx.AsyncClient, tickets: Tickets, link_path: LinkPath
) -> None:
    made = await tickets.replied()

    zh = await desk.get(link_path(made.ticket_id))
    en = await desk.get(link_path(made.ticket_id) + "?lang=en")

    assert zh.status_code == 200 and '<html lang="zh-CN">' in zh.text
    assert made.number in zh.text and "处理中" in zh.text
    assert "章的视频时一直在加载" in zh.text and "请先清除浏览器缓存" in zh.text
    assert "客服已接手您的问题" in zh.text and "triaged" not in zh.text
    assert en.status_code == 200 and "In progress" in en.text and "An agent took" in en.text
    assert zh.headers["cache-control"] == "no-store"
    assert zh.headers["referrer-policy"] == "no-referrer"


async def test_a_forged_or_cut_link_opens_a_page_that_says_so_and_its_forms_store_nothing(
    desk: httpx.AsyncClient, tickets: Tickets, link_path: LinkPath
) -> None:
    made = await tickets.assigned()
    good = link_path(made.ticket_id)

    for bad in (good[:-3], "/t/" + "A" * 400, f"/t/{made.ticket_id}", "/t/你好%00"):
        page = await desk.get(bad)
        posted = await desk.post(bad + "/messages", data={"body": "hello"})
        assert page.status_code == 404 and "链接已过期或无效" in page.text
        assert "This link has expired or is not valid" in page.text
        assert "<form" not in page.text
        assert posted.status_code == 404
    assert await tickets.messages(made.ticket_id) == []


async def test_a_message_from_the_page_lands_on_the_ticket_once_though_sent_twice(
    desk: httpx.AsyncClient, tickets: Tickets, link_path: LinkPath, stack: RunningStack
) -> None:
    made = await tickets.replied()
    path = link_path(made.ticket_id)
    form = await form_of(desk, path)
    message = {
        **form,
        "lang": "zh",
        "body": "清除缓存后还是不行，截图见附件。",
        "attachment_name": "截图.png",
        "attachment_url": "https://files.example.com/u/1/shot.png",
    }

    first = await desk.post(path + "/messages", data=message)
    again = await desk.post(path + "/messages", data=message)

    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == f"{path}?lang=zh&notice=sent"
    [stored] = await tickets.messages(made.ticket_id)
    assert stored["body"] == "清除缓存后还是不行，截图见附件。" and stored["channel"] == "web"
    assert json.loads(stored["attachments"]) == [
        {
            "name": "截图.png",
            "content_type": "image/png",
            "size": 0,
            "url": "https://files.example.com/u/1/shot.png",
        }
    ]
    event = await find_event(
        stack.bootstrap,
        topics.TICKETS,
        lambda e: e.type == "ticket.message_received" and e.data.ticket_id == made.ticket_id,
    )
    assert event.data.assignee_id == "ana" and event.data.learner.name == "李雷"
    shown = await desk.get(path + "?notice=sent")
    assert "您的留言已发送" in shown.text and "截图.png" in shown.text


async def test_a_post_without_the_pages_form_token_is_refused_and_the_page_comes_back(
    desk: httpx.AsyncClient, tickets: Tickets, link_path: LinkPath
) -> None:
    made = await tickets.assigned()
    path = link_path(made.ticket_id)
    form = await form_of(desk, path)

    forged = await desk.post(path + "/messages", data={"body": "hi", "csrf": "0" * 64})
    cross_site = await desk.post(
        path + "/messages", data={**form, "body": "hi"}, headers={"Sec-Fetch-Site": "cross-site"}
    )

    for refused in (forged, cross_site):
        assert refused.status_code == 403
        assert "页面已过期，请重新打开链接后再试" in refused.text
        assert field(refused.text, "csrf") == form["csrf"], "a fresh form to send again"
    assert await tickets.messages(made.ticket_id) == []


async def test_an_empty_or_unstorable_message_is_shown_again_with_the_reason(
    desk: httpx.AsyncClient, tickets: Tickets, link_path: LinkPath
) -> None:
    made = await tickets.assigned(language="en", subject="Video will not play")
    path = link_path(made.ticket_id)
    form = await form_of(desk, path)

    empty = await desk.post(path + "/messages", data={**form, "body": "  "})
    half = await desk.post(
        path + "/messages", data={**form, "body": "see file", "attachment_name": "a.png"}
    )

    assert empty.status_code == 422 and "Please write a message or add a file." in empty.text
    assert half.status_code == 422 and "A file needs both a name and a link." in half.text
    assert ">see file</textarea>" in half.text, "what the learner wrote is kept"
    assert f'action="{path}/messages"' in half.text, "shown at the form's address, posts right"
    assert (await desk.get(path + "/messages")).headers["location"] == path
    assert await tickets.messages(made.ticket_id) == []


async def test_a_message_on_a_resolved_ticket_reopens_it(
    desk: httpx.AsyncClient, tickets: Tickets, link_path: LinkPath
) -> None:
    made = await tickets.resolved()
    path = link_path(made.ticket_id)

    r = await desk.post(
        path + "/messages", data={**await form_of(desk, path), "body": "还是不能播放"}
    )

    assert r.status_code == 303
    t = await tickets.in_state(made.ticket_id, status="reopened")
    assert t["history"][-1]["detail"] == {"reason": "learner_message"}


async def test_solved_on_the_page_closes_the_ticket_and_a_second_answer_is_told_so(
    desk: httpx.AsyncClient, tickets: Tickets, link_path: LinkPath
) -> None:
    made = await tickets.resolved()
    path = link_path(made.ticket_id)
    page = await desk.get(path)
    assert "您的问题解决了吗？" in page.text
    form = {"csrf": field(page.text, "csrf"), "lang": "zh"}

    solved = await desk.post(path + "/answer", data={**form, "answer": "solved"})
    again = await desk.post(path + "/answer", data={**form, "answer": "not_solved"})

    assert solved.status_code == 303 and "notice=closed" in solved.headers["location"]
    await tickets.in_state(made.ticket_id, status="closed")
    assert again.status_code == 409 and "这个问题已经确认过了" in again.text
    closed = await desk.get(path)
    assert "已关闭" in closed.text and "新建一个问题" in closed.text


async def test_a_message_on_a_closed_ticket_opens_a_new_one_linked_to_it(
    desk: httpx.AsyncClient, tickets: Tickets, link_path: LinkPath, links: Links
) -> None:
    made = await tickets.resolved()
    path = link_path(made.ticket_id)
    form = await form_of(desk, path)
    await desk.post(path + "/answer", data={"csrf": form["csrf"], "answer": "solved"})
    await tickets.in_state(made.ticket_id, status="closed")
    form = await form_of(desk, path)

    sent = {**form, "body": "又出现了同样的问题"}
    first = await desk.post(path + "/messages", data=sent)
    again = await desk.post(path + "/messages", data=sent)  # the same form sent twice

    assert first.status_code == 303 and "notice=opened" in first.headers["location"]
    # one new ticket: both links name it (each link's signature carries the second it was made)
    [opened, twice] = [
        links.verify_portal_token(urlsplit(r.headers["location"]).path.removeprefix("/t/"))
        for r in (first, again)
    ]
    assert opened is not None and twice == opened != made.ticket_id
    page = await desk.get(first.headers["location"])
    assert "又出现了同样的问题" in page.text and "新建了这个问题" in page.text
    await tickets.in_state(made.ticket_id, status="closed")  # the first stays closed


async def test_an_answer_that_is_neither_is_refused_with_the_choices(
    desk: httpx.AsyncClient, tickets: Tickets, link_path: LinkPath
) -> None:
    made = await tickets.resolved()
    path = link_path(made.ticket_id)
    form = await form_of(desk, path)

    r = await desk.post(path + "/answer", data={"csrf": form["csrf"], "answer": "maybe"})

    assert r.status_code == 422 and "请选择“已解决”或“还没有解决”" in r.text
    await tickets.in_state(made.ticket_id, status="resolved")


async def test_a_learner_lists_and_reads_their_own_tickets_by_id_or_number(
    desk: httpx.AsyncClient, tickets: Tickets
) -> None:
    learner = Learner(name="王芳", learner_id=f"L-{uuid.uuid4().hex[:8]}")
    mine = await tickets.replied(learner=learner, channel=Channel.APP)
    who = bearer(learner.learner_id or "", "王芳")

    listed = await desk.get("/v1/learner/tickets", headers=who)
    by_number = await desk.get(f"/v1/learner/tickets/{mine.number.lower()}", headers=who)
    by_id = await desk.get(f"/v1/learner/tickets/{mine.ticket_id}", headers=who)

    assert listed.status_code == 200
    assert [t["number"] for t in listed.json()] == [mine.number]
    assert listed.json()[0]["portal_url"].split("/t/")[0] == "http://127.0.0.1:18082"
    assert by_number.status_code == by_id.status_code == 200
    detail = by_number.json()
    assert detail == by_id.json() | {"portal_url": detail["portal_url"]}
    assert [(c["kind"], c["author"]) for c in detail["conversation"]] == [
        ("description", "learner"),
        ("event", "careloop"),
        ("reply", "agent"),
    ]
    assert detail["conversation"][2]["agent"] == "Ana"  # the agent by name


async def test_another_learners_ticket_is_not_found_and_a_bad_token_is_refused(
    desk: httpx.AsyncClient, tickets: Tickets
) -> None:
    theirs = await tickets.assigned(learner=HAN_MEIMEI)
    me = bearer("L-someone-else", "李雷")
    forged = learner_token(
        source="app", secret="not-the-app-secret", learner_id="L-2002", name="韩梅梅"
    )

    other = await desk.get(f"/v1/learner/tickets/{theirs.number}", headers=me)
    unknown = await desk.get("/v1/learner/tickets/CL-999999999", headers=me)
    nonsense = await desk.get("/v1/learner/tickets/not-a-ticket", headers=me)
    none = await desk.get("/v1/learner/tickets")
    bad = await desk.get("/v1/learner/tickets", headers={"Authorization": f"Bearer {forged}"})

    assert other.status_code == unknown.status_code == nonsense.status_code == 404
    assert other.json() == unknown.json() == {"detail": "no such ticket"}
    assert none.status_code == bad.status_code == 401
    assert bad.json()["detail"].startswith("forged")
    assert none.headers["www-authenticate"] == "Bearer"


async def test_an_offered_article_that_solved_it_closes_the_ticket_as_self_served(
    desk: httpx.AsyncClient,
    tickets: Tickets,
    link_path: LinkPath,
    settings: CommonSettings,
    stack: RunningStack,
) -> None:
    made = await tickets.assigned()
    refund, video = uuid.uuid4(), uuid.uuid4()
    suggested = new_event(
        ArticlesSuggested(
            ticket_id=made.ticket_id,
            language="zh",
            articles=tuple(
                SuggestedArticle(
                    article_id=a, title=title, url=f"http://kb.example/kb/{a}", score=0.1
                )
                for a, title in ((video, "视频<b>一直</b>黑屏怎么办"), (refund, "退款到账时间"))
            ),
            suggested_at=now(),
        ),
        producer="test",
    )
    path = link_path(made.ticket_id)
    await publish(settings, [suggested, suggested])  # a redelivery changes nothing

    async def offered() -> str | None:
        page = await desk.get(path)
        return page.text if "这篇解决了我的问题" in page.text else None

    html = await eventually(offered)
    assert "视频&lt;b&gt;一直&lt;/b&gt;黑屏怎么办" in html  # a title is text, not markup
    form = await form_of(desk, path)

    unknown = await desk.post(path + "/solved", data={**form, "article": str(uuid.uuid4())})
    solved = await desk.post(path + "/solved", data={**form, "article": str(video)})
    again = await desk.post(path + "/solved", data={**form, "article": str(video)})
    forged = await desk.post(path + "/solved", data={"csrf": "x", "article": str(video)})

    assert unknown.status_code == 409
    assert solved.status_code == 303 and "notice=self_served" in solved.headers["location"]
    assert again.status_code == 409 and forged.status_code == 403
    t = await tickets.in_state(made.ticket_id, status="closed")
    assert t["resolution_code"] == "self_served"
    page = await desk.get(path)
    assert "这篇解决了我的问题" not in page.text  # a closed ticket offers nothing
    assert "您确认这篇文章解决了问题" in page.text and "客服已将问题标记为已解决" not in page.text
    resolved = await find_event(
        stack.bootstrap,
        topics.TICKETS,
        lambda e: e.type == "ticket.resolved" and e.data.ticket_id == made.ticket_id,
    )
    closed = await find_event(
        stack.bootstrap,
        topics.TICKETS,
        lambda e: e.type == "ticket.closed" and e.data.ticket_id == made.ticket_id,
    )
    assert resolved.data.resolution_code == "self_served"
    assert closed.data.reason == "confirmed"
