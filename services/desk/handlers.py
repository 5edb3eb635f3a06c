"""desk's edges: the events it consumes, the agent API and the learner's confirmation page."""

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import structlog
from fastapi import APIRouter, Depends, Form, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from uuid6 import uuid7

from services.desk import repo
from services.desk.domain import (
    Answer,
    Conflict,
    NotAllowed,
    Status,
    answer_outcome,
    check_may_see,
    check_may_work,
)
from services.desk.settings import DeskSettings
from shared import outbox
from shared.agents import Role, bearer_auth
from shared.events import (
    CloseReason,
    Envelope,
    ReopenReason,
    SurveyLowScore,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketQueued,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    TicketSubmitted,
    TicketTriaged,
    new_event,
    now,
)
from shared.inbox import Handler
from shared.service import Context, every

log = structlog.get_logger(__name__)
PRODUCER = "desk"

# ---- events -------------------------------------------------------------------------------


async def on_submitted(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    by_id = {e.data.ticket_id: e for e in events}
    created = await repo.insert_submitted(conn, [e.data for e in by_id.values()])
    out = []
    for row in created:
        cause = by_id[row["ticket_id"]]
        t: TicketSubmitted = cause.data
        out.append(
            new_event(
                TicketCreated(
                    ticket_id=t.ticket_id,
                    number=row["number"],
                    channel=t.channel,
                    learner=t.learner,
                    subject=t.subject,
                    description=t.description,
                    course_id=t.course_id,
                    language=t.language,
                    created_at=row["created_at"],
                ),
                producer=PRODUCER,
                cause=cause,
            )
        )
    await repo.add_history(
        conn, [(r["ticket_id"], "created", "learner", {"number": r["number"]}) for r in created]
    )
    await outbox.add(conn, out)


async def on_triaged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    items: list[TicketTriaged] = [e.data for e in events]
    await repo.apply_triage(conn, items)
    await repo.add_history(
        conn,
        [
            (t.ticket_id, "triaged", "routing", {"category": t.category, "priority": t.priority})
            for t in items
        ],
    )


async def on_queued(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    items: list[TicketQueued] = [e.data for e in events]
    await repo.apply_queued(conn, items)
    await repo.add_history(
        conn, [(t.ticket_id, "queued", "routing", {"team": t.team}) for t in items]
    )


async def on_assigned(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    items: list[TicketAssigned] = [e.data for e in events]
    await repo.apply_assigned(conn, items)
    await repo.add_history(
        conn, [(t.ticket_id, "assigned", "routing", {"agent_id": t.agent_id}) for t in items]
    )


async def on_low_score(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    for event in events:
        low: SurveyLowScore = event.data
        ticket = await repo.lock_ticket(conn, low.ticket_id)
        if ticket is None or ticket["status"] not in (Status.RESOLVED, Status.CLOSED):
            continue
        await _reopen(conn, ticket, reason=ReopenReason.LOW_SCORE, actor="survey", cause=event)


EVENT_HANDLERS: dict[str, Handler] = {
    TicketSubmitted.TYPE: on_submitted,
    TicketTriaged.TYPE: on_triaged,
    TicketQueued.TYPE: on_queued,
    TicketAssigned.TYPE: on_assigned,
    SurveyLowScore.TYPE: on_low_score,
}


# ---- use cases shared by the API and the consumers ----------------------------------------


async def _reopen(
    conn: asyncpg.Connection,
    ticket: asyncpg.Record,
    *,
    reason: ReopenReason,
    actor: str,
    cause: Envelope[Any] | None = None,
) -> None:
    needs_supervisor = reason is ReopenReason.LOW_SCORE
    await repo.set_status(
        conn,
        ticket["ticket_id"],
        Status.REOPENED,
        assignee_id=None,
        needs_supervisor=needs_supervisor,
        confirm_token=None,
    )
    await repo.add_history(conn, [(ticket["ticket_id"], "reopened", actor, {"reason": reason})])
    await outbox.add(
        conn,
        [
            new_event(
                TicketReopened(
                    ticket_id=ticket["ticket_id"],
                    number=ticket["number"],
                    reason=reason,
                    previous_agent_id=ticket["assignee_id"],
                    needs_supervisor=needs_supervisor,
                    reopened_at=now(),
                ),
                producer=PRODUCER,
                cause=cause,
            )
        ],
    )


async def _close(
    conn: asyncpg.Connection,
    tickets: Sequence[asyncpg.Record],
    *,
    reason: CloseReason,
    actor: str,
    closed_at: datetime,
) -> None:
    await repo.close_many(conn, [t["ticket_id"] for t in tickets], closed_at)
    await repo.add_history(
        conn, [(t["ticket_id"], "closed", actor, {"reason": reason}) for t in tickets]
    )
    await outbox.add(
        conn,
        [
            new_event(
                TicketClosed(
                    ticket_id=t["ticket_id"],
                    number=t["number"],
                    reason=reason,
                    created_at=t["created_at"],
                    closed_at=closed_at,
                ),
                producer=PRODUCER,
            )
            for t in tickets
        ],
    )


AUTO_CLOSE_BATCH = 500


async def auto_close(ctx: Context[DeskSettings]) -> None:
    """Close resolved tickets the learner left unanswered for `auto_close_days` (R7.2)."""
    settings = ctx.settings

    async def step() -> bool:
        async with ctx.pool.acquire() as conn, conn.transaction():
            closed_at = now()
            cutoff = closed_at - timedelta(days=settings.auto_close_days)
            due = await repo.resolved_before(conn, cutoff, AUTO_CLOSE_BATCH)
            await _close(
                conn, due, reason=CloseReason.AUTO_CLOSED, actor="system", closed_at=closed_at
            )
        return len(due) == AUTO_CLOSE_BATCH

    await every(settings.auto_close_interval_seconds, step, what="auto-close")


# ---- HTTP ---------------------------------------------------------------------------------


class Agent(BaseModel):
    agent_id: str
    name: str
    role: Role


class ReplyIn(BaseModel):
    body: str = Field(min_length=1, max_length=20_000)


class ResolveIn(BaseModel):
    resolution: str = Field(min_length=1, max_length=20_000)


class ConfirmIn(BaseModel):
    answer: Answer


def http_routes(ctx: Context[DeskSettings]) -> APIRouter:
    router = APIRouter()
    public_url = ctx.settings.public_url

    authenticated = bearer_auth(lambda: ctx.pool, repo.agent_by_token)

    async def current_agent(row: Annotated[asyncpg.Record, Depends(authenticated)]) -> Agent:
        return Agent(agent_id=row["agent_id"], name=row["name"], role=Role(row["role"]))

    CurrentAgent = Annotated[Agent, Depends(current_agent)]

    async def locked(conn: asyncpg.Connection, ticket_id: UUID) -> asyncpg.Record:
        ticket = await repo.lock_ticket(conn, ticket_id)
        if ticket is None:
            raise HTTPException(404, "no such ticket")
        return ticket

    def work_check(agent: Agent, ticket: asyncpg.Record) -> None:
        try:
            check_may_work(
                agent_id=agent.agent_id,
                role=agent.role,
                assignee_id=ticket["assignee_id"],
                status=Status(ticket["status"]),
            )
        except NotAllowed as exc:
            raise HTTPException(403, str(exc)) from exc
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from exc

    @router.get("/v1/agent/me", summary="Who the token belongs to")
    async def me(agent: CurrentAgent) -> Agent:
        return agent

    @router.get("/v1/agent/tickets", summary="The calling agent's tickets")
    async def my_tickets(
        agent: CurrentAgent,
        status: Annotated[list[Status] | None, Query()] = None,
        everyone: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        if everyone and agent.role is Role.AGENT:
            raise HTTPException(403, "only supervisors and admins see everyone's tickets")
        async with ctx.pool.acquire() as conn:
            rows = await repo.list_tickets(
                conn,
                assignee_id=None if everyone else agent.agent_id,
                statuses=[s.value for s in (status or [Status.ASSIGNED])],
                limit=limit,
            )
        return [dict(r) for r in rows]

    @router.get("/v1/tickets/{ticket_id}", summary="One ticket with its history")
    async def ticket_detail(ticket_id: UUID, agent: CurrentAgent) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            ticket = await repo.get_ticket(conn, ticket_id)
            if ticket is None:
                raise HTTPException(404, "no such ticket")
            try:
                check_may_see(
                    agent_id=agent.agent_id, role=agent.role, assignee_id=ticket["assignee_id"]
                )
            except NotAllowed as exc:
                raise HTTPException(403, str(exc)) from exc
            history = await repo.ticket_history(conn, ticket_id)
        detail = {k: v for k, v in dict(ticket).items() if k != "confirm_token"}
        return {**detail, "history": [dict(h) for h in history]}

    @router.post("/v1/tickets/{ticket_id}/replies", status_code=201, summary="Reply to the learner")
    async def reply(ticket_id: UUID, body: ReplyIn, agent: CurrentAgent) -> dict[str, Any]:
        reply_id = uuid7()
        async with ctx.pool.acquire() as conn, conn.transaction():
            ticket = await locked(conn, ticket_id)
            work_check(agent, ticket)
            replied_at, first = await repo.insert_reply(
                conn,
                reply_id=reply_id,
                ticket_id=ticket_id,
                agent_id=agent.agent_id,
                body=body.body,
            )
            await repo.add_history(
                conn, [(ticket_id, "replied", agent.agent_id, {"reply_id": str(reply_id)})]
            )
            await outbox.add(
                conn,
                [
                    new_event(
                        TicketReplied(
                            ticket_id=ticket_id,
                            number=ticket["number"],
                            reply_id=reply_id,
                            agent_id=agent.agent_id,
                            body=body.body,
                            first_response=first,
                            created_at=ticket["created_at"],
                            replied_at=replied_at,
                        ),
                        producer=PRODUCER,
                    )
                ],
            )
        return {"reply_id": reply_id, "first_response": first}

    @router.post(
        "/v1/tickets/{ticket_id}/resolve", summary="Resolve; the learner is asked to confirm"
    )
    async def resolve(ticket_id: UUID, body: ResolveIn, agent: CurrentAgent) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        async with ctx.pool.acquire() as conn, conn.transaction():
            ticket = await locked(conn, ticket_id)
            work_check(agent, ticket)
            resolved_at = now()
            await repo.set_status(
                conn,
                ticket_id,
                Status.RESOLVED,
                resolved_at=resolved_at,
                confirm_token=token,
                needs_supervisor=False,
            )
            await repo.add_history(
                conn, [(ticket_id, "resolved", agent.agent_id, {"resolution": body.resolution})]
            )
            await outbox.add(
                conn,
                [
                    new_event(
                        TicketResolved(
                            ticket_id=ticket_id,
                            number=ticket["number"],
                            agent_id=agent.agent_id,
                            resolution=body.resolution,
                            confirm_url=f"{public_url}/confirm/{token}",
                            created_at=ticket["created_at"],
                            resolved_at=resolved_at,
                        ),
                        producer=PRODUCER,
                    )
                ],
            )
        return {"ticket_id": ticket_id, "status": Status.RESOLVED}

    async def confirm(token: str, answer: Answer) -> Status:
        async with ctx.pool.acquire() as conn, conn.transaction():
            ticket = await repo.lock_by_confirm_token(conn, token)
            if ticket is None:
                raise HTTPException(404, "this link is no longer valid")
            try:
                outcome = answer_outcome(Status(ticket["status"]), answer)
            except Conflict as exc:
                raise HTTPException(409, str(exc)) from exc
            if outcome is Status.REOPENED:
                await _reopen(conn, ticket, reason=ReopenReason.NOT_SOLVED, actor="learner")
                return outcome
            await _close(
                conn, [ticket], reason=CloseReason.CONFIRMED, actor="learner", closed_at=now()
            )
            return outcome

    @router.get("/confirm/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def confirm_page(token: str) -> str:
        t = escape(token)
        return (
            "<!doctype html><meta charset=utf-8><title>careloop</title>"
            "<h1>Is your problem solved? 您的问题解决了吗？</h1>"
            f"<form method=post action='/confirm/{t}'>"
            "<button name=answer value=solved>Yes, solved 已解决</button> "
            "<button name=answer value=not_solved>No, not solved 未解决</button></form>"
        )

    @router.post("/confirm/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def confirm_form(token: str, answer: Annotated[Answer, Form()]) -> str:
        outcome = await confirm(token, answer)
        if outcome is Status.CLOSED:
            return "<!doctype html><meta charset=utf-8><p>Thank you! 感谢您的确认。</p>"
        return "<!doctype html><meta charset=utf-8><p>We are on it again. 我们会继续处理。</p>"

    @router.post("/v1/confirmations/{token}", summary="The learner's answer: solved or not")
    async def confirm_api(token: str, body: ConfirmIn) -> dict[str, Any]:
        return {"status": await confirm(token, body.answer)}

    return router
