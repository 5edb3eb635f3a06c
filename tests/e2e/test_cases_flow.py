"""A complaint through public interfaces only: the web form, triage to the complaints team, the
case's investigation, a supervisor's approval, the refund on careloop.remedies.v1 and the
payments system's acknowledgement, the learner's outcome e-mail, and the call-back that falls
due after the case closes (CARELOOP_DESK_CASE_CALLBACK_DAYS is 0 on the platform): the agent
records it and metrics counts it."""

import re
import uuid
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared import topics
from shared.events import RefundRequested, RemedyAcknowledged, new_event, now
from tests.e2e.conftest import Platform
from tests.e2e.test_ticket_loop import body, mails_for
from tests.integration.inprocess import find_event
from tests.support import eventually

CARL = {"Authorization": "Bearer e2e-carl-token"}
SAM = {"Authorization": "Bearer e2e-sam-token"}
CALLBACKS = re.compile(r"^careloop_callbacks_total\{([^}]*)\} (\S+)$", re.MULTILINE)


async def test_a_complaint_goes_from_the_form_to_its_remedy_the_outcome_and_the_call_back(
    platform: Platform,
) -> None:
    desk = platform.url("desk")
    async with httpx.AsyncClient(timeout=10) as client:
        submitted = await client.post(
            f"{platform.url('intake')}/v1/tickets",
            json={
                "name": "赵敏",
                "email": f"zhaomin.{uuid.uuid4().hex[:6]}@example.com",
                "subject": "投诉王老师",
                "description": "我要投诉王老师：连续三次直播课迟到二十分钟，上课态度敷衍，"
                "要求公司给个说法并赔偿。",
                "course_id": "PY-101",
                "external_id": f"web-{uuid.uuid4()}",
            },
        )
        assert submitted.status_code == 202
        ticket_id = submitted.json()["ticket_id"]

        async def with_carl() -> dict[str, Any] | None:
            r = await client.get(f"{desk}/v1/tickets/{ticket_id}", headers=SAM)
            t: dict[str, Any] = r.json()
            return t if r.status_code == 200 and t["assignee_id"] == "carl" else None

        ticket = await eventually(with_carl, timeout=30)
        assert ticket["category"] == "complaint"

        opened = await client.post(
            f"{desk}/v1/tickets/{ticket_id}/case",
            json={"department": "教学部", "responsible": "王老师", "order_value": "1980.00"},
            headers=CARL,
        )
        assert opened.status_code == 201, opened.text
        case = f"{desk}/v1/cases/{opened.json()['id']}"
        note = {"body": "直播记录显示三节课分别晚开 18、22、20 分钟。"}
        assert (await client.post(f"{case}/notes", json=note, headers=CARL)).status_code == 201
        finding = {"finding": "upheld", "summary": "迟到属实"}
        assert (await client.put(f"{case}/finding", json=finding, headers=CARL)).status_code == 200

        refund = (
            await client.post(
                f"{case}/remedies", json={"type": "refund", "amount": "500"}, headers=CARL
            )
        ).json()
        assert (refund["status"], refund["approvals_needed"]) == ("proposed", 1)
        extension = (
            await client.post(
                f"{case}/remedies", json={"type": "extension", "days": 7}, headers=CARL
            )
        ).json()
        assert extension["status"] == "requested"  # under the threshold: no approval
        waiting = (await client.get(f"{desk}/v1/remedies/pending", headers=SAM)).json()
        assert refund["remedy_id"] in {r["remedy_id"] for r in waiting}
        approved = await client.post(
            f"{desk}/v1/remedies/{refund['remedy_id']}/approve", json={}, headers=SAM
        )
        assert approved.json()["status"] == "requested"

        requested = await find_event(
            platform.stack.bootstrap,
            topics.REMEDIES,
            lambda e: (
                e.type == RefundRequested.TYPE and str(e.data.remedy_id) == refund["remedy_id"]
            ),
        )
        assert (requested.data.amount, requested.data.approved_by) == ("500.00", ("sam",))

        # payments answers on the acknowledgement topic
        producer = AIOKafkaProducer(bootstrap_servers=platform.stack.bootstrap)
        await producer.start()
        try:
            answer = new_event(
                RemedyAcknowledged(
                    ticket_id=requested.data.ticket_id,
                    remedy_id=requested.data.remedy_id,
                    system="payments",
                    reference="RF-0001",
                    acknowledged_at=now(),
                ),
                producer="payments",
            )
            await producer.send_and_wait(
                topics.REMEDY_ACKS, answer.to_json(), key=answer.key.encode()
            )
        finally:
            await producer.stop()

        async def acknowledged() -> bool:
            remedies = (await client.get(case, headers=CARL)).json()["remedies"]
            return any(
                r["remedy_id"] == refund["remedy_id"] and r["status"] == "acknowledged"
                for r in remedies
            )

        await eventually(acknowledged, timeout=30)

        closed = await client.post(
            f"{case}/close",
            json={"outcome": "我们已提醒王老师守时，并为您办理退款和课程延期。"},
            headers=CARL,
        )
        assert closed.status_code == 200, closed.text
        number = ticket["number"]

        async def outcome() -> list[Any]:
            return mails_for(platform, number, "case_outcome")

        [mail] = await eventually(outcome, timeout=30)
        text = body(mail)
        assert "投诉属实" in mail["Subject"]
        assert "退款 500.00 CNY" in text and "课程延期 7 天" in text and "守时" in text

        # the call-back: due for the closed case in the agent's list, made, then done
        metrics = f"{platform.url('metrics')}/metrics"

        async def calls_counted() -> float:
            page = (await client.get(metrics)).text
            return sum(
                float(value)
                for labels, value in CALLBACKS.findall(page)
                if set(labels.split(",")) == {'reason="case"', 'reached="true"'}
            )

        counted_before = await calls_counted()
        case_id = opened.json()["id"]

        async def due() -> list[dict[str, Any]]:
            r = await client.get(f"{desk}/v1/callbacks", headers=CARL)
            assert r.status_code == 200, r.text
            return [c for c in r.json() if c["case_id"] == case_id]

        [callback] = await eventually(due, timeout=30)
        assert (callback["reason"], callback["number"], callback["attempts"]) == ("case", number, 0)
        made = await client.post(
            f"{case}/callback",
            json={
                "reached": True,
                "score": 4,
                "outcome": "学员表示王老师最近都准时开课，满意处理结果。",
            },
            headers=CARL,
        )
        assert made.status_code == 200, made.text
        assert (made.json()["done"], made.json()["attempts"]) == (True, 1)
        assert await due() == []
        again = await client.post(f"{case}/callback", json={"outcome": "再打一次"}, headers=CARL)
        assert again.status_code == 409, again.text

        async def counted() -> bool:
            return await calls_counted() == counted_before + 1

        await eventually(counted, timeout=30)
