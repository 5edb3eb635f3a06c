"""The workspace's pages keep an agent to their own tickets and their teams', against the real
stack: a ticket of another team is "no such ticket" on its page and on every form a page posts
(with a valid session and CSRF token, whatever id or number is typed), nothing is stored, and
the learner card lists only the earlier tickets the viewer may open.

desk runs in-process (its migrations and relay); tickets reach it as Kafka delivers them,
straight to its consumer, as in test_desk_ops.
"""

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.desk import handlers
from services.desk.app import create_app
from services.desk.settings import DeskSettings
from services.desk.web import queries
from services.desk.web.text import TEXT
from shared.agents import Role
from shared.db import create_pool
from shared.inbox import EventConsumer
from shared.kafka import make_broker
from shared.settings import CommonSettings
from tests.integration.inprocess import ANA, SUE, environment, served, service_env
from tests.integration.test_desk_events import record
from tests.integration.test_desk_ops import Deliver, a_ticket, someone
from tests.support import RunningStack

ADMIN = {"Authorization": "Bearer test-ada-token"}
PASSWORD = "correct horse battery"
NOT_FOUND = TEXT["en"]["errors"]["not_found"]


@pytest.fixture(scope="module")
async def desk(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    with environment(service_env(stack)):
        async with served(lambda: create_app(DeskSettings()), "desk") as client:
            yield client


@pytest.fixture(scope="module")
async def desk_pool(desk: httpx.AsyncClient, stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(stack.dsn, schema="desk")
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def deliver(desk_pool: asyncpg.Pool, settings: CommonSettings) -> Deliver:
    consumer = EventConsumer(
        name="desk",
        handlers=handlers.event_handlers(DeskSettings(link_secret="test-secret")),
        pool=lambda: desk_pool,
        broker=make_broker(settings, client_id="test-workspace-idor"),
        idempotent=frozenset(handlers.IDEMPOTENT),
    )

    async def deliver(*events: Any) -> None:
        await consumer.consume([record(e) for e in events])

    return deliver


class Session:
    """A person logged in to the workspace: their own cookie jar on the in-process desk, and
    the CSRF token the pages' forms carry."""

    def __init__(self, client: httpx.AsyncClient, agent_id: str, csrf: str) -> None:
        self.client = client
        self.agent_id = agent_id
        self.csrf = csrf

    async def post(self, path: str, form: dict[str, str]) -> httpx.Response:
        return await self.client.post(path, data={**form, "csrf_token": self.csrf})


async def log_in(desk: httpx.AsyncClient, role: str, team: str) -> Session:
    """A new user of `role` in `team`, logged in through the login form like a browser."""
    agent_id = f"w{uuid.uuid4().hex[:10]}"
    made = await desk.post(
        "/v1/users",
        headers=ADMIN,
        json={
            "agent_id": agent_id,
            "name": f"Zhao {role}",
            "role": role,
            "teams": [team],
            "language": "en",
            "password": PASSWORD,
        },
    )
    assert made.status_code == 201, made.text
    client = httpx.AsyncClient(
        transport=desk._transport, base_url="http://desk", follow_redirects=False
    )
    page = await client.get("/login", params={"lang": "en"})
    login = await client.post(
        "/login",
        data={"login": agent_id, "password": PASSWORD, "csrf_token": form_csrf(page.text)},
    )
    assert login.status_code == 303, login.text
    mine = await client.get("/views/mine")
    assert mine.status_code == 200, mine.text
    return Session(client, agent_id, form_csrf(mine.text))


def form_csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


@pytest.fixture(scope="module")
async def finance_agent(desk: httpx.AsyncClient) -> AsyncIterator[Session]:
    session = await log_in(desk, "agent", "finance")
    yield session
    await session.client.aclose()


@pytest.fixture(scope="module")
async def supervisor(desk: httpx.AsyncClient) -> AsyncIterator[Session]:
    session = await log_in(desk, "supervisor", "tech_support")
    yield session
    await session.client.aclose()


# Columns desk's own background work fills in whenever it gets to them (the search words, the
# knowledge suggestions), not anything a request writes: left out of the comparison.
BACKGROUND = ("search", "search_of", "suggested_articles", "suggested_at")


async def stored(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> dict[str, Any]:
    """All desk keeps of a ticket: its row (less the background columns) and how many of each
    of its records there are."""
    row = await pool.fetchrow("SELECT * FROM tickets WHERE ticket_id = $1", ticket_id)
    assert row is not None
    row = {k: v for k, v in dict(row).items() if k not in BACKGROUND}
    counts = await pool.fetchrow(
        """
        SELECT (SELECT count(*) FROM replies WHERE ticket_id = $1) AS replies,
               (SELECT count(*) FROM notes WHERE ticket_id = $1) AS notes,
               (SELECT count(*) FROM history WHERE ticket_id = $1) AS history,
               (SELECT count(*) FROM messages WHERE ticket_id = $1) AS messages,
               (SELECT count(*) FROM ticket_callbacks WHERE ticket_id = $1) AS callbacks
        """,
        ticket_id,
    )
    return {**row, **dict(counts or {})}


async def test_an_agent_cannot_open_or_change_another_teams_ticket_through_the_pages(
    desk: httpx.AsyncClient,
    deliver: Deliver,
    desk_pool: asyncpg.Pool,
    finance_agent: Session,
    supervisor: Session,
) -> None:
    subject = f"Secret subject {uuid.uuid4().hex[:8]}"
    theirs, number = await a_ticket(deliver, desk_pool, subject=subject)  # Ana's, tech_support
    mine, my_number = await a_ticket(
        deliver, desk_pool, agent_id=finance_agent.agent_id, team="finance"
    )
    replied = await desk.post(
        f"/v1/tickets/{theirs}/replies", json={"body": "Try again"}, headers=ANA
    )
    assert replied.status_code == 201, replied.text
    reply_id = await desk_pool.fetchval("SELECT reply_id FROM replies WHERE ticket_id = $1", theirs)
    macro = await desk.post(
        "/v1/macros",
        json={"name": f"greet {uuid.uuid4().hex[:6]}", "body": "Hello {{ learner.name }}"},
        headers=SUE,
    )
    assert macro.status_code == 201, macro.text
    macro_id = macro.json()["macro_id"]
    before = {t: await stored(desk_pool, t) for t in (theirs, mine)}
    # The forms as the ticket's page would post them, each valid for a ticket the user holds.
    forms = {
        "reply": {"body": "I can see your ticket"},
        "note": {"body": "@ana mine now"},
        "transfer": {"to": "team:finance", "reason": "mine now"},
        "merge": {"into": my_number},
        "retriage": {"category": "payment_refund", "priority": "urgent", "reason": "mine"},
        "pending": {},
        "resolve": {"resolution_code": "answered", "resolution": "done"},
        "article": {"reply": str(reply_id)},
    }

    answers: dict[str, httpx.Response] = {}
    for ref in (str(theirs), number, number.lower(), str(uuid.uuid4())):
        client = finance_agent.client
        answers[f"page {ref}"] = await client.get(f"/tickets/{ref}")
        answers[f"conversation {ref}"] = await client.get(f"/tickets/{ref}/conversation")
        answers[f"macro {ref}"] = await client.get(f"/tickets/{ref}/macros/{macro_id}")
        for action, form in forms.items():
            answers[f"{action} {ref}"] = await finance_agent.post(f"/tickets/{ref}/{action}", form)
        answers[f"callback {ref}"] = await finance_agent.post(
            f"/callbacks/{ref}", {"reached": "yes", "score": "5", "outcome": "all good"}
        )
        # Their ticket as the one to merge into, from the agent's own ticket.
        answers[f"merge into {ref}"] = await finance_agent.post(
            f"/tickets/{my_number}/merge", {"into": ref}
        )

    assert {k: r.status_code for k, r in answers.items()} == {k: 404 for k in answers}
    assert [k for k, r in answers.items() if subject in r.text] == []
    assert [
        k for k, r in answers.items() if not k.startswith("macro") and NOT_FOUND not in r.text
    ] == []
    assert {t: await stored(desk_pool, t) for t in (theirs, mine)} == before
    # The same ticket is there, and the same page shows it to whom it may.
    assert (await supervisor.client.get(f"/tickets/{number}")).status_code == 200


async def test_the_learner_card_lists_only_the_earlier_tickets_the_viewer_may_open(
    deliver: Deliver,
    desk_pool: asyncpg.Pool,
    finance_agent: Session,
    supervisor: Session,
) -> None:
    learner = someone()

    async def ticket(subject: str, *, agent_id: str | None, team: str) -> tuple[uuid.UUID, str]:
        return await a_ticket(
            deliver, desk_pool, agent_id=agent_id, team=team, learner=learner, subject=subject
        )

    _, tech_number = await ticket("Video will not play", agent_id="ana", team="tech_support")
    _, queued_number = await ticket("Refund for the May class", agent_id=None, team="finance")
    # A supervisor handed the agent a ticket of a team that is not theirs: theirs to open.
    _, handed_number = await ticket(
        "Password reset link expired", agent_id=finance_agent.agent_id, team="tech_support"
    )
    current, current_number = await ticket(
        "Invoice title is wrong", agent_id=finance_agent.agent_id, team="finance"
    )

    async def earlier(who: str, role: Role, teams: list[str]) -> list[str]:
        async with desk_pool.acquire() as conn:
            row = await queries.visible_ticket(
                conn, current, agent_id="nobody", role=Role.ADMIN, teams=[]
            )
            assert row is not None
            found = await queries.earlier_tickets(conn, row, agent_id=who, role=role, teams=teams)
        return [r["number"] for r in found]

    assert await earlier(finance_agent.agent_id, Role.AGENT, ["finance"]) == [
        handed_number,
        queued_number,
    ]
    assert await earlier("ana", Role.AGENT, ["tech_support"]) == [handed_number, tech_number]
    assert await earlier(supervisor.agent_id, Role.SUPERVISOR, ["tech_support"]) == [
        handed_number,
        queued_number,
        tech_number,
    ]
    # And on the ticket's page: the other team's earlier ticket is not shown at all.
    page = await finance_agent.client.get(f"/tickets/{current_number}")
    assert page.status_code == 200, page.text
    assert queued_number in page.text and handed_number in page.text
    assert tech_number not in page.text and "Video will not play" not in page.text
    page = await supervisor.client.get(f"/tickets/{current_number}")
    assert tech_number in page.text and "Video will not play" in page.text
