"""Complaint cases in-process against the real stack: a case's remedy approved by two
supervisors is one refund.requested on Kafka, the payments system's acknowledgement (even
re-sent) is applied once, an unanswered remedy becomes overdue, a bad acknowledgement is
dead-lettered with its reason, and the closed case tells the learner and raises a call-back."""

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from services.desk.app import create_app
from services.desk.settings import DeskSettings
from shared import dlq, topics
from shared.events import (
    CaseConcluded,
    Category,
    Channel,
    Envelope,
    Learner,
    Priority,
    RefundRequested,
    RemedyAcknowledged,
    TicketSubmitted,
    decode,
    new_event,
    now,
)
from shared.settings import CommonSettings
from tests.integration.inprocess import (
    ANA,
    SUE,
    environment,
    find_event,
    publish,
    routed_to_ana,
    served,
    service_env,
)
from tests.support import RunningStack, eventually

ADA = {"Authorization": "Bearer test-ada-token"}
BEN = {"Authorization": "Bearer test-ben-token"}
OVERDUE_SECONDS = 3


@pytest.fixture(scope="module")
async def desk(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        **service_env(stack),
        "CARELOOP_DESK_CASE_ACK_OVERDUE_HOURS": str(OVERDUE_SECONDS / 3600),
        "CARELOOP_DESK_CASE_CALLBACK_DAYS": str(1 / 86400),
        "CARELOOP_DESK_CASE_CLOCK_SECONDS": "0.3",
    }
    with environment(env):
        async with served(lambda: create_app(DeskSettings()), "desk") as client:
            yield client


async def complaint(
    settings: CommonSettings, desk: httpx.AsyncClient, *, email: str, category: Category
) -> uuid.UUID:
    """A learner's complaint ticket, routed to Ana in the complaints team."""
    ticket_id = uuid.uuid4()
    at = now()
    submitted = TicketSubmitted(
        ticket_id=ticket_id,
        channel=Channel.WEB,
        learner=Learner(name="Wang Fang", email=email),
        subject="老师连续三次迟到",
        description=f"王老师的直播课又迟到了二十分钟，我要求退款 ({ticket_id.hex[:8]})",
        course_id="PY-101",
        language="zh",
        submitted_at=at,
    )
    await routed_to_ana(settings, desk, submitted, category=category, priority=Priority.HIGH)
    return ticket_id


async def events_on(
    bootstrap: str, topic: str, match: Callable[[Envelope[Any]], bool]
) -> list[Envelope[Any]]:
    """Every event on `topic`, from its start, that `match`es: read until a quiet second."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[Envelope[Any]] = []
    try:
        while batches := await consumer.getmany(timeout_ms=1000):
            for records in batches.values():
                for r in records:
                    with contextlib.suppress(Exception):
                        if match(event := decode(r.value)):
                            found.append(event)
    finally:
        await consumer.stop()
    return found


def ack(ticket_id: uuid.UUID, remedy_id: uuid.UUID) -> Envelope[RemedyAcknowledged]:
    return new_event(
        RemedyAcknowledged(
            ticket_id=ticket_id,
            remedy_id=remedy_id,
            system="payments",
            reference="RF-20240517-0042",
            acknowledged_at=now(),
        ),
        producer="payments",
    )


async def detail(desk: httpx.AsyncClient, case_id: str) -> dict[str, Any]:
    r = await desk.get(f"/v1/cases/{case_id}", headers=ANA)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_case_from_complaint_to_acknowledged_remedies_outcome_and_call_back(
    desk: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    email = f"wang.{uuid.uuid4().hex[:8]}@example.com"
    ticket_id = await complaint(settings, desk, email=email, category=Category.COMPLAINT)

    assert (
        await desk.post(f"/v1/tickets/{ticket_id}/case", json={}, headers=BEN)
    ).status_code == 404
    opened = await desk.post(
        f"/v1/tickets/{ticket_id}/case",
        json={"order_value": "2000.00", "department": "教学部", "teacher_id": "t-wang"},
        headers=ANA,
    )
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["id"]
    assert (
        await desk.post(f"/v1/tickets/{ticket_id}/case", json={}, headers=ANA)
    ).status_code == 409
    assert (await desk.get(f"/v1/cases/{case_id}", headers=BEN)).status_code == 404

    note = {"body": "查看了三节课的直播记录：开课时间分别晚了18、22、20分钟。"}
    assert (
        await desk.post(f"/v1/cases/{case_id}/notes", json=note, headers=ANA)
    ).status_code == 201
    bad_finding = await desk.put(
        f"/v1/cases/{case_id}/finding", json={"finding": "maybe"}, headers=ANA
    )
    assert (
        bad_finding.status_code == 422 and bad_finding.json()["detail"][0]["loc"][-1] == "finding"
    )
    finding = {"finding": "upheld", "summary": "教师迟到属实"}
    assert (
        await desk.put(f"/v1/cases/{case_id}/finding", json=finding, headers=ANA)
    ).status_code == 200

    remedies = f"/v1/cases/{case_id}/remedies"
    for body, field in [
        ({"type": "refund", "amount": "-50"}, "amount"),
        ({"type": "refund", "amount": "2500.00"}, "amount"),  # above the order's value
        ({"type": "refund", "amount": "50", "currency": "USD"}, "currency"),
    ]:
        refused = await desk.post(remedies, json=body, headers=ANA)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"][-1] == field
    unknown = await desk.post(remedies, json={"type": "cash", "amount": "5"}, headers=ANA)
    assert unknown.status_code == 422 and "'type'" in unknown.json()["detail"][0]["msg"]

    refund = (
        await desk.post(remedies, json={"type": "refund", "amount": "1500"}, headers=ANA)
    ).json()
    assert (refund["status"], refund["approvals_needed"], refund["amount"]) == (
        "proposed",
        2,
        "1500.00",
    )
    approve = f"/v1/remedies/{refund['remedy_id']}/approve"
    assert (await desk.post(approve, json={}, headers=ANA)).status_code == 403
    first = await desk.post(approve, json={"note": "迟到有记录"}, headers=SUE)
    assert first.status_code == 200 and first.json()["status"] == "proposed"
    assert (await desk.post(approve, json={}, headers=SUE)).status_code == 409  # twice
    second = await desk.post(approve, json={}, headers=ADA)
    assert second.status_code == 200 and second.json()["status"] == "requested"
    assert (await desk.post(approve, json={}, headers=ADA)).status_code == 409  # a retry

    own = (await desk.post(remedies, json={"type": "points", "points": 5000}, headers=SUE)).json()
    own_approval = await desk.post(f"/v1/remedies/{own['remedy_id']}/approve", json={}, headers=SUE)
    assert own_approval.status_code == 409
    decline = f"/v1/remedies/{own['remedy_id']}/decline"
    assert (await desk.post(decline, json={"reason": "积分不适用"}, headers=ADA)).status_code == 200

    extension = (
        await desk.post(remedies, json={"type": "extension", "days": 30}, headers=ANA)
    ).json()
    assert extension["course_id"] == "PY-101"  # the ticket's course
    await desk.post(f"/v1/remedies/{extension['remedy_id']}/approve", json={}, headers=SUE)

    # Payments answers the refund, and answers again (the same record redelivered, and a
    # second copy under a new event id): applied once.
    answer = ack(ticket_id, uuid.UUID(refund["remedy_id"]))
    await publish(settings, [answer, answer, ack(ticket_id, uuid.UUID(refund["remedy_id"]))])

    async def acknowledged() -> dict[str, Any] | None:
        case = await detail(desk, case_id)
        (r,) = [r for r in case["remedies"] if r["remedy_id"] == refund["remedy_id"]]
        return r if r["status"] == "acknowledged" else None

    answered = await eventually(acknowledged)
    assert answered["answer_reference"] == "RF-20240517-0042" and answered["overdue"] is False

    # The extension nobody acknowledged is overdue; the acknowledged refund is not.
    async def overdue() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = (
            await desk.get("/v1/remedies/overdue?everyone=true", headers=SUE)
        ).json()
        return rows if any(r["remedy_id"] == extension["remedy_id"] for r in rows) else None

    late = await eventually(overdue, timeout=OVERDUE_SECONDS + 10)
    assert refund["remedy_id"] not in {r["remedy_id"] for r in late}

    async def gauge() -> bool:
        text = (await desk.get("/metrics")).text
        return any(
            line.startswith('careloop_remedies_overdue{type="extension"}')
            and float(line.split()[-1]) >= 1
            for line in text.splitlines()
        )

    await eventually(gauge)

    refunds = await events_on(
        stack.bootstrap,
        topics.REMEDIES,
        lambda e: e.type == RefundRequested.TYPE and str(e.data.remedy_id) == refund["remedy_id"],
    )
    assert len({e.event_id for e in refunds}) == 1
    assert (refunds[0].data.amount, refunds[0].data.currency) == ("1500.00", "CNY")
    assert refunds[0].data.approved_by == ("sue", "ada")
    history = (await desk.get(f"/v1/tickets/{ticket_id}", headers=SUE)).json()["history"]
    assert [h["kind"] for h in history].count("remedy_acknowledged") == 1

    closed = await desk.post(
        f"/v1/cases/{case_id}/close",
        json={"outcome": "经核实王老师迟到属实，我们已为您办理退款并延长课程30天。"},
        headers=ANA,
    )
    assert closed.status_code == 200, closed.text
    change = await desk.patch(f"/v1/cases/{case_id}", json={"department": "x"}, headers=ANA)
    assert change.status_code == 409
    concluded = await find_event(
        stack.bootstrap,
        topics.TICKETS,
        lambda e: e.type == CaseConcluded.TYPE and e.data.ticket_id == ticket_id,
    )
    assert concluded.data.finding == "upheld"
    assert {r.type for r in concluded.data.remedies} == {"refund", "extension"}
    archived = (await desk.get("/v1/cases?archived=true", headers=ANA)).json()
    assert case_id in {c["case_id"] for c in archived}

    async def call_back_due() -> bool:
        rows = (await desk.get("/v1/callbacks", headers=ANA)).json()
        return any(r["case_id"] == case_id for r in rows)

    await eventually(call_back_due)
    made = {"outcome": "学员对处理结果满意"}
    assert (
        await desk.post(f"/v1/cases/{case_id}/callback", json=made, headers=ANA)
    ).status_code == 200
    assert (
        await desk.post(f"/v1/cases/{case_id}/callback", json=made, headers=ANA)
    ).status_code == 409

    # The same learner complains again about the same teacher: the new case is a repeat.
    again = await complaint(settings, desk, email=email, category=Category.COMPLAINT)
    second_case = (
        await desk.post(f"/v1/tickets/{again}/case", json={"teacher_id": "t-wang"}, headers=ANA)
    ).json()["id"]
    repeat = (await detail(desk, second_case))["repeat"]
    assert (repeat["learner"], repeat["teacher"], repeat["course"]) == (True, True, True)


async def test_only_a_supervisor_opens_a_case_on_a_ticket_that_is_no_complaint(
    desk: httpx.AsyncClient, settings: CommonSettings
) -> None:
    ticket_id = await complaint(
        settings, desk, email=f"li.{uuid.uuid4().hex[:8]}@example.com", category=Category.TECHNICAL
    )
    assert (
        await desk.post(f"/v1/tickets/{ticket_id}/case", json={}, headers=ANA)
    ).status_code == 403
    assert (
        await desk.post(f"/v1/tickets/{ticket_id}/case", json={}, headers=SUE)
    ).status_code == 201


async def test_refunds_together_stay_within_the_order_value_also_when_it_changes(
    desk: httpx.AsyncClient, settings: CommonSettings
) -> None:
    """A 2,000.00 order: a refund of 1,500 waiting for approval leaves room for 500, not 600;
    declined, it leaves room again. The order value cannot drop under the refunds or be
    removed; a case without one takes no refund."""
    ticket_id = await complaint(
        settings,
        desk,
        email=f"zhao.{uuid.uuid4().hex[:8]}@example.com",
        category=Category.COMPLAINT,
    )
    opened = await desk.post(f"/v1/tickets/{ticket_id}/case", json={}, headers=ANA)
    case, remedies = f"/v1/cases/{opened.json()['id']}", f"/v1/cases/{opened.json()['id']}/remedies"

    async def refused(r: httpx.Response, field: str) -> str:
        assert r.status_code == 422, r.text
        detail = r.json()["detail"][0]
        assert detail["loc"] == ["body", field]
        return str(detail["msg"])

    no_value = await desk.post(remedies, json={"type": "refund", "amount": "100"}, headers=ANA)
    assert "set the case's order_value first" in await refused(no_value, "order_value")
    assert (await desk.patch(case, json={"order_value": "2000.00"}, headers=ANA)).status_code == 200
    big = await desk.post(remedies, json={"type": "refund", "amount": "1500"}, headers=ANA)
    assert big.status_code == 201 and big.json()["status"] == "proposed"
    over = await desk.post(remedies, json={"type": "refund", "amount": "600"}, headers=ANA)
    assert await refused(over, "amount") == (
        "a refund of 600.00 with the case's 1500.00 already refunded comes to 2100.00, "
        "above the order's 2000.00"
    )
    declined = await desk.post(
        f"/v1/remedies/{big.json()['remedy_id']}/decline", json={"reason": "金额过高"}, headers=SUE
    )
    assert declined.status_code == 200
    small = await desk.post(remedies, json={"type": "refund", "amount": "600"}, headers=ANA)
    assert small.status_code == 201, small.text

    lower = await desk.patch(case, json={"order_value": "500.00"}, headers=ANA)
    assert await refused(lower, "order_value") == (
        "the case's refunds come to 600.00, above an order value of 500.00"
    )
    removed = await desk.patch(case, json={"order_value": None}, headers=ANA)
    assert "cannot be removed" in await refused(removed, "order_value")
    assert (await desk.get(case, headers=ANA)).json()["order_value"] == "2000.00"
    assert (await desk.patch(case, json={"order_value": "600.00"}, headers=ANA)).status_code == 200
    full = await desk.post(remedies, json={"type": "refund", "amount": "0.01"}, headers=ANA)
    assert "comes to 600.01, above the order's 600.00" in await refused(full, "amount")


async def test_an_answer_to_a_remedy_not_waiting_for_one_is_dead_lettered_another_services_passed(
    desk: httpx.AsyncClient, stack: RunningStack, settings: CommonSettings
) -> None:
    ticket_id = await complaint(
        settings, desk, email=f"he.{uuid.uuid4().hex[:8]}@example.com", category=Category.COMPLAINT
    )
    case_id = (
        await desk.post(
            f"/v1/tickets/{ticket_id}/case", json={"order_value": "980.00"}, headers=ANA
        )
    ).json()["id"]
    proposed = (
        await desk.post(
            f"/v1/cases/{case_id}/remedies", json={"type": "refund", "amount": "800"}, headers=ANA
        )
    ).json()
    # An answer for a remedy desk never issued (incident's compensations share the topic),
    # then one for desk's refund that still waits for its approval: same key, same order.
    foreign = ack(ticket_id, uuid.uuid4())
    premature = ack(ticket_id, uuid.UUID(proposed["remedy_id"]))
    await publish(settings, [foreign, premature])
    consumer = AIOKafkaConsumer(
        topics.dlq(topics.REMEDY_ACKS),
        bootstrap_servers=stack.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    letters: dict[str, str] = {}
    await consumer.start()
    try:

        async def letter() -> str | None:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    for sent in (foreign, premature):
                        if str(sent.event_id).encode() in r.value:
                            letters[str(sent.event_id)] = dict(r.headers)[dlq.ERROR].decode()
            return letters.get(str(premature.event_id))

        why = await eventually(letter, timeout=30, interval=0)
    finally:
        await consumer.stop()
    assert "the remedy is proposed, not waiting for an answer" in why
    assert str(foreign.event_id) not in letters
    assert (await detail(desk, case_id))["remedies"][0]["status"] == "proposed"
