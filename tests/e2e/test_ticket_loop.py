"""Steps a–h of the ticket loop, driven only through public interfaces: HTTP, Kafka, e-mail, /metrics."""

import json
import re
import uuid
from email.message import Message
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared import topics
from tests.e2e.conftest import Platform
from tests.integration.inprocess import find_event
from tests.support import eventually

TINA = {"Authorization": "Bearer e2e-tina-token"}
SAM = {"Authorization": "Bearer e2e-sam-token"}


def mails_for(platform: Platform, number: str, kind: str) -> list[Message]:
    return [
        m
        for m in platform.stack.mails()
        if m["X-Careloop-Ticket"] == number and m["X-Careloop-Kind"] == kind
    ]


def body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


async def ticket(
    client: httpx.AsyncClient, platform: Platform, ticket_id: str
) -> dict[str, Any] | None:
    r = await client.get(f"{platform.url('desk')}/v1/tickets/{ticket_id}", headers=SAM)
    return r.json() if r.status_code == 200 else None


URGENT_RESOLVED = 'careloop_ticket_resolution_seconds_count{priority="urgent"}'


async def resolved_urgent(client: httpx.AsyncClient, platform: Platform) -> float:
    """How many urgent resolutions metrics has counted (other tests resolve tickets too)."""
    text = (await client.get(f"{platform.url('metrics')}/metrics")).text
    found = re.search(re.escape(URGENT_RESOLVED) + r" (\S+)", text)
    return float(found[1]) if found else 0.0


async def test_a_ticket_travels_the_whole_loop(platform: Platform) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        urgent_resolved_before = await resolved_urgent(client, platform)
        # a. the web form; a bad submission is refused naming the field; a retry is one ticket
        bad = await client.post(
            f"{platform.url('intake')}/v1/tickets",
            json={"name": "王丽", "email": "not-an-address", "subject": "x", "description": "y"},
        )
        assert bad.status_code == 422
        assert [e["loc"][-1] for e in bad.json()["detail"]] == ["email"]

        submission = {
            "name": "王丽",
            "email": "wangli@example.com",
            "phone": "+86 138 1234 5678",
            "subject": "账号被盗了",
            "description": "有陌生设备登录，密码被改了，明天要上课",
            "course_id": "PY-101",
            "external_id": f"web-{uuid.uuid4()}",
        }
        first = await client.post(f"{platform.url('intake')}/v1/tickets", json=submission)
        again = await client.post(f"{platform.url('intake')}/v1/tickets", json=submission)
        assert first.status_code == again.status_code == 202
        ticket_id = first.json()["ticket_id"]
        assert again.json() == {"ticket_id": ticket_id, "duplicate": True}

        # b. desk creates it once, numbered; d. routing triages and assigns it
        async def assigned() -> dict[str, Any] | None:
            t = await ticket(client, platform, ticket_id)
            return t if t and t["status"] == "assigned" else None

        t = await eventually(assigned, timeout=30)
        number = t["number"]
        assert re.fullmatch(r"CL-\d{6}", number)
        assert (t["category"], t["priority"], t["team"], t["assignee_id"]) == (
            "account_security",
            "urgent",
            "tech_support",
            "tina",
        )

        # c. the learner's confirmation e-mail, with the number and the first-response time
        async def confirmation() -> list[Message]:
            return mails_for(platform, number, "confirmation")

        [mail] = await eventually(confirmation, timeout=30)
        assert mail["To"] == "wangli@example.com"
        assert number in mail["Subject"] and "30 分钟" in body(mail)

        # e. the agent lists, replies and resolves; the reply reaches the learner
        mine = (
            await client.get(f"{platform.url('desk')}/v1/agent/tickets?limit=500", headers=TINA)
        ).json()
        assert ticket_id in [x["ticket_id"] for x in mine]
        reply = await client.post(
            f"{platform.url('desk')}/v1/tickets/{ticket_id}/replies",
            headers=TINA,
            json={"body": "我们已冻结账号并重置密码"},
        )
        assert reply.status_code == 201 and reply.json()["first_response"] is True
        await eventually(lambda: _mails(platform, number, "reply"), timeout=30)
        assert "重置密码" in body(mails_for(platform, number, "reply")[0])

        # f. "not solved" reopens it back to the same agent; "solved" closes it
        confirm_url = await _resolve_and_get_link(client, platform, ticket_id, number)
        page = await client.get(confirm_url)
        assert page.status_code == 200 and "solved" in page.text
        assert (await client.post(confirm_url, data={"answer": "not_solved"})).status_code == 200
        t = await eventually(assigned, timeout=30)
        assert t["assignee_id"] == "tina"
        assert (await client.post(confirm_url, data={"answer": "solved"})).status_code == 404

        confirm_url = await _resolve_and_get_link(client, platform, ticket_id, number)
        assert (await client.post(confirm_url, data={"answer": "solved"})).status_code == 200
        assert (await ticket(client, platform, ticket_id))["status"] == "closed"  # type: ignore[index]

        # g. the survey arrives after resolution; a low score reopens it for a supervisor
        [survey_mail] = await eventually(lambda: _mails(platform, number, "survey"), timeout=30)
        survey_url = re.search(r"http://\S+/s/\S+", body(survey_mail)).group(0)  # type: ignore[union-attr]
        form = await client.get(survey_url)
        assert form.status_code == 200 and 'name="problem_solving"' in form.text
        answered = await client.post(
            survey_url,
            data={
                "overall": "2",
                "response_speed": "4",
                "problem_solving": "1",
                "attitude": "3",
                "comment": "还是登不上",
            },
        )
        assert answered.status_code == 200
        assert (
            await client.post(
                survey_url,
                data={
                    "overall": "5",
                    "response_speed": "5",
                    "problem_solving": "5",
                    "attitude": "5",
                },
            )
        ).status_code == 409

        async def with_supervisor() -> dict[str, Any] | None:
            t = await ticket(client, platform, ticket_id)
            return t if t and t["assignee_id"] == "sam" and t["status"] == "assigned" else None

        t = await eventually(with_supervisor, timeout=30)
        assert t["needs_supervisor"] is True
        kinds = [h["kind"] for h in t["history"]]
        assert kinds.count("reopened") == 2 and kinds.count("resolved") == 2

        # every e-mail went exactly once
        assert len(mails_for(platform, number, "confirmation")) == 1
        assert len(mails_for(platform, number, "confirm_request")) == 2

        # h. metrics
        async def metrics() -> str | None:
            text = (await client.get(f"{platform.url('metrics')}/metrics")).text
            wanted = (
                'careloop_tickets_created_total{category="account_security",channel="web",priority="urgent"}',
                'careloop_ticket_first_response_seconds_count{priority="urgent"}',
                f"{URGENT_RESOLVED} {urgent_resolved_before + 2}",
                'careloop_survey_score_count{dimension="overall"}',
                'careloop_tickets_reopened_total{reason="low_score"} 1.0',
                'careloop_tickets_reopened_total{reason="not_solved"} 1.0',
                'careloop_tickets_closed_total{reason="confirmed"}',
                'careloop_tickets_open{status="assigned",team="tech_support"}',
                'careloop_notifications_total{kind="confirmation",outcome="sent"}',
            )
            missing[:] = [w for w in wanted if w not in text]
            return None if missing else text

        missing: list[str] = []
        try:
            await eventually(metrics, timeout=90)
        except AssertionError as exc:
            raise AssertionError(f"metrics never showed {missing}") from exc

        # every service exports its plumbing too
        desk_metrics = (await client.get(f"{platform.url('desk')}/metrics")).text
        assert (
            'careloop_events_applied_total{service="desk",type="ticket.submitted"}' in desk_metrics
        )
        assert 'careloop_outbox_published_total{service="desk"}' in desk_metrics


async def _mails(platform: Platform, number: str, kind: str) -> list[Message]:
    return mails_for(platform, number, kind)


def _confirm_links(platform: Platform, number: str) -> set[str]:
    return {
        re.search(r"http://\S+/confirm/\S+", body(m)).group(0)  # type: ignore[union-attr]
        for m in mails_for(platform, number, "confirm_request")
    }


async def _resolve_and_get_link(
    client: httpx.AsyncClient, platform: Platform, ticket_id: str, number: str
) -> str:
    """Resolve as the agent; return the new link the learner was e-mailed to confirm with."""
    before = _confirm_links(platform, number)
    resolved = await client.post(
        f"{platform.url('desk')}/v1/tickets/{ticket_id}/resolve",
        headers=TINA,
        json={"resolution": "密码已重置，请重新登录"},
    )
    assert resolved.status_code == 200

    async def new_link() -> set[str]:
        return _confirm_links(platform, number) - before

    [link] = await eventually(new_link, timeout=30)
    return link


async def test_another_service_publishes_a_submission_to_the_inbound_topic(
    platform: Platform,
) -> None:
    external_id = f"lms-{uuid.uuid4()}"
    producer = AIOKafkaProducer(bootstrap_servers=platform.stack.bootstrap, acks="all")
    await producer.start()
    try:
        message = {
            "source": "lms",
            "external_id": external_id,
            "name": "Li Lei",
            "email": "lilei@example.com",
            "subject": "Refund for a double charge",
            "description": "I was charged twice for the course and need a refund",
        }
        for _ in range(2):  # a redelivery is one ticket
            await producer.send_and_wait(
                topics.INBOUND, json.dumps(message).encode(), key=external_id.encode()
            )
    finally:
        await producer.stop()

    async with httpx.AsyncClient(timeout=10) as client:

        async def assigned_to_finance() -> list[dict[str, Any]] | None:
            r = await client.get(
                f"{platform.url('desk')}/v1/agent/tickets",
                headers={"Authorization": "Bearer e2e-fei-token"},
            )
            mine = [t for t in r.json() if t["subject"] == "Refund for a double charge"]
            return mine or None

        [t] = await eventually(assigned_to_finance, timeout=30)
        assert (t["channel"], t["category"]) == ("service", "payment_refund")
        [mail] = await eventually(lambda: _mails(platform, t["number"], "confirmation"), timeout=30)
        assert mail["To"] == "lilei@example.com" and "8 hours" in body(mail)


async def test_a_low_score_after_not_solved_still_goes_to_a_supervisor(platform: Platform) -> None:
    """The learner says "not solved" (the ticket goes back to its agent), then scores 2 on the
    survey sent for that resolution: the ticket, still open, is escalated to a supervisor."""
    async with httpx.AsyncClient(timeout=10) as client:
        submission = {
            "name": "赵敏",
            "email": "zhaomin@example.com",
            "subject": "账号被盗了",
            "description": "有陌生设备登录，密码被改了",
            "external_id": f"web-{uuid.uuid4()}",
        }
        ticket_id = (
            await client.post(f"{platform.url('intake')}/v1/tickets", json=submission)
        ).json()["ticket_id"]

        async def with_tina() -> dict[str, Any] | None:
            t = await ticket(client, platform, ticket_id)
            return t if t and (t["status"], t["assignee_id"]) == ("assigned", "tina") else None

        number = (await eventually(with_tina, timeout=30))["number"]
        confirm_url = await _resolve_and_get_link(client, platform, ticket_id, number)
        [survey_mail] = await eventually(lambda: _mails(platform, number, "survey"), timeout=30)
        survey_url = re.search(r"http://\S+/s/\S+", body(survey_mail)).group(0)  # type: ignore[union-attr]

        assert (await client.post(confirm_url, data={"answer": "not_solved"})).status_code == 200
        await eventually(with_tina, timeout=30)
        scores = {"overall": "2", "response_speed": "3", "problem_solving": "1", "attitude": "4"}
        answered = await client.post(survey_url, data=scores)
        assert answered.status_code == 200 and "supervisor" in answered.text

        async def escalated() -> dict[str, Any] | None:
            t = await ticket(client, platform, ticket_id)
            return t if t and t["needs_supervisor"] else None

        t = await eventually(escalated, timeout=30)
        assert "escalated" in [h["kind"] for h in t["history"]]
        event = await find_event(
            platform.stack.bootstrap,
            topics.TICKETS,
            lambda e: e.type == "ticket.escalated" and str(e.data.ticket_id) == ticket_id,
        )
        assert event.data.reason == "low_score"

        async def with_sam() -> dict[str, Any] | None:
            t = await ticket(client, platform, ticket_id)
            return t if t and (t["status"], t["assignee_id"]) == ("assigned", "sam") else None

        await eventually(with_sam, timeout=30)  # routing moved it from tina to a supervisor
