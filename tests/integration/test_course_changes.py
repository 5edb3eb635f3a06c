"""Course changes (R8.3) against the real stack, incident running as its own process: course
operations announce a change and every enrolled learner's notice is released once, even when
incident is SIGKILLed in the middle of the fan-out and started again; a learner's answer on
their reply page, or an e-mail naming the change, becomes a ticket linked to the change; course
operations decide a learner's own request once; desk (in-process) creates the tickets and
shows links and decisions in their history; bad input is refused naming the field."""

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from services.desk.app import create_app
from services.desk.settings import DeskSettings
from shared import dlq, topics
from shared.events import (
    Category,
    Channel,
    Envelope,
    Learner,
    Priority,
    TicketRouted,
    TicketSubmitted,
    new_event,
    now,
)
from shared.kafka import ensure_topics, make_broker
from shared.settings import CommonSettings
from tests.integration.inprocess import (
    ANA,
    SUE,
    environment,
    find_event,
    publish,
    served,
    service_env,
)
from tests.support import RunningStack, eventually, fresh_groups, port

COURSE = f"IELTS-{uuid.uuid4().hex[:6]}"
LEARNERS = 60
HTTP = port(18288)
BASE = f"http://127.0.0.1:{HTTP}"


class Incident:
    """`python -m services.incident` on its own port, to be killed and started again."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.spawn()

        async def up() -> bool:
            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(f"{BASE}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(up, timeout=60)

    def spawn(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.incident"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
async def incident(stack: RunningStack) -> AsyncIterator[Incident]:
    env = {
        **os.environ,
        **service_env(stack),
        **fresh_groups(),
        "CARELOOP_INCIDENT_HTTP_PORT": str(HTTP),
        "CARELOOP_INCIDENT_PG_DSN": stack.dsn,
        "CARELOOP_INCIDENT_AUTO_OPEN": "false",
        # 20 e-mails a second: the fan-out of 60 takes three seconds, long enough to kill it.
        "CARELOOP_INCIDENT_NOTICE_RATES": json.dumps({"email": 20, "other": 20}),
    }
    service = Incident(env)
    try:
        await service.start()
        yield service
    finally:
        service.kill()


@pytest.fixture(scope="module")
async def desk(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    """desk in-process: it creates the replies' tickets and notes links and decisions."""
    with environment({**service_env(stack), **fresh_groups()}):
        async with served(lambda: create_app(DeskSettings()), "desk") as client:
            yield client


@pytest.fixture(scope="module")
async def enrolled(stack: RunningStack, incident: Incident) -> list[str]:
    """Sixty learners of the course (the first reads English), from the LMS's snapshots."""
    settings = CommonSettings(kafka_bootstrap=stack.bootstrap)
    await ensure_topics(settings)
    broker = make_broker(settings, client_id="test-lms")
    ids = [f"L-{uuid.uuid4().hex[:10]}" for _ in range(LEARNERS)]
    await broker.start()
    try:
        for i, learner_id in enumerate(ids):
            snapshot = {
                "learner_id": learner_id,
                "name": f"学员{i}",
                "email": f"{learner_id.lower()}@example.com",
                "locale": "en" if i == 0 else "zh",
                "courses": [{"course_id": COURSE}],
                "updated_at": now().isoformat(),
            }
            await broker.publish(
                json.dumps(snapshot).encode(), topic=topics.LEARNERS, key=learner_id.encode()
            )
    finally:
        await broker.stop()

    async def stored() -> bool:
        conn = await asyncpg.connect(stack.dsn)
        try:
            n = await conn.fetchval(
                "SELECT count(*) FROM incident.learners WHERE learner_id = ANY($1)", ids
            )
        finally:
            await conn.close()
        return bool(n == LEARNERS)

    await eventually(stored)
    return ids


def change(**overrides: Any) -> dict[str, Any]:
    return {
        "course_id": COURSE,
        "course_title": "雅思冲刺班",
        "kind": "schedule",
        "old": "周六 19:00",
        "new": "周日 19:00",
        "reason": "主讲老师周六参加教研培训",
        "reason_en": "The teacher trains on Saturdays",
        "impact": "第 5 至 8 讲改到周日同一时间",
        "impact_en": "Lessons 5 to 8 move to Sunday, same time",
        "remedy": "不方便的同学可免费转到周三班，或获赠一节一对一辅导",
        "remedy_en": "Move to the Wednesday class free of charge, or take a free 1:1 lesson",
        "effective_at": (now() + timedelta(days=3)).isoformat(),
        **overrides,
    }


async def released(dsn: str, change_id: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval(
            "SELECT count(released_at) FROM incident.change_notices WHERE change_id = $1",
            uuid.UUID(change_id),
        )
        return n
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def announced(stack: RunningStack, incident: Incident, enrolled: list[str]) -> dict[str, Any]:
    """The change announced, incident SIGKILLed once some notices went and started again."""
    async with httpx.AsyncClient(base_url=BASE) as c:
        r = await c.post("/v1/course-changes", json=change(), headers=SUE)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["learners"] == LEARNERS and body["number"].startswith("CC-")
    part = await eventually(lambda: released_between(stack.dsn, body["change_id"]), interval=0.05)
    incident.kill()
    await incident.start()
    await eventually(lambda: has_all(stack.dsn, body["change_id"]), timeout=30)
    return {**body, "released_before_kill": part}


async def released_between(dsn: str, change_id: str) -> int:
    n = await released(dsn, change_id)
    return n if 0 < n < LEARNERS else 0


async def has_all(dsn: str, change_id: str) -> bool:
    return await released(dsn, change_id) == LEARNERS


async def test_every_enrolled_learner_is_told_once_through_a_sigkill(
    stack: RunningStack, announced: dict[str, Any], enrolled: list[str]
) -> None:
    assert 0 < announced["released_before_kill"] < LEARNERS
    seen: dict[str, set[str]] = defaultdict(set)

    def match(e: Envelope[Any]) -> bool:
        if (
            e.type == "course_change.notice_requested"
            and str(e.data.change_id) == announced["change_id"]
        ):
            seen[e.data.learner.learner_id].add(str(e.event_id))
        return len(seen) == LEARNERS

    await find_event(stack.bootstrap, topics.INCIDENTS, match)
    assert set(seen) == set(enrolled)
    assert all(len(ids) == 1 for ids in seen.values())  # a relayed repeat is the same event


async def test_the_notice_says_reason_impact_remedy_and_the_reply_link_in_the_learners_language(
    stack: RunningStack, announced: dict[str, Any], enrolled: list[str]
) -> None:
    found: dict[str, Envelope[Any]] = {}

    def match(e: Envelope[Any]) -> bool:
        if e.type == "course_change.notice_requested" and e.data.learner.learner_id in (
            enrolled[0],
            enrolled[1],
        ):
            found[e.data.learner.learner_id] = e
        return len(found) == 2

    await find_event(stack.bootstrap, topics.INCIDENTS, match)
    english, chinese = found[enrolled[0]].data, found[enrolled[1]].data
    assert english.locale == "en" and english.title.startswith("[Course change]")
    assert "The teacher trains on Saturdays" in english.body
    assert "Lessons 5 to 8 move to Sunday" in english.body
    assert "Wednesday class" in english.body and english.reply_url in english.body
    assert chinese.title.startswith("【课程变更】雅思冲刺班：上课时间调整")
    assert "周六 19:00 → 周日 19:00" in chinese.body and "原因：主讲老师" in chinese.body
    assert chinese.channel == "email" and chinese.reply_url.startswith(f"{BASE}/changes/reply/")


async def reply_token(dsn: str, change_id: str, learner_id: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        token: str = await conn.fetchval(
            "SELECT reply_token FROM incident.change_notices "
            "WHERE change_id = $1 AND learner->>'learner_id' = $2",
            uuid.UUID(change_id),
            learner_id,
        )
        return token
    finally:
        await conn.close()


async def history(desk: httpx.AsyncClient, ticket_id: uuid.UUID, kind: str) -> list[str]:
    """The ticket's timeline events once `kind` is among them (the agent's ticket page)."""

    async def noted() -> list[str] | None:
        answer = await desk.get(f"/v1/tickets/{ticket_id}/timeline", headers=SUE)
        if answer.status_code != 200:
            return None
        kinds = [str(i["body"]) for i in answer.json() if i["kind"] == "event"]
        return kinds if kind in kinds else None

    found: list[str] = await eventually(noted)
    return found


async def test_a_reply_on_the_page_becomes_a_desk_ticket_linked_to_the_change(
    stack: RunningStack,
    desk: httpx.AsyncClient,
    announced: dict[str, Any],
    enrolled: list[str],
) -> None:
    token = await reply_token(stack.dsn, announced["change_id"], enrolled[2])
    async with httpx.AsyncClient(base_url=BASE) as c:
        page = await c.get(f"/changes/reply/{token}")
        assert page.status_code == 200 and announced["number"] in page.text
        assert "不方便的同学可免费转到周三班" in page.text
        empty = await c.post(f"/changes/reply/{token}", data={"message": "  "})
        assert empty.status_code == 422
        assert (await c.get("/changes/reply/not-a-token")).status_code == 404
        for odd in ("%00" * 20, "x" * 300, "%E5%A5%BD" * 10):  # never a token of ours
            assert (await c.get(f"/changes/reply/{odd}")).status_code == 404
            assert (
                await c.post(f"/changes/reply/{odd}", data={"message": "hi"})
            ).status_code == 404
        counted_before = await course_counted(stack.dsn)
        sent = await c.post(
            f"/changes/reply/{token}", data={"message": "周日不行，我想转到周三班<script>"}
        )
        assert sent.status_code == 200 and "已收到" in sent.text
    submitted = await find_event(
        stack.bootstrap,
        topics.INTAKE,
        lambda e: (
            e.type == "ticket.submitted"
            and e.data.source == "course_change"
            and e.data.learner.learner_id == enrolled[2]
        ),
    )
    t = submitted.data
    assert t.course_id == COURSE and announced["number"] in t.subject
    assert t.description == "周日不行，我想转到周三班<script>" and t.channel == Channel.WEB
    linked = await find_event(
        stack.bootstrap,
        topics.INCIDENTS,
        lambda e: e.type == "course_change.ticket_linked" and e.data.ticket_id == t.ticket_id,
    )
    assert str(linked.data.change_id) == announced["change_id"]
    assert "course_change_linked" in await history(desk, t.ticket_id, "course_change_linked")
    async with httpx.AsyncClient(base_url=BASE) as c:
        replies = (
            await c.get(f"/v1/course-changes/{announced['change_id']}/replies", headers=ANA)
        ).json()
    assert str(t.ticket_id) in [r["ticket_id"] for r in replies]
    # incident saw the ticket, but an answer to an announcement is no sign of trouble: the
    # early warning's counts for the course leave it out.
    conn = await asyncpg.connect(stack.dsn)
    try:
        seen = "SELECT created_at IS NOT NULL FROM incident.tickets WHERE ticket_id = $1"
        assert await eventually(lambda: conn.fetchval(seen, t.ticket_id))
    finally:
        await conn.close()
    assert await course_counted(stack.dsn) == counted_before


async def course_counted(dsn: str) -> int:
    """The tickets incident's early warning has counted for the test's course, all hours."""
    conn = await asyncpg.connect(dsn)
    try:
        counted: int = await conn.fetchval(
            "SELECT coalesce(sum(count), 0)::int FROM incident.hourly_counts "
            "WHERE dimension = 'course' AND value = $1",
            COURSE,
        )
    finally:
        await conn.close()
    return counted


async def test_an_email_reply_naming_the_change_is_linked_and_a_stranger_is_not(
    stack: RunningStack,
    desk: httpx.AsyncClient,
    announced: dict[str, Any],
    enrolled: list[str],
) -> None:
    """An answer to the notice's e-mail keeps the CC- number in its subject; it is linked when
    the sender was told of that change (by e-mail address: the e-mail has no learner id)."""
    subject = f"Re: 【课程变更】雅思冲刺班：上课时间调整 ({announced['number']})"

    def by_email(address: str) -> Any:
        return new_event(
            TicketSubmitted(
                ticket_id=uuid.uuid4(),
                channel=Channel.EMAIL,
                learner=Learner(name="学员", email=address),
                subject=subject,
                description=f"周日我要上班，能退这几节课吗？{address}",
                language="zh",
                submitted_at=now(),
            ),
            producer="intake",
        )

    told = by_email(f"{enrolled[3].lower()}@example.com")
    stranger = by_email(f"stranger.{uuid.uuid4().hex[:6]}@example.com")
    await publish(CommonSettings(kafka_bootstrap=stack.bootstrap), [told, stranger])
    await history(desk, told.data.ticket_id, "course_change_linked")

    async def seen_not_linked() -> bool:
        conn = await asyncpg.connect(stack.dsn)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM incident.tickets WHERE ticket_id = $1) "
                    "AND NOT EXISTS (SELECT 1 FROM incident.change_replies WHERE ticket_id = $1)",
                    stranger.data.ticket_id,
                )
            )
        finally:
            await conn.close()

    await eventually(seen_not_linked)
    async with httpx.AsyncClient(base_url=BASE) as c:
        one = (await c.get(f"/v1/course-changes/{announced['change_id']}", headers=ANA)).json()
    assert one["learners"] == LEARNERS and one["reached"] == LEARNERS and one["replies"] == 2


async def test_a_reply_link_takes_five_messages_a_day(
    stack: RunningStack,
    desk: httpx.AsyncClient,
    announced: dict[str, Any],
    enrolled: list[str],
) -> None:
    token = await reply_token(stack.dsn, announced["change_id"], enrolled[4])
    async with httpx.AsyncClient(base_url=BASE) as c:
        for i in range(5):
            r = await c.post(f"/changes/reply/{token}", data={"message": f"第{i}个问题"})
            assert r.status_code == 200
        sixth = await c.post(f"/changes/reply/{token}", data={"message": "第六个问题"})
    assert sixth.status_code == 429 and "上限" in sixth.text


async def test_course_ops_decide_a_learners_own_request_once(
    stack: RunningStack, desk: httpx.AsyncClient, incident: Incident
) -> None:
    learner = Learner(name="王同学", email=f"wang.{uuid.uuid4().hex[:6]}@example.com")
    submitted = new_event(
        TicketSubmitted(
            ticket_id=uuid.uuid4(),
            channel=Channel.EMAIL,
            learner=learner,
            subject="想换老师",
            description="现在的老师讲得太快，能不能换到李老师的班？",
            course_id=COURSE,
            language="zh",
            submitted_at=now(),
        ),
        producer="intake",
    )
    ticket_id = submitted.data.ticket_id
    settings = CommonSettings(kafka_bootstrap=stack.bootstrap)
    await publish(settings, [submitted])
    at = now()
    routed = new_event(  # as routing's triage says
        TicketRouted(
            ticket_id=ticket_id,
            channel=Channel.EMAIL,
            category=Category.COURSE_CHANGE,
            priority=Priority.MEDIUM,
            team="course_ops",
            language="zh",
            first_response_due_at=at + timedelta(hours=4),
            resolution_due_at=at + timedelta(days=2),
            routed_at=at,
        ),
        producer="routing",
    )
    await publish(settings, [routed])
    decision = {"decision": "approved", "note": "已为您转到李老师的周三班，下周起生效"}
    async with httpx.AsyncClient(base_url=BASE) as c:

        async def listed() -> bool:
            r = await c.get("/v1/course-change-requests", headers=ANA)
            return any(x["ticket_id"] == str(ticket_id) for x in r.json())

        await eventually(listed)
        path = f"/v1/course-change-requests/{ticket_id}/decision"
        assert (await c.post(path, json=decision, headers=ANA)).status_code == 403
        r = await c.post(path, json=decision, headers=SUE)
        assert r.status_code == 201, r.text
        assert r.json()["by"] == "sue" and r.json()["decision"] == "approved"
        again = await c.post(path, json={**decision, "decision": "declined"}, headers=SUE)
        assert again.status_code == 409 and "decided already" in again.text
        unknown = await c.post(
            f"/v1/course-change-requests/{uuid.uuid4()}/decision", json=decision, headers=SUE
        )
        assert unknown.status_code == 404
    await history(desk, ticket_id, "course_change_approved")
    told = await find_event(
        stack.bootstrap,
        topics.INCIDENTS,
        lambda e: e.type == "course_change.notice_requested" and e.data.ticket_id == ticket_id,
    )
    assert told.data.kind == "decision" and told.data.learner.email == learner.email
    assert "已批准" in told.data.title and "李老师的周三班" in told.data.body


async def test_a_reply_to_a_change_is_not_a_request_to_decide(
    stack: RunningStack, desk: httpx.AsyncClient, announced: dict[str, Any]
) -> None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        reply = await conn.fetchval(
            "SELECT ticket_id FROM incident.change_replies r JOIN incident.tickets t "
            "USING (ticket_id) WHERE r.change_id = $1 LIMIT 1",
            uuid.UUID(announced["change_id"]),
        )
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=BASE) as c:
        r = await c.post(
            f"/v1/course-change-requests/{reply}/decision",
            json={"decision": "declined", "note": "不适用"},
            headers=SUE,
        )
    assert r.status_code == 422 and "not a learner's course change request" in r.text


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"kind": "holiday"}, "kind"),
        ({"effective_at": (now() - timedelta(hours=1)).isoformat()}, "effective_at"),
        ({"course_id": ""}, "course_id"),
        ({"reason": None}, "reason"),
        ({"kind": "teacher", "new": None}, "new"),
    ],
)
async def test_a_bad_change_is_refused_naming_the_problem(
    incident: Incident, overrides: dict[str, Any], named: str
) -> None:
    body = {k: v for k, v in change(**overrides).items() if v is not None}
    async with httpx.AsyncClient(base_url=BASE) as c:
        r = await c.post("/v1/course-changes", json=body, headers=SUE)
        assert r.status_code == 422 and named in r.text, r.text
        forbidden = await c.post("/v1/course-changes", json=change(), headers=ANA)
        assert forbidden.status_code == 403


async def test_a_change_on_the_topic_is_announced_once_and_a_bad_one_dead_lettered(
    stack: RunningStack, incident: Incident, enrolled: list[str]
) -> None:
    settings = CommonSettings(kafka_bootstrap=stack.bootstrap)
    ref = f"ops-{uuid.uuid4().hex[:8]}"
    good = {
        "change_ref": ref,
        "by": "course-ops-system",
        **change(kind="teacher", old="张老师", new="李老师"),
    }
    bad = {
        **good,
        "change_ref": f"{ref}-bad",
        "kind": "schedule",
        "effective_at": "2020-01-01T00:00:00+08:00",
    }
    records = [
        {
            "event_id": str(uuid.uuid4()),
            "type": "course_change.submitted",
            "version": 1,
            "occurred_at": now().isoformat(),
            "producer": "course-ops",
            "correlation_id": str(uuid.uuid4()),
            "key": COURSE,
            "data": {**d, "submitted_at": now().isoformat()},
        }
        for d in (good, good, bad)
    ]
    await ensure_topics(settings)
    broker = make_broker(settings, client_id="test-course-ops")
    await broker.start()
    try:
        for r in records:
            await broker.publish(
                json.dumps(r).encode(),
                topic=topics.COURSE_CHANGES,
                key=str(r["data"]["change_ref"]).encode(),  # type: ignore[index]
            )
    finally:
        await broker.stop()
    error = await dead_letter(stack.bootstrap, f"{ref}-bad")
    assert "effective_at" in error and "past" in error

    async def announced_once() -> bool:
        conn = await asyncpg.connect(stack.dsn)
        try:
            rows = await conn.fetch(
                "SELECT change_ref, learners FROM incident.course_changes WHERE change_ref LIKE $1",
                f"{ref}%",
            )
        finally:
            await conn.close()
        return [(r["change_ref"], r["learners"]) for r in rows] == [(ref, LEARNERS)]

    await eventually(announced_once)


async def dead_letter(bootstrap: str, key: str) -> str:
    """The reason on the dead letter of course changes' record `key`."""
    consumer = AIOKafkaConsumer(
        topics.dlq(topics.COURSE_CHANGES),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:

        async def look() -> str | None:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    if r.key == key.encode():
                        headers: dict[str, bytes] = dict(r.headers)
                        return headers[dlq.ERROR].decode()
            return None

        found: str = await eventually(look, timeout=30, interval=0)
        return found
    finally:
        await consumer.stop()
