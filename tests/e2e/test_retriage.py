"""A person corrects triage end to end: a supervisor re-categorises an assigned ticket, desk
keeps who, what and why, and routing moves it to the new category's team, whose agent gets it.
Refusals name the problem."""

import uuid
from typing import Any

import httpx

from tests.e2e.conftest import Platform
from tests.support import eventually

SAM = {"Authorization": "Bearer e2e-sam-token"}


async def test_a_supervisor_moves_a_mistriaged_ticket_to_the_right_team(platform: Platform) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        submitted = await client.post(
            f"{platform.url('intake')}/v1/tickets",
            json={
                "name": "Li Lei",
                "email": f"lilei.{uuid.uuid4().hex[:8]}@example.com",
                "subject": "The video player freezes",
                "description": "Lesson 4's video freezes after ten seconds on every browser.",
                "external_id": f"retriage-{uuid.uuid4()}",
            },
        )
        assert submitted.status_code == 202, submitted.text
        ticket_id = submitted.json()["ticket_id"]
        url = f"{platform.url('desk')}/v1/tickets/{ticket_id}"

        async def placed() -> dict[str, Any] | None:
            r = await client.get(url, headers=SAM)
            return r.json() if r.status_code == 200 and r.json()["assignee_id"] else None

        first = await eventually(placed, timeout=60)
        assert (first["category"], first["team"]) == ("technical", "tech_support")

        unknown = await client.post(
            f"{url}/retriage", headers=SAM, json={"category": "billing", "reason": "x"}
        )
        assert unknown.status_code == 422 and "category" in unknown.text
        moved = await client.post(
            f"{url}/retriage",
            headers=SAM,
            json={
                "category": "payment_refund",
                "priority": "high",
                "reason": "the learner asks for the money back",
            },
        )
        assert moved.status_code == 200, moved.text
        again = await client.post(
            f"{url}/retriage", headers=SAM, json={"category": "payment_refund", "reason": "x"}
        )
        assert again.status_code == 409

        async def with_finance() -> dict[str, Any] | None:
            r = await client.get(url, headers=SAM)
            t = r.json()
            return t if t["team"] == "finance" and t["assignee_id"] == "fei" else None

        ticket = await eventually(with_finance, timeout=60)
    assert (ticket["category"], ticket["priority"]) == ("payment_refund", "high")
    [retriaged] = [h for h in ticket["history"] if h["kind"] == "retriaged"]
    assert retriaged["actor"] == "sam"
    assert retriaged["detail"] == {
        "from": {"category": "technical", "priority": first["priority"]},
        "to": {"category": "payment_refund", "priority": "high"},
        "reason": "the learner asks for the money back",
    }
