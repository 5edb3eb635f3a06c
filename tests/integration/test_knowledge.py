"""knowledge in-process against the real stack: search ranking in Chinese and English on real
Postgres, articles' versions and roles, suggestions for new tickets on Kafka, and learners'
votes on the article page ranking what is suggested."""

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.knowledge.app import create_app
from services.knowledge.seed import DEMO, load, seed
from services.knowledge.settings import KnowledgeSettings
from shared import topics
from shared.events import Channel, Learner, TicketCreated, new_event, now
from shared.settings import CommonSettings
from tests.integration.inprocess import (
    ANA,
    SUE,
    caught_up,
    environment,
    find_event,
    publish,
    served,
    service_env,
)
from tests.support import RunningStack, fresh_groups

BEN = {"Authorization": "Bearer test-ben-token"}
DEMO_ARTICLES = load(DEMO)


def knowledge_env(stack: RunningStack) -> dict[str, str]:
    """The service's own role once the stack provisions one; until then the admin's DSN."""
    env = {**service_env(stack), **fresh_groups()}
    env.setdefault("CARELOOP_KNOWLEDGE_PG_DSN", stack.dsn)
    return env


@pytest.fixture(scope="module")
def env(stack: RunningStack) -> dict[str, str]:
    return knowledge_env(stack)


@pytest.fixture(scope="module")
async def knowledge(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    with environment(env):
        settings = KnowledgeSettings()
        assert await seed(settings, DEMO_ARTICLES) == len(DEMO_ARTICLES)
        assert await seed(settings, DEMO_ARTICLES) == 0  # the local run may seed every start
        async with served(lambda: create_app(settings), "knowledge") as client:
            yield client


async def tickets_read(stack: RunningStack, env: dict[str, str]) -> None:
    """Wait until the knowledge started with `env` has read every ticket event there is now."""
    group = env["CARELOOP_KAFKA_GROUP_PREFIX"] + "knowledge"
    await caught_up(stack.bootstrap, group, topics.TICKETS)


def demo_id(slug: str, language: str) -> str:
    [found] = [a for a in DEMO_ARTICLES if a.slug == slug and a.lang == language]
    return str(found.article_id)


async def top(client: httpx.AsyncClient, q: str, **params: str) -> list[str]:
    r = await client.get("/v1/articles", params={"q": q, **params}, headers=ANA)
    assert r.status_code == 200, r.text
    return [a["article_id"] for a in r.json()]


@pytest.mark.parametrize(
    ("question", "slug"),
    [
        ("退款多久到账", "refund-timing"),
        ("视频一直黑屏，放不了", "video-playback"),
        ("忘记密码了登录不上", "reset-password"),
        ("我想改一下明天直播课的时间", "reschedule-class"),
        ("證書在哪裡下載", "certificate"),  # traditional characters
    ],
)
async def test_a_chinese_question_finds_the_article_that_answers_it_first(
    knowledge: httpx.AsyncClient, question: str, slug: str
) -> None:
    found = await top(knowledge, question, language="zh")
    assert found[0] == demo_id(slug, "zh")


@pytest.mark.parametrize(
    ("question", "slug"),
    [
        ("How long until my refund arrives?", "refund-timing"),
        ("the video keeps buffering", "video-playback"),
        ("I can't log in, forgot my password", "reset-password"),
        ("Can I move my class to next week?", "reschedule-class"),
        ("certificates", "certificate"),  # stemmed: certificate
    ],
)
async def test_an_english_question_finds_the_article_that_answers_it_first(
    knowledge: httpx.AsyncClient, question: str, slug: str
) -> None:
    found = await top(knowledge, question, language="en")
    assert found[0] == demo_id(slug, "en")


async def test_more_matching_words_rank_higher_than_one_shared_word(
    knowledge: httpx.AsyncClient,
) -> None:
    """'时间' is in the refund article's title, but the class article matches four words."""
    found = await top(knowledge, "我想改一下明天直播课的时间", language="zh")
    assert found.index(demo_id("reschedule-class", "zh")) < found.index(
        demo_id("refund-timing", "zh")
    )


async def test_a_question_about_something_no_article_covers_finds_nothing(
    knowledge: httpx.AsyncClient,
) -> None:
    assert await top(knowledge, "我要投诉老师态度差") == []


def article(title: str, **fields: Any) -> dict[str, Any]:
    return {
        "title": title,
        "body": "发票在订单详情页申请，电子发票 3 个工作日内发到邮箱。",
        "category": "payment_refund",
        "tags": ["发票"],
        **fields,
    }


async def test_every_change_is_a_version_and_an_edit_from_an_old_one_is_refused(
    knowledge: httpx.AsyncClient, stack: RunningStack
) -> None:
    r = await knowledge.post("/v1/articles", json=article("如何申请发票"), headers=SUE)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["status"], created["version"], created["owner_id"], created["language"]) == (
        "draft",
        1,
        "sue",
        "zh",
    )
    path = f"/v1/articles/{created['article_id']}"
    assert (await knowledge.get(path, headers=ANA)).status_code == 404  # someone else's draft

    edit = article("如何申请电子发票", version=1)
    r = await knowledge.put(path, json=edit, headers=SUE)
    assert (r.status_code, r.json()["version"]) == (200, 2)
    stale = await knowledge.put(path, json=article("申请发票", version=1), headers=SUE)
    assert stale.status_code == 409
    assert "version 1 is not the current one (2)" in stale.json()["detail"]

    r = await knowledge.post(f"{path}/publish", json={"version": 2}, headers=SUE)
    assert (r.status_code, r.json()["status"], r.json()["version"]) == (200, "published", 3)
    again = await knowledge.post(f"{path}/publish", json={"version": 3}, headers=SUE)
    assert again.status_code == 409
    assert (await knowledge.get(path, headers=ANA)).json()["title"] == "如何申请电子发票"
    tagged = await knowledge.get("/v1/articles", params={"tag": "发票"}, headers=ANA)
    assert [a["article_id"] for a in tagged.json()] == [created["article_id"]]

    history = (await knowledge.get(f"{path}/versions", headers=ANA)).json()
    assert [(v["version"], v["change"], v["edited_by"], v["title"]) for v in history] == [
        (3, "published", "sue", "如何申请电子发票"),
        (2, "edited", "sue", "如何申请电子发票"),
        (1, "created", "sue", "如何申请发票"),
    ]
    published = await find_event(
        stack.bootstrap,
        topics.KNOWLEDGE,
        lambda e: e.type == "article.published" and str(e.data.article_id) == created["article_id"],
    )
    assert (published.key, published.data.version, published.data.by) == (
        created["article_id"],
        3,
        "sue",
    )
    assert published.data.url.endswith(f"/kb/{created['article_id']}?lang=zh")


async def test_agents_read_but_only_supervisors_and_admins_write(
    knowledge: httpx.AsyncClient,
) -> None:
    assert (
        await knowledge.post("/v1/articles", json=article("发票"), headers=ANA)
    ).status_code == 403
    assert (await knowledge.get("/v1/articles")).status_code == 401
    r = await knowledge.get(f"/v1/articles/{demo_id('certificate', 'en')}", headers=ANA)
    assert (r.status_code, r.json()["status"]) == (200, "published")
    drafts = await knowledge.get("/v1/articles", params={"status": "archived"}, headers=ANA)
    assert drafts.json() == []


async def test_bad_fields_are_each_named_with_422(knowledge: httpx.AsyncClient) -> None:
    r = await knowledge.post(
        "/v1/articles",
        json={"title": "", "body": "正文", "category": "refunds", "tags": ["x" * 41]},
        headers=SUE,
    )
    assert r.status_code == 422
    assert {tuple(p["loc"][1:2]) for p in r.json()["detail"]} == {
        ("title",),
        ("category",),
        ("tags",),
    }
    too_long = await knowledge.post("/v1/articles", json=article("长" * 201), headers=SUE)
    assert (too_long.status_code, too_long.json()["detail"][0]["loc"]) == (422, ["body", "title"])


async def test_an_agent_makes_a_draft_of_their_own_from_a_reply(
    knowledge: httpx.AsyncClient,
) -> None:
    ticket_id = str(uuid.uuid4())
    reply = {
        "reply": "Hello Ana,\nInvoices are issued from the order page within 3 working days.",
        "category": "payment_refund",
        "language": "en",
        "ticket_id": ticket_id,
    }
    r = await knowledge.post("/v1/articles/from-reply", json=reply, headers=ANA)
    assert r.status_code == 201, r.text
    draft = r.json()
    assert (draft["status"], draft["owner_id"], draft["title"], draft["source_ticket_id"]) == (
        "draft",
        "ana",
        "Hello Ana,",
        ticket_id,
    )
    path = f"/v1/articles/{draft['article_id']}"
    assert (await knowledge.get(path, headers=ANA)).status_code == 200
    assert (await knowledge.get(path, headers=BEN)).status_code == 404
    mine = await knowledge.get("/v1/articles", params={"status": "draft"}, headers=ANA)
    assert [a["article_id"] for a in mine.json()] == [draft["article_id"]]
    history = (await knowledge.get(f"{path}/versions", headers=SUE)).json()
    assert [(v["change"], v["edited_by"]) for v in history] == [("from_reply", "ana")]


def created(subject: str, description: str, *, language: str) -> Any:
    return new_event(
        TicketCreated(
            ticket_id=uuid.uuid4(),
            number="CL-900100",
            channel=Channel.WEB,
            learner=Learner(name="李雷", email="lilei@example.com"),
            subject=subject,
            description=description,
            language=language,
            created_at=now(),
        ),
        producer="desk",
    )


async def counter(client: httpx.AsyncClient, series: str) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_new_ticket_is_offered_the_articles_that_answer_it(
    knowledge: httpx.AsyncClient,
    stack: RunningStack,
    settings: CommonSettings,
    env: dict[str, str],
) -> None:
    offers = 'careloop_knowledge_self_service_offers_total{channel="web"}'
    await tickets_read(stack, env)  # earlier tests' web tickets
    before = await counter(knowledge, offers)
    refund = created("退款", "我上周申请的退款多久到账？", language="zh")
    nothing = created("投诉", "老师上课态度很差", language="zh")
    await publish(settings, [refund, nothing])

    suggested = await find_event(
        stack.bootstrap,
        topics.KNOWLEDGE,
        lambda e: e.type == "articles.suggested" and e.data.ticket_id == refund.data.ticket_id,
    )
    first = suggested.data.articles[0]
    assert (str(first.article_id), suggested.data.language, suggested.causation_id) == (
        demo_id("refund-timing", "zh"),
        "zh",
        refund.event_id,
    )
    assert first.url.endswith(f"/kb/{first.article_id}?lang=zh") and first.score > 0
    none = await find_event(
        stack.bootstrap,
        topics.KNOWLEDGE,
        lambda e: e.type == "articles.suggested" and e.data.ticket_id == nothing.data.ticket_id,
    )
    assert none.data.articles == ()
    assert await counter(knowledge, offers) == before + 1


async def vote(client: httpx.AsyncClient, article_id: str, helpful: str) -> httpx.Response:
    """A new browser opens the page and answers its form."""
    client.cookies.clear()
    page = await client.get(f"/kb/{article_id}")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return await client.post(
        f"/kb/{article_id}/feedback", data={"csrf": token.group(1), "helpful": helpful}
    )


async def test_the_article_page_refuses_a_vote_without_its_csrf_token(
    knowledge: httpx.AsyncClient,
) -> None:
    article_id = demo_id("video-playback", "en")
    knowledge.cookies.clear()
    r = await knowledge.post(
        f"/kb/{article_id}/feedback", data={"csrf": "x" * 32, "helpful": "yes"}
    )
    assert r.status_code == 403 and "expired" in r.text
    r = await vote(knowledge, article_id, "maybe")
    assert r.status_code == 422


async def test_learners_votes_rank_what_is_suggested(
    knowledge: httpx.AsyncClient, stack: RunningStack
) -> None:
    """Two published answers to one question: the better text match first, until learners
    say it did not help."""
    editor = SUE
    ids = []
    for title, body in [
        ("Exam results: when are they published?", "Exam results are published within 10 days."),
        ("Where do I find my exam results?", "Open Me > Exams to see your results."),
    ]:
        r = await knowledge.post(
            "/v1/articles",
            json={"title": title, "body": body, "category": "exam_certificate"},
            headers=editor,
        )
        made = r.json()
        await knowledge.post(
            f"/v1/articles/{made['article_id']}/publish", json={"version": 1}, headers=editor
        )
        ids.append(made["article_id"])
    ask = {"text": "when are exam results published", "category": "exam_certificate"}

    async def suggested() -> list[str]:
        r = await knowledge.get("/v1/suggestions", params=ask, headers=ANA)
        assert r.status_code == 200, r.text
        return [a["article_id"] for a in r.json()["articles"]]

    assert (await suggested())[:2] == ids
    for _ in range(4):
        assert (await vote(knowledge, ids[0], "no")).status_code == 200
    assert (await suggested())[:2] == [ids[1], ids[0]]

    conn = await asyncpg.connect(stack.dsn)
    try:
        counts = await conn.fetchrow(
            "SELECT helpful, not_helpful FROM knowledge.articles WHERE article_id = $1",
            uuid.UUID(ids[0]),
        )
    finally:
        await conn.close()
    assert tuple(counts) == (0, 4)


async def test_an_archived_article_is_gone_for_learners_and_suggested_no_more(
    knowledge: httpx.AsyncClient, stack: RunningStack
) -> None:
    r = await knowledge.post(
        "/v1/articles",
        json={
            "title": "旧版 App 下载地址",
            "body": "旧版 App 下载地址已经停用。",
            "category": "technical",
        },
        headers=SUE,
    )
    made = r.json()
    path = f"/v1/articles/{made['article_id']}"
    await knowledge.post(f"{path}/publish", json={"version": 1}, headers=SUE)
    page = await knowledge.get(f"/kb/{made['article_id']}")
    assert page.status_code == 200 and "旧版 App 下载地址" in page.text
    r = await knowledge.post(f"{path}/archive", json={"version": 2}, headers=SUE)
    assert (r.status_code, r.json()["status"]) == (200, "archived")

    gone = await knowledge.get(f"/kb/{made['article_id']}")
    assert gone.status_code == 410 and "这篇文章已下线" in gone.text
    assert (await knowledge.get(f"/kb/{uuid.uuid4()}?lang=en")).status_code == 404
    found = await knowledge.get(
        "/v1/suggestions", params={"text": "旧版 App 下载地址"}, headers=ANA
    )
    assert made["article_id"] not in [a["article_id"] for a in found.json()["articles"]]
    archived = await find_event(
        stack.bootstrap,
        topics.KNOWLEDGE,
        lambda e: e.type == "article.archived" and str(e.data.article_id) == made["article_id"],
    )
    assert (archived.key, archived.data.version) == (made["article_id"], 3)
