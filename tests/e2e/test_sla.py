"""SLA clocks that act, end to end: a suggestion (low priority, whose targets conftest sets to
seconds) left unanswered warns its agent, then breaches and escalates to the supervisor by
e-mail; one pending on the learner does not breach. Only public interfaces: HTTP, Kafka, the
SMTP sink."""

import uuid
from email.message import Message
from typing import Any

import httpx

from tests.e2e.conftest import Platform
from tests.support import eventually

CARL = {"Authorization": "Bearer e2e-carl-token"}
SAM = {"Authorization": "Bearer e2e-sam-token"}


async def suggestion(client: httpx.AsyncClient, platform: Platform, text: str) -> dict[str, Any]:
    """A learner's suggestion on the web form, once carl (customer service) has it."""
    r = await client.post(
        f"{platform.url('intake')}/v1/tickets",
        json={
            "name": "Li Lei",
            "email": f"lilei+{uuid.uuid4().hex[:8]}@example.com",
            "subject": "A suggestion",
            "description": text,
            "language": "en",
            "external_id": f"sla-{uuid.uuid4()}",
        },
    )
    assert r.status_code == 202
    ticket_id = r.json()["ticket_id"]

    async def assigned() -> dict[str, Any] | None:
        t = await client.get(f"{platform.url('desk')}/v1/tickets/{ticket_id}", headers=SAM)
        return t.json() if t.status_code == 200 and t.json()["status"] == "assigned" else None

    t: dict[str, Any] = await eventually(assigned, timeout=30)
    assert (t["category"], t["priority"], t["assignee_id"]) == ("suggestion", "low", "carl")
    return t


def mails(platform: Platform, number: str, kind: str) -> list[Message]:
    return [
        m
        for m in platform.stack.mails()
        if m["X-Careloop-Ticket"] == number and m["X-Careloop-Kind"] == kind
    ]


async def history_kinds(client: httpx.AsyncClient, platform: Platform, ticket_id: str) -> list[str]:
    r = await client.get(f"{platform.url('desk')}/v1/tickets/{ticket_id}", headers=SAM)
    return [h["kind"] for h in r.json()["history"]]


async def test_an_unanswered_ticket_is_warned_then_breached_and_escalated(
    platform: Platform,
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        t = await suggestion(
            client, platform, "It would be nice to have a dark mode in the course player."
        )
        number, ticket_id = t["number"], t["ticket_id"]

        [warning] = await eventually(lambda: _mails(platform, number, "sla_warning"), timeout=60)
        assert warning["To"] == "carl@example.com"

        # Customer service has no supervisor of its own: the supervisor on duty hears of it.
        async def escalations() -> list[Message]:
            return [m for m in mails(platform, number, "sla_breached") if "first" in m["Subject"]]

        [escalation] = await eventually(escalations, timeout=60)
        assert escalation["To"] == "sam@example.com"
        assert "missed its first response target" in escalation.get_content()

        kinds = await history_kinds(client, platform, ticket_id)
        assert kinds.index("sla_warning") < kinds.index("sla_breached")


async def _mails(platform: Platform, number: str, kind: str) -> list[Message]:
    return mails(platform, number, kind)


async def test_a_ticket_pending_on_the_learner_does_not_breach(platform: Platform) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        t = await suggestion(
            client, platform, "Please add subtitles in English to the grammar videos."
        )
        ticket_id = t["ticket_id"]
        r = await client.post(
            f"{platform.url('desk')}/v1/tickets/{t['number']}/pending", headers=CARL
        )
        assert r.status_code == 200 and r.json()["status"] == "pending_learner"
        again = await client.post(
            f"{platform.url('desk')}/v1/tickets/{ticket_id}/pending", headers=CARL
        )
        assert again.status_code == 409

        # A second suggestion, left alone, breaches: by then this one would have too.
        other = await suggestion(
            client, platform, "A night mode for the mobile app would help me study late."
        )

        async def other_breached() -> bool:
            return "sla_breached" in await history_kinds(client, platform, other["ticket_id"])

        await eventually(other_breached, timeout=90)
        kinds = await history_kinds(client, platform, ticket_id)
        assert "pending_learner" in kinds and "sla_breached" not in kinds
        assert not mails(platform, t["number"], "sla_breached")
