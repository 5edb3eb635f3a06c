"""knowledge and desk in-process together against the real stack: a ticket's suggestions ranked
again in the category triage gave it (or a person corrected), desk keeping the latest list and
showing it on the ticket page to whoever may see the ticket, and a learner's "this solved it"
counted as a deflection on knowledge's /metrics."""

import random
import re
import string
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from services.desk import handlers, self_service
from services.desk.app import create_app as create_desk
from services.desk.settings import DeskSettings
from services.knowledge.app import create_app as create_knowledge
from services.knowledge.settings import KnowledgeSettings
from shared import topics
from shared.events import (
    ArticlesSuggested,
    Category,
    Channel,
    Envelope,
    Learner,
    Priority,
    SuggestedArticle,
    TicketAssigned,
    TicketCreated,
    TicketRetriaged,
    TicketRouted,
    new_event,
    now,
)
from shared.settings import CommonSettings
from tests.browser.tickets import Made, Tickets
from tests.integration.inprocess import (
    SUE,
    environment,
    find_event,
    publish,
    served,
    service_env,
)
from tests.integration.test_accounts import browser, log_in, new_user
from tests.integration.test_knowledge import counter, knowledge_env, tickets_read
from tests.integration.test_portal import form_of
from tests.support import RunningStack, eventually, fresh_groups

SECRET = "knowledge-desk-integration-test-link-secret-0123"


@pytest.fixture(scope="module")
def env(stack: RunningStack) -> dict[str, str]:
    return knowledge_env(stack)


@pytest.fixture(scope="module")
async def knowledge(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    with environment(env):
        settings = KnowledgeSettings()
        async with served(lambda: create_knowledge(settings), "knowledge") as client:
            yield client


@pytest.fixture(scope="module")
def desk_env(stack: RunningStack) -> dict[str, str]:
    return {**service_env(stack), **fresh_groups(), "CARELOOP_DESK_LINK_SECRET": SECRET}


@pytest.fixture(scope="module")
async def desk(
    desk_env: dict[str, str], knowledge: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    with environment(desk_env):
        settings = DeskSettings()
        async with served(lambda: create_desk(settings), "desk") as client:
            yield client


@pytest.fixture(scope="module")
def tickets(desk: httpx.AsyncClient, settings: CommonSettings, stack: RunningStack) -> Tickets:
    return Tickets(desk=desk, settings=settings, dsn=stack.dsn)


def made_up_word() -> str:
    """A word no other test's article or ticket holds (letters only: one search word)."""
    return "".join(random.choices(string.ascii_lowercase, k=10))


async def published(knowledge: httpx.AsyncClient, category: str, title: str, body: str) -> str:
    r = await knowledge.post(
        "/v1/articles",
        json={"title": title, "body": body, "category": category, "language": "en"},
        headers=SUE,
    )
    assert r.status_code == 201, r.text
    article_id: str = r.json()["article_id"]
    r = await knowledge.post(f"/v1/articles/{article_id}/publish", json={"version": 1}, headers=SUE)
    assert r.status_code == 200, r.text
    return article_id


async def two_answers(knowledge: httpx.AsyncClient, word: str) -> tuple[str, str]:
    """Two published articles about the same black screen: the billing one (payment_refund)
    matches the learner's words better (text rank 0.116 against 0.092), the app one
    (technical) is the answer once the ticket is known to be technical (x 1.5: 0.139)."""
    billing = await published(
        knowledge,
        "payment_refund",
        f"{word} screen stays black with an error after paying",
        f"A {word} black screen with an error after paying: the payment is still being checked.",
    )
    app = await published(
        knowledge,
        "technical",
        f"{word} shows a black screen",
        f"Update {word} to the latest version from the app store, then sign out, sign in again "
        "and reopen the lesson.",
    )
    return billing, app


def question(word: str) -> tuple[str, str]:
    """A learner's subject and description, in English."""
    return f"{word} black screen", f"When I open {word} the screen stays black and shows an error."


async def asked(tickets: Tickets, word: str) -> Made:
    subject, description = question(word)
    return await tickets.submitted(subject=subject, description=description, language="en")


def routed(made: Made, category: Category, *, agent_id: str | None = None) -> Envelope[Any]:
    at = now()
    return new_event(
        TicketRouted(
            ticket_id=made.ticket_id,
            channel=Channel.EMAIL,
            category=category,
            priority=Priority.MEDIUM,
            team="tech_support",
            language="en",
            first_response_due_at=at + timedelta(hours=4),
            resolution_due_at=at + timedelta(hours=48),
            agent_id=agent_id,
            routed_at=at,
        ),
        producer="test",
    )


async def suggested(
    stack: RunningStack, ticket_id: uuid.UUID, among: list[str], cause: uuid.UUID | None = None
) -> list[str]:
    """The order of the articles `among` in knowledge's `articles.suggested` for the ticket
    (the one `cause` caused); other tests' articles may match the ticket's words too."""
    found = await find_event(
        stack.bootstrap,
        topics.KNOWLEDGE,
        lambda e: (
            e.type == ArticlesSuggested.TYPE
            and e.data.ticket_id == ticket_id
            and (cause is None or e.causation_id == cause)
        ),
    )
    return [i for a in found.data.articles if (i := str(a.article_id)) in among]


async def logged_in(desk: httpx.AsyncClient) -> tuple[str, httpx.AsyncClient]:
    """A new tech_support agent, and a browser of its own with their session."""
    agent_id = await new_user(desk)
    client = browser(desk)
    assert (await log_in(client, agent_id)).status_code == 303
    return agent_id, client


def suggestions_card(page: str) -> str:
    found = re.search(r'<div class="card" id="suggestions">(.*?)</div>', page, re.S)
    assert found, "the ticket page has no suggestions"
    return found.group(1)


async def test_a_tickets_category_ranks_its_suggestions_and_the_page_shows_them_to_its_team(
    knowledge: httpx.AsyncClient, desk: httpx.AsyncClient, tickets: Tickets, stack: RunningStack
) -> None:
    word = made_up_word()
    billing, app = await two_answers(knowledge, word)
    made = await asked(tickets, word)
    ours = [billing, app]
    assert await suggested(stack, made.ticket_id, ours) == [billing, app]  # by the text alone

    triaged = routed(made, Category.TECHNICAL)  # queued for tech_support: nobody has it yet
    await publish(tickets.settings, [triaged])
    assert await suggested(stack, made.ticket_id, ours, triaged.event_id) == [app, billing]

    _, member = await logged_in(desk)
    best_first = [
        f"{word} shows a black screen",
        f"{word} screen stays black with an error after paying",
    ]

    async def shown() -> str | None:
        page = await member.get(f"/tickets/{made.number}")
        if page.status_code == 404:  # desk has not read ticket.routed yet: not tech_support's
            return None
        card = suggestions_card(page.text)
        return card if re.findall(rf">({word} [^<]+)</a>", card) == best_first else None

    card = await eventually(shown)
    assert "data-insert-text" not in card  # a queued ticket: nobody replies to it yet

    assignee_id, assignee = await logged_in(desk)
    mine = TicketAssigned(
        ticket_id=made.ticket_id,
        agent_id=assignee_id,
        team="tech_support",
        priority=Priority.MEDIUM,
        assigned_at=now(),
    )
    await publish(tickets.settings, [new_event(mine, producer="test")])
    await tickets.in_state(made.ticket_id, status="assigned")
    theirs = suggestions_card((await assignee.get(f"/tickets/{made.number}")).text)
    not_theirs = suggestions_card((await member.get(f"/tickets/{made.number}")).text)
    # Other modules' articles (the demo ones) may be suggested too: ours each have an insert
    # button for the assignee, and none has one for the team member.
    inserts = re.findall(r'data-insert-text="[^"]*/kb/([0-9a-f-]+)', theirs)
    assert {billing, app} <= set(inserts), inserts
    assert "data-insert-text" not in not_theirs and f"/kb/{app}" in not_theirs


async def test_a_category_that_comes_before_the_ticket_ranks_its_first_suggestions(
    knowledge: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    """Routing's event may reach knowledge before desk's ticket.created: the one list then
    made is already in the category; a person's correction ranks it again."""
    word = made_up_word()
    billing, app = await two_answers(knowledge, word)
    subject, description = question(word)
    created = new_event(
        TicketCreated(
            ticket_id=uuid.uuid4(),
            subject=subject,
            description=description,
            language="en",
            number=f"CL-9{random.randrange(10**8):08d}",
            channel=Channel.WEB,
            learner=Learner(name="Li Lei", email=f"{word}@example.com"),
            created_at=now(),
        ),
        producer="desk",
    )
    early = routed(Made(created.data.ticket_id, created.data.number), Category.TECHNICAL)
    await publish(settings, [early])
    await eventually(lambda: ticket_row(stack, created.data.ticket_id))
    await publish(settings, [created])
    ours = [billing, app]
    assert await suggested(stack, created.data.ticket_id, ours, created.event_id) == [app, billing]

    corrected = new_event(
        TicketRetriaged(
            ticket_id=created.data.ticket_id,
            number=created.data.number,
            category=Category.PAYMENT_REFUND,
            priority=Priority.MEDIUM,
            previous_category=Category.TECHNICAL,
            by="sue",
            reason="They were charged twice",
            retriaged_at=now(),
        ),
        producer="desk",
    )
    await publish(settings, [corrected, early])  # the old triage again changes nothing
    assert await suggested(stack, created.data.ticket_id, ours, corrected.event_id) == ours
    row = await ticket_row(stack, created.data.ticket_id)
    assert row is not None and row["category"] == "payment_refund"


async def ticket_row(stack: RunningStack, ticket_id: uuid.UUID) -> asyncpg.Record | None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        return await conn.fetchrow(
            "SELECT category, words FROM knowledge.tickets WHERE ticket_id = $1", ticket_id
        )
    finally:
        await conn.close()


async def test_desk_keeps_the_latest_list_whatever_order_the_lists_come_in(
    desk: httpx.AsyncClient, tickets: Tickets, stack: RunningStack
) -> None:
    made = await tickets.submitted(subject="Zoom link missing", language="en")
    at = now()

    def listed(title: str, minutes: int) -> Envelope[ArticlesSuggested]:
        article = SuggestedArticle(
            article_id=uuid.uuid4(), title=title, url="http://kb.example/kb/1", score=0.1
        )
        return new_event(
            ArticlesSuggested(
                ticket_id=made.ticket_id,
                language="en",
                articles=(article,),
                suggested_at=at + timedelta(minutes=minutes),
            ),
            producer="knowledge",
        )

    first, second, third = listed("first", 1), listed("second", 2), listed("third", 3)
    conn = await asyncpg.connect(stack.dsn, server_settings={"search_path": "desk"})
    try:

        async def kept() -> str:
            title: str = await conn.fetchval(
                "SELECT suggested_articles->0->>'title' FROM tickets WHERE ticket_id = $1",
                made.ticket_id,
            )
            return title

        async with conn.transaction():
            await self_service.on_suggested(conn, [second])
            await self_service.on_suggested(conn, [first])  # late: older than the one held
            assert await kept() == "second"
            await self_service.on_suggested(conn, [third, first])  # one batch, out of order
            assert await kept() == "third"
            await self_service.on_suggested(conn, [third])  # a redelivery
            assert await kept() == "third"
    finally:
        await conn.close()


async def test_this_solved_it_on_the_learners_page_counts_a_deflection(
    knowledge: httpx.AsyncClient,
    desk: httpx.AsyncClient,
    desk_env: dict[str, str],
    tickets: Tickets,
    stack: RunningStack,
    env: dict[str, str],
) -> None:
    deflections = "careloop_knowledge_deflections_total"
    await tickets_read(stack, env)  # earlier tests' resolutions
    before = await counter(knowledge, deflections)
    word = made_up_word()
    _, app = await two_answers(knowledge, word)
    made = await asked(tickets, word)
    assert await suggested(stack, made.ticket_id, [app]) == [app]
    with environment(desk_env):
        path = "/t/" + handlers.links_for(DeskSettings()).portal_token(made.ticket_id)

    async def offered() -> bool:
        return f"/kb/{app}" in (await desk.get(path)).text

    await eventually(offered)
    solved = await desk.post(path + "/solved", data={**await form_of(desk, path), "article": app})
    assert solved.status_code == 303 and "notice=self_served" in solved.headers["location"]

    async def counted() -> bool:
        return await counter(knowledge, deflections) == before + 1

    await eventually(counted)
    await eventually(lambda: forgotten(stack, made.ticket_id))


async def forgotten(stack: RunningStack, ticket_id: uuid.UUID) -> bool:
    """knowledge keeps no words of a closed ticket."""
    return await ticket_row(stack, ticket_id) is None
