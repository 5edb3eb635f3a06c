"""What agents do to a ticket, through desk's API against the real stack: internal notes with
@mentions, macros, transfers to an agent or a team, merges, resolution codes, the timeline,
search (Chinese and English ranking, contacts, numbers), and no ticket outside an agent's
teams, whatever id they type.

desk runs in-process (its migrations, relay and indexer); tickets reach it as Kafka delivers
them, straight to its consumer (test_desk_events.record), so a test waits on no broker.
"""

import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.desk import handlers
from services.desk.app import create_app
from services.desk.settings import DeskSettings
from shared import topics
from shared.db import create_pool
from shared.events import (
    Category,
    Channel,
    Envelope,
    Learner,
    Priority,
    SurveyAnswered,
    TicketRouted,
    TicketSubmitted,
    new_event,
    now,
)
from shared.inbox import EventConsumer
from shared.kafka import make_broker
from shared.settings import CommonSettings
from tests.integration.inprocess import AGENTS, environment, find_event, served, service_env
from tests.integration.test_desk_events import record
from tests.support import RunningStack, eventually

Deliver = Callable[..., Coroutine[Any, Any, None]]
ANA = {"Authorization": "Bearer test-ana-token"}  # tech_support
BEN = {"Authorization": "Bearer test-ben-token"}  # tech_support
SUE = {"Authorization": "Bearer test-sue-token"}  # supervisor
FEI = {"Authorization": "Bearer test-fei-token"}  # finance: none of tech_support's tickets
# The package's agents, and two of another team.
FINANCE = """
  - {id: fei, name: Fei, teams: [finance], capacity: 4, token: test-fei-token, email: fei@example.com}
  - {id: gus, name: Gus, teams: [finance], capacity: 4, token: test-gus-token}
"""


@pytest.fixture(scope="module")
def agents_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    agents = tmp_path_factory.mktemp("agents") / "agents.yaml"
    agents.write_text(AGENTS.read_text(encoding="utf-8") + FINANCE, encoding="utf-8")
    return agents


@pytest.fixture(scope="module")
async def desk(stack: RunningStack, agents_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        **service_env(stack),
        "CARELOOP_AGENTS_FILE": str(agents_file),
        "CARELOOP_DESK_SEARCH_INDEX_INTERVAL_SECONDS": "0.2",
    }
    with environment(env):
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
        broker=make_broker(settings, client_id="test-desk-ops"),
        idempotent=frozenset(handlers.IDEMPOTENT),
    )

    async def deliver(*events: Envelope[Any]) -> None:
        await consumer.consume([record(e) for e in events])

    return deliver


def submitted(
    *, learner: Learner, subject: str, description: str, language: str = "en"
) -> Envelope[TicketSubmitted]:
    return new_event(
        TicketSubmitted(
            ticket_id=uuid.uuid4(),
            channel=Channel.WEB,
            external_id=uuid.uuid4().hex,
            learner=learner,
            subject=subject,
            description=description,
            language=language,
            submitted_at=now(),
        ),
        producer="test",
    )


def routed(
    ticket_id: uuid.UUID, *, agent_id: str | None, team: str = "tech_support"
) -> Envelope[TicketRouted]:
    at = now()
    return new_event(
        TicketRouted(
            ticket_id=ticket_id,
            channel=Channel.WEB,
            category=Category.TECHNICAL if team == "tech_support" else Category.PAYMENT_REFUND,
            priority=Priority.MEDIUM,
            team=team,
            language="en",
            first_response_due_at=at + timedelta(hours=4),
            resolution_due_at=at + timedelta(hours=48),
            agent_id=agent_id,
            routed_at=at,
        ),
        producer="test",
    )


def someone() -> Learner:
    tag = uuid.uuid4().hex[:8]
    return Learner(name=f"Li Lei {tag}", email=f"lilei.{tag}@example.com")


async def a_ticket(
    deliver: Deliver,
    pool: asyncpg.Pool,
    *,
    agent_id: str | None = "ana",
    team: str = "tech_support",
    learner: Learner | None = None,
    subject: str = "Cannot log in",
    description: str | None = None,
    language: str = "en",
) -> tuple[uuid.UUID, str]:
    """A ticket routed to `agent_id` (or queued for `team`); its id and number."""
    created = submitted(
        learner=learner or someone(),
        subject=subject,
        description=description or f"The login page spins forever ({uuid.uuid4().hex[:6]})",
        language=language,
    )
    await deliver(created)
    await deliver(routed(created.data.ticket_id, agent_id=agent_id, team=team))
    number: str = await pool.fetchval(
        "SELECT number FROM tickets WHERE ticket_id = $1", created.data.ticket_id
    )
    return created.data.ticket_id, number


async def event(stack: RunningStack, kind: str, ticket_id: uuid.UUID) -> Any:
    """The `kind` event desk published about the ticket (its relay runs in-process)."""
    found = await find_event(
        stack.bootstrap, topics.TICKETS, lambda e: e.type == kind and e.data.ticket_id == ticket_id
    )
    return found.data


async def timeline(desk: httpx.AsyncClient, ticket: uuid.UUID | str) -> list[dict[str, Any]]:
    r = await desk.get(f"/v1/tickets/{ticket}/timeline", headers=SUE)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()
    return items


# ---- notes ------------------------------------------------------------------------------------


async def test_a_note_is_stored_as_text_and_tells_the_agents_it_mentions(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool, stack: RunningStack
) -> None:
    ticket_id, number = await a_ticket(deliver, desk_pool)
    body = (
        "@fei 退款的事请看一下 <script>alert(1)</script>; learner wrote from x@example.com @nobody"
    )

    r = await desk.post(f"/v1/tickets/{number}/notes", json={"body": body}, headers=ANA)

    assert r.status_code == 201, r.text
    assert r.json()["mentions"] == ["fei"]
    added = await event(stack, "ticket.note_added", ticket_id)
    assert [(m.agent_id, m.email) for m in added.mentions] == [("fei", "fei@example.com")]
    notes = [i for i in await timeline(desk, ticket_id) if i["kind"] == "note"]
    assert [(n["actor"], n["body"]) for n in notes] == [("ana", body)]


async def test_a_colleague_in_the_team_may_note_but_not_reply(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    _, number = await a_ticket(deliver, desk_pool)

    noted = await desk.post(f"/v1/tickets/{number}/notes", json={"body": "seen it"}, headers=BEN)
    replied = await desk.post(f"/v1/tickets/{number}/replies", json={"body": "hi"}, headers=BEN)

    assert noted.status_code == 201
    assert replied.status_code == 403


# ---- no IDOR ----------------------------------------------------------------------------------


async def test_a_ticket_outside_an_agents_teams_is_not_found_by_any_route_or_id(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    ticket_id, number = await a_ticket(deliver, desk_pool)
    mine, _ = await a_ticket(deliver, desk_pool, agent_id="fei", team="finance")
    missing = uuid.uuid4()

    answers = {}
    for ref in (ticket_id, number, number.lower(), missing):
        answers[f"GET {ref}"] = await desk.get(f"/v1/tickets/{ref}", headers=FEI)
        answers[f"timeline {ref}"] = await desk.get(f"/v1/tickets/{ref}/timeline", headers=FEI)
        for path, body in [
            ("replies", {"body": "hello"}),
            ("notes", {"body": "hello"}),
            ("resolve", {"resolution": "done"}),
            ("pending", None),
            ("transfer", {"to_team": "finance", "reason": "mine now"}),
            ("merge", {"into": str(mine)}),
            ("retriage", {"priority": "high", "reason": "urgent"}),
        ]:
            answers[f"{path} {ref}"] = await desk.post(
                f"/v1/tickets/{ref}/{path}", json=body, headers=FEI
            )
    into_theirs = await desk.post(
        f"/v1/tickets/{mine}/merge", json={"into": str(ticket_id)}, headers=FEI
    )

    assert {k: r.status_code for k, r in answers.items()} == {k: 404 for k in answers}
    assert {r.json()["detail"] for r in answers.values()} == {"no such ticket"}
    assert into_theirs.status_code == 404
    assert (await desk.get(f"/v1/tickets/{ticket_id}", headers=ANA)).status_code == 200


# ---- transfers --------------------------------------------------------------------------------


async def test_a_transfer_to_a_team_queues_it_there_and_the_new_team_sees_why(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool, stack: RunningStack
) -> None:
    ticket_id, number = await a_ticket(deliver, desk_pool)
    reason = "学员问的是退款，不是技术问题"

    r = await desk.post(
        f"/v1/tickets/{number}/transfer", json={"to_team": "finance", "reason": reason}, headers=ANA
    )

    assert r.status_code == 200, r.text
    assert r.json() == {
        "ticket_id": str(ticket_id),
        "team": "finance",
        "assignee_id": None,
        "status": "queued",
    }
    seen = await desk.get(f"/v1/tickets/{ticket_id}", headers=FEI)
    assert seen.status_code == 200
    moved = [h for h in seen.json()["history"] if h["kind"] == "transferred"]
    assert moved[0]["detail"] == {
        "from_agent": "ana",
        "from_team": "tech_support",
        "to_agent": None,
        "to_team": "finance",
        "reason": reason,
    }
    sent = await event(stack, "ticket.transferred", ticket_id)
    assert (sent.from_agent_id, sent.to_agent_id, sent.to_team, sent.reason) == (
        "ana",
        None,
        "finance",
        reason,
    )
    assert (await desk.get(f"/v1/tickets/{ticket_id}", headers=ANA)).status_code == 404


async def test_a_supervisor_hands_a_ticket_to_an_agent_of_another_team(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    _, number = await a_ticket(deliver, desk_pool)

    r = await desk.post(
        f"/v1/tickets/{number}/transfer",
        json={"to_agent_id": "gus", "reason": "Gus knows the invoices"},
        headers=SUE,
    )

    assert r.status_code == 200, r.text
    assert (r.json()["team"], r.json()["assignee_id"], r.json()["status"]) == (
        "finance",
        "gus",
        "assigned",
    )


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"to_agent_id": "zed", "reason": "x"}, 422, "no agent 'zed'"),
        ({"to_team": "no_such_team", "reason": "x"}, 422, "no team 'no_such_team'"),
        ({"to_agent_id": "ana", "reason": "x"}, 409, "the ticket is already with ana"),
        ({"reason": "x"}, 422, None),
    ],
)
async def test_a_transfer_nowhere_or_to_where_it_is_is_refused(
    desk: httpx.AsyncClient,
    deliver: Deliver,
    desk_pool: asyncpg.Pool,
    body: dict[str, str],
    status: int,
    detail: str | None,
) -> None:
    _, number = await a_ticket(deliver, desk_pool)

    r = await desk.post(f"/v1/tickets/{number}/transfer", json=body, headers=ANA)

    assert r.status_code == status, r.text
    if detail is not None:
        assert r.json()["detail"] == detail


# ---- merges -----------------------------------------------------------------------------------


async def test_a_duplicate_merges_with_its_conversation_and_closes_as_merged(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool, stack: RunningStack
) -> None:
    learner = someone()
    original, original_number = await a_ticket(deliver, desk_pool, learner=learner)
    duplicate, dup_number = await a_ticket(
        deliver, desk_pool, learner=learner, description="Still cannot log in, second try"
    )
    await desk.post(f"/v1/tickets/{dup_number}/notes", json={"body": "same as before"}, headers=ANA)

    r = await desk.post(
        f"/v1/tickets/{dup_number}/merge", json={"into": original_number}, headers=ANA
    )

    assert r.status_code == 200, r.text
    assert (r.json()["merged_into"], r.json()["into_number"], r.json()["moved"]) == (
        str(original),
        original_number,
        2,
    )
    closed = (await desk.get(f"/v1/tickets/{duplicate}", headers=ANA)).json()
    assert not {"search", "search_of"} & closed.keys()  # desk's own index stays inside
    assert (closed["status"], closed["merged_into"], closed["resolution_code"]) == (
        "closed",
        str(original),
        "duplicate",
    )
    kept = await timeline(desk, original)
    assert [(i["kind"], i["body"]) for i in kept if i["kind"] in ("message", "note")] == [
        ("message", "Still cannot log in, second try"),
        ("note", "same as before"),
    ]
    told = await event(stack, "ticket.merged", duplicate)
    assert (told.into_number, told.by) == (original_number, "ana")
    assert (await event(stack, "ticket.closed", duplicate)).reason == "merged"


async def test_a_merge_into_itself_or_into_a_closed_ticket_is_a_conflict(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    first, first_number = await a_ticket(deliver, desk_pool)
    _, second_number = await a_ticket(deliver, desk_pool)
    _, third_number = await a_ticket(deliver, desk_pool)
    merged = await desk.post(
        f"/v1/tickets/{second_number}/merge", json={"into": first_number}, headers=ANA
    )
    assert merged.status_code == 200

    itself = await desk.post(
        f"/v1/tickets/{first_number}/merge", json={"into": str(first)}, headers=ANA
    )
    into_closed = await desk.post(
        f"/v1/tickets/{third_number}/merge", json={"into": second_number}, headers=ANA
    )

    assert (itself.status_code, itself.json()["detail"]) == (
        409,
        "a ticket cannot be merged into itself",
    )
    assert into_closed.status_code == 409
    assert "closed" in into_closed.json()["detail"]


# ---- resolution codes -------------------------------------------------------------------------


async def test_a_resolution_code_is_kept_and_announced(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool, stack: RunningStack
) -> None:
    ticket_id, number = await a_ticket(deliver, desk_pool)
    codes = (await desk.get("/v1/resolution-codes", headers=ANA)).json()
    self_served = await desk.post(
        f"/v1/tickets/{number}/resolve",
        json={"resolution": "done", "resolution_code": "self_served"},
        headers=ANA,
    )

    r = await desk.post(
        f"/v1/tickets/{number}/resolve",
        json={"resolution": "Refund sent", "resolution_code": "refunded"},
        headers=ANA,
    )

    assert "refunded" in codes and "self_served" not in codes
    assert self_served.status_code == 422
    assert r.status_code == 200, r.text
    assert (await event(stack, "ticket.resolved", ticket_id)).resolution_code == "refunded"
    stored = await desk_pool.fetchval(
        "SELECT resolution_code FROM tickets WHERE ticket_id = $1", ticket_id
    )
    assert stored == "refunded"


# ---- macros -----------------------------------------------------------------------------------


async def test_a_supervisors_macro_renders_for_a_ticket_with_its_variables(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    learner = Learner(name="王小明", email=f"wxm.{uuid.uuid4().hex[:6]}@example.com")
    _, number = await a_ticket(deliver, desk_pool, learner=learner)
    name = f"退款进度 {uuid.uuid4().hex[:6]}"
    body = "{{ learner.name }}您好，您的工单 {{ ticket.number }} 正在处理。{{ agent.name }}"

    by_agent = await desk.post("/v1/macros", json={"name": name, "body": body}, headers=ANA)
    broken = await desk.post(
        "/v1/macros", json={"name": name, "body": "{{ learner.surname }}"}, headers=SUE
    )
    created = await desk.post("/v1/macros", json={"name": name, "body": body}, headers=SUE)
    twice = await desk.post("/v1/macros", json={"name": name, "body": body}, headers=SUE)
    macro_id = created.json()["macro_id"]
    rendered = await desk.post(f"/v1/tickets/{number}/macros/{macro_id}/render", headers=ANA)
    hidden = await desk.post(f"/v1/tickets/{number}/macros/{macro_id}/render", headers=FEI)

    assert by_agent.status_code == 403
    assert broken.status_code == 422 and "unknown variable" in broken.json()["detail"]
    assert created.status_code == 201, created.text
    assert twice.status_code == 409
    assert rendered.json() == {"body": f"王小明您好，您的工单 {number} 正在处理。Ana"}
    assert hidden.status_code == 404
    gone = await desk.delete(f"/v1/macros/{macro_id}", headers=SUE)
    assert gone.status_code == 204
    assert (await desk.delete(f"/v1/macros/{macro_id}", headers=SUE)).status_code == 404


# ---- the timeline -----------------------------------------------------------------------------


async def test_the_timeline_holds_everything_the_ticket_went_through_in_order(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    ticket_id, number = await a_ticket(deliver, desk_pool)
    await desk.post(
        f"/v1/tickets/{number}/replies", json={"body": "Try clearing the cache"}, headers=ANA
    )
    await desk.post(f"/v1/tickets/{number}/notes", json={"body": "@ben FYI"}, headers=ANA)
    await desk.post(
        f"/v1/tickets/{number}/retriage", json={"priority": "high", "reason": "exam"}, headers=ANA
    )
    await desk.post(
        f"/v1/tickets/{number}/transfer",
        json={"to_agent_id": "ben", "reason": "shift"},
        headers=ANA,
    )
    await desk.post(f"/v1/tickets/{number}/resolve", json={"resolution": "fixed"}, headers=BEN)
    answered = SurveyAnswered(
        survey_id=uuid.uuid4(),
        ticket_id=ticket_id,
        overall=4,
        response_speed=5,
        problem_solving=4,
        attitude=5,
        comment="谢谢 <b>Ben</b>",
        answered_at=now(),
    )
    await deliver(new_event(answered, producer="survey"))

    items = await timeline(desk, ticket_id)

    assert [i["body"] if i["kind"] == "event" else i["kind"] for i in items] == [
        "description",
        "triaged",
        "assigned",
        "reply",
        "note",
        "retriaged",
        "transferred",
        "resolved",
        "survey_answered",
    ]
    assert items[4]["actor_name"] == "Ana"
    assert (items[-1]["detail"]["overall"], items[-1]["detail"]["comment"]) == (
        4,
        "谢谢 <b>Ben</b>",
    )
    assert (await desk.get(f"/v1/tickets/{ticket_id}/timeline", headers=BEN)).status_code == 200


# ---- search -----------------------------------------------------------------------------------


async def found(desk: httpx.AsyncClient, q: str, who: dict[str, str]) -> list[dict[str, Any]]:
    r = await desk.get("/v1/search", params={"q": q}, headers=who)
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()
    return results


async def indexed(desk: httpx.AsyncClient, tag: str, ids: list[uuid.UUID]) -> None:
    """Wait until desk's indexer has made the words of every ticket in `ids` (each carries
    `tag` in its subject)."""

    async def look() -> bool:
        return set(ids) <= {uuid.UUID(r["ticket_id"]) for r in await found(desk, tag, SUE)}

    await eventually(look, timeout=30)


async def ranked(
    desk: httpx.AsyncClient, q: str, among: list[uuid.UUID], *, who: dict[str, str] = SUE
) -> list[uuid.UUID]:
    """The order search gives `among` (other tests' tickets left out)."""
    ids = [uuid.UUID(r["ticket_id"]) for r in await found(desk, q, who)]
    return [i for i in ids if i in among]


async def test_english_search_ranks_the_subject_and_more_mentions_first(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    tag = uuid.uuid4().hex[:6]
    body_only, _ = await a_ticket(
        deliver,
        desk_pool,
        subject=f"Video does not play {tag}",
        description="The lesson video stops at 3:20. Also, how long does a refund take?",
    )
    in_subject, _ = await a_ticket(
        deliver,
        desk_pool,
        subject=f"Refund not received {tag}",
        description="I asked for a refund of the Python course two weeks ago; no refund yet.",
    )
    unrelated, _ = await a_ticket(deliver, desk_pool, subject=f"Password reset {tag}")
    await indexed(desk, tag, [body_only, in_subject, unrelated])

    assert await ranked(desk, "refunds", [body_only, in_subject, unrelated]) == [
        in_subject,
        body_only,
    ]


async def test_chinese_search_cuts_words_ranks_and_reads_traditional_characters(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    tag = uuid.uuid4().hex[:6]
    mentions, _ = await a_ticket(
        deliver,
        desk_pool,
        subject=f"视频无法播放 {tag}",
        description="第三课的视频一直卡住。顺便问一下退款政策是什么？",
        language="zh",
    )
    about_it, _ = await a_ticket(
        deliver,
        desk_pool,
        subject=f"退款还没到账 {tag}",
        description="我上周申请了Python课程的退款，到现在退款还没有到账。",
        language="zh",
    )
    other, _ = await a_ticket(
        deliver,
        desk_pool,
        subject=f"修改绑定手机 {tag}",
        description="怎么换手机号？",
        language="zh",
    )
    among = [mentions, about_it, other]
    await indexed(desk, tag, among)

    assert await ranked(desk, "退款到账", among) == [about_it, mentions]
    assert await ranked(desk, "退款還沒到賬", among) == [about_it, mentions]


async def test_search_finds_a_learner_by_name_email_phone_and_a_ticket_by_number(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    tag = uuid.uuid4().hex[:6]
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    learner = Learner(name=f"张伟{tag}", email=f"Zhang.Wei.{tag}@Example.com", phone=f"+86{phone}")
    ticket_id, number = await a_ticket(deliver, desk_pool, learner=learner, language="zh")
    await indexed(desk, tag, [ticket_id])

    spaced = f"{phone[:3]} {phone[3:7]} {phone[7:]}"
    for q in (f"张伟{tag}", f"zhang.wei.{tag}@example.com", spaced, number, number[3:]):
        assert await ranked(desk, q, [ticket_id]) == [ticket_id], q
    assert (await found(desk, number, SUE))[0]["learner_name"] == f"张伟{tag}"


async def test_search_finds_a_learners_tickets_by_the_lms_id_desk_matched_them_to(
    desk: httpx.AsyncClient,
    deliver: Deliver,
    desk_pool: asyncpg.Pool,
    settings: CommonSettings,
) -> None:
    """The LMS's snapshot (careloop.learners.v1) names the learner; their ticket, written
    from the same e-mail address without the id, is found by the id in any case, and only
    by agents of its team."""
    tag, lms = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    learner_id, email = f"L-{lms}", f"wang.fang.{lms}@example.com"
    snapshot = {
        "learner_id": learner_id,
        "name": "王芳",
        "email": email,
        "locale": "zh",
        "updated_at": now().isoformat(),
    }
    broker = make_broker(settings, client_id="test-lms")
    await broker.start()
    try:
        await broker.publish(
            json.dumps(snapshot).encode(), topic=topics.LEARNERS, key=learner_id.encode()
        )
    finally:
        await broker.stop()
    await eventually(
        lambda: desk_pool.fetchval("SELECT 1 FROM learners WHERE learner_id = $1", learner_id)
    )
    theirs, _ = await a_ticket(
        deliver, desk_pool, learner=Learner(name="王芳", email=email), subject=f"Login {tag}"
    )
    others, _ = await a_ticket(deliver, desk_pool, subject=f"Login {tag}")
    await indexed(desk, tag, [theirs, others])

    for q in (learner_id, learner_id.lower(), f"  {learner_id.upper()} "):
        assert await ranked(desk, q, [theirs, others]) == [theirs], q
    assert await ranked(desk, learner_id, [theirs], who=FEI) == []


async def test_digits_find_the_ticket_of_that_number_first_then_tickets_that_mention_them(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    numbered, number = await a_ticket(deliver, desk_pool, subject="Cannot log in")
    digits = number.removeprefix("CL-")
    mentions, _ = await a_ticket(deliver, desk_pool, subject=f"Same problem as {digits}")
    await indexed(desk, digits, [mentions])

    assert await ranked(desk, digits, [numbered, mentions]) == [numbered, mentions]
    assert await ranked(desk, number, [numbered, mentions]) == [numbered]
    # eleven digits are a phone number, and words too
    order = f"{uuid.uuid4().int % 10**11:011d}"
    ordered, _ = await a_ticket(deliver, desk_pool, subject=f"Order {order} was charged twice")
    await indexed(desk, order, [ordered])


async def test_search_shows_an_agent_only_their_teams_tickets(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    tag = uuid.uuid4().hex[:6]
    support, number = await a_ticket(deliver, desk_pool, subject=f"Refund question {tag}")
    finance, _ = await a_ticket(
        deliver, desk_pool, agent_id=None, team="finance", subject=f"Refund question {tag}"
    )
    await indexed(desk, tag, [support, finance])

    assert await ranked(desk, tag, [support, finance], who=FEI) == [finance]
    assert set(await ranked(desk, tag, [support, finance], who=ANA)) == {support}
    assert await found(desk, number, FEI) == []


async def test_a_learners_later_message_becomes_searchable(
    desk: httpx.AsyncClient, deliver: Deliver, desk_pool: asyncpg.Pool
) -> None:
    learner = someone()
    tag = uuid.uuid4().hex[:6]
    ticket_id, number = await a_ticket(deliver, desk_pool, learner=learner, subject=f"Login {tag}")
    await indexed(desk, tag, [ticket_id])
    word = f"zx{uuid.uuid4().hex[:8]}"
    follow_up = TicketSubmitted(
        ticket_id=uuid.uuid4(),
        channel=Channel.EMAIL,
        learner=learner,
        subject=f"Re: {number}",
        description=f"The error code is {word}",
        language="en",
        submitted_at=now(),
        message_id=uuid.uuid4(),
        reply_to=number,
    )

    await deliver(new_event(follow_up, producer="intake"))

    await indexed(desk, word, [ticket_id])


async def test_search_answers_any_text_without_a_server_error(desk: httpx.AsyncClient) -> None:
    nasty = [
        "' OR 1=1 --",
        "a & !b | (c:*) <-> d",
        "\\'",
        "x@y.z'",
        "@@@",
        "+",
        "CL-",
        "CL-999999999999999999",
        "0" * 18,
        "的了吗",
        "账" * 200,
        "\ufeff\u202e",
        "_",
        "ǅ ﬁ ß",
    ]

    answers = {
        q: (await desk.get("/v1/search", params={"q": q}, headers=SUE)).status_code for q in nasty
    }

    assert answers == {q: 200 for q in nasty}
