"""Tickets in every state a learner meets on the portal, made through desk's public ways in:
a submission on Kafka, routing's placement on Kafka, and the agent API for replies and
resolutions. Used by the browser tests and the portal's integration tests."""

import itertools
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from shared.events import (
    Category,
    Channel,
    Learner,
    Priority,
    TicketRouted,
    TicketSubmitted,
    new_event,
    now,
)
from shared.settings import CommonSettings
from tests.integration.inprocess import ANA, SUE, publish
from tests.support import eventually

CHAPTERS = itertools.count(1)  # each test run has a stack of its own
LI_LEI = Learner(name="李雷", email="lilei@example.com", learner_id="L-1001")
HAN_MEIMEI = Learner(name="韩梅梅", email="hanmeimei@example.com", learner_id="L-2002")


@dataclass(frozen=True)
class Made:
    ticket_id: uuid.UUID
    number: str


@dataclass(frozen=True)
class Tickets:
    """Makes tickets on a running desk (`desk`: a client of its HTTP surface)."""

    desk: httpx.AsyncClient
    settings: CommonSettings
    dsn: str

    async def ticket(self, ticket_id: uuid.UUID) -> dict[str, Any] | None:
        r = await self.desk.get(f"/v1/tickets/{ticket_id}", headers=SUE)
        return r.json() if r.status_code == 200 else None

    async def in_state(self, ticket_id: uuid.UUID, **wanted: Any) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            t = await self.ticket(ticket_id)
            return t if t and all(t[k] == v for k, v in wanted.items()) else None

        found: dict[str, Any] = await eventually(check, timeout=30, interval=0.1)
        return found

    async def submitted(
        self,
        *,
        subject: str = "课程视频无法播放",
        description: str | None = None,
        language: str = "zh",
        learner: Learner = LI_LEI,
        channel: Channel = Channel.EMAIL,
    ) -> Made:
        # Each text its own: the same learner's same text twice within minutes is one ticket.
        chapter = next(CHAPTERS)
        description = description or (
            f"打开第{chapter}章的视频时一直在加载，换了浏览器也不行。"
            if language == "zh"
            else f"Chapter {chapter}'s video keeps loading, in every browser I tried."
        )
        event = new_event(
            TicketSubmitted(
                ticket_id=uuid.uuid4(),
                channel=channel,
                learner=learner,
                subject=subject,
                description=description,
                language=language,
                submitted_at=now(),
            ),
            producer="test",
        )
        await publish(self.settings, [event])
        t = await self.in_state(event.data.ticket_id, status="new")
        return Made(event.data.ticket_id, t["number"])

    async def assigned(
        self, agent_id: str = "ana", category: Category = Category.TECHNICAL, **submitted: Any
    ) -> Made:
        made = await self.submitted(**submitted)
        at = now()
        routed = TicketRouted(
            ticket_id=made.ticket_id,
            channel=submitted.get("channel", Channel.EMAIL),
            category=category,
            priority=Priority.MEDIUM,
            team="tech_support",
            language=submitted.get("language", "zh"),
            first_response_due_at=at + timedelta(hours=4),
            resolution_due_at=at + timedelta(hours=48),
            agent_id=agent_id,
            routed_at=at,
        )
        await publish(self.settings, [new_event(routed, producer="test")])
        await self.in_state(made.ticket_id, status="assigned")
        return made

    async def reply(self, ticket_id: uuid.UUID, body: str) -> None:
        r = await self.desk.post(
            f"/v1/tickets/{ticket_id}/replies", headers=ANA, json={"body": body}
        )
        assert r.status_code == 201, r.text

    async def resolve(self, ticket_id: uuid.UUID, resolution: str) -> None:
        r = await self.desk.post(
            f"/v1/tickets/{ticket_id}/resolve", headers=ANA, json={"resolution": resolution}
        )
        assert r.status_code == 200, r.text

    async def replied(self, **submitted: Any) -> Made:
        made = await self.assigned(**submitted)
        zh = submitted.get("language", "zh") == "zh"
        await self.reply(
            made.ticket_id,
            "您好，请先清除浏览器缓存，然后重新登录再试一次。"
            if zh
            else "Hello, please clear your browser's cache and sign in again.",
        )
        return made

    async def resolved(self, **submitted: Any) -> Made:
        made = await self.replied(**submitted)
        zh = submitted.get("language", "zh") == "zh"
        await self.resolve(
            made.ticket_id,
            "已为您重置播放权限。" if zh else "We reset your playback permissions.",
        )
        return made

    async def messages(self, ticket_id: uuid.UUID) -> list[asyncpg.Record]:
        """The follow-ups desk stored for the ticket, straight from its table."""
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(
                "SELECT * FROM desk.messages WHERE ticket_id = $1 ORDER BY created_at", ticket_id
            )
        finally:
            await conn.close()
