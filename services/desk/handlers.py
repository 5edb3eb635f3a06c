"""desk's use cases: the events it consumes, and what the agent API and the learner's pages do."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from uuid6 import uuid7

from services.desk import repo
from services.desk.domain import (
    Answer,
    Caller,
    LowScore,
    NotFound,
    Status,
    answer_outcome,
    check_may_see,
    check_may_work,
    low_score_outcome,
)
from services.desk.settings import DeskSettings
from shared import outbox, tokens
from shared.events import (
    CloseReason,
    Envelope,
    EscalationReason,
    ReopenReason,
    SurveyLowScore,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketEscalated,
    TicketQueued,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    TicketRouted,
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
    """Create each ticket once and announce it; a submission seen again (redelivered, or
    published again by intake) finds its ticket and does nothing, so it needs no inbox row."""
    by_id = {e.data.ticket_id: e for e in events}
    created = await repo.create_tickets(conn, [e.data for e in by_id.values()])
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
    await outbox.add(conn, out)


async def on_routed(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """A new ticket's triage and placement; only a ticket still new takes it (repo), so it
    needs no inbox row."""
    await repo.apply_routed(conn, [e.data for e in events])


async def on_triaged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.apply_triage(conn, [e.data for e in events])


async def on_queued(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.apply_queued(conn, [e.data for e in events])


async def on_assigned(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.apply_assigned(conn, [e.data for e in events])


async def on_low_score(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """A low score reaches a supervisor whatever the ticket's state (domain.low_score_outcome)."""
    for event in events:
        low: SurveyLowScore = event.data
        ticket = await repo.lock_ticket(conn, low.ticket_id)
        if ticket is None:
            log.warning("low score for a ticket desk does not know", ticket_id=str(low.ticket_id))
            continue
        outcome = low_score_outcome(
            Status(ticket["status"]), needs_supervisor=ticket["needs_supervisor"]
        )
        if outcome is LowScore.REOPEN:
            await _reopen(conn, ticket, reason=ReopenReason.LOW_SCORE, actor="survey", cause=event)
        elif outcome is LowScore.ESCALATE:
            await _escalate(conn, ticket, low=low, cause=event)
        else:
            await repo.add_history(conn, [(low.ticket_id, "low_score", "survey", _score(low))])


def _score(low: SurveyLowScore) -> dict[str, Any]:
    return {"survey_id": str(low.survey_id), "overall": low.overall}


EVENT_HANDLERS: dict[str, Handler] = {
    TicketSubmitted.TYPE: on_submitted,
    TicketRouted.TYPE: on_routed,
    TicketTriaged.TYPE: on_triaged,
    TicketQueued.TYPE: on_queued,
    TicketAssigned.TYPE: on_assigned,
    SurveyLowScore.TYPE: on_low_score,
}

# Types applied without an inbox row, each idempotent by its ticket (see its handler). A
# re-placement (`ticket.assigned`, `ticket.queued`) is not: telling a stale copy from a newer
# placement would take routing's clocks agreeing, so those are claimed by event id.
IDEMPOTENT = (TicketSubmitted.TYPE, TicketRouted.TYPE)


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
        confirm_token_sha256=None,
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


async def _escalate(
    conn: asyncpg.Connection,
    ticket: asyncpg.Record,
    *,
    low: SurveyLowScore,
    cause: Envelope[Any],
) -> None:
    """An open ticket goes to a supervisor: routing moves it, desk follows routing's events."""
    await repo.mark_needs_supervisor(conn, ticket["ticket_id"])
    await repo.add_history(
        conn,
        [
            (
                ticket["ticket_id"],
                "escalated",
                "survey",
                {"reason": EscalationReason.LOW_SCORE, **_score(low)},
            )
        ],
    )
    await outbox.add(
        conn,
        [
            new_event(
                TicketEscalated(
                    ticket_id=ticket["ticket_id"],
                    number=ticket["number"],
                    reason=EscalationReason.LOW_SCORE,
                    assignee_id=ticket["assignee_id"],
                    escalated_at=now(),
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


# ---- the agent API and the learner's answer -----------------------------------------------


async def _locked(conn: asyncpg.Connection, ticket_id: UUID) -> asyncpg.Record:
    ticket = await repo.lock_ticket(conn, ticket_id)
    if ticket is None:
        raise NotFound("no such ticket")
    return ticket


def _check_work(agent: Caller, ticket: asyncpg.Record) -> None:
    check_may_work(
        agent_id=agent.agent_id,
        role=agent.role,
        assignee_id=ticket["assignee_id"],
        status=Status(ticket["status"]),
    )


async def ticket_with_history(
    conn: asyncpg.Connection, ticket_id: UUID, agent: Caller
) -> dict[str, Any]:
    """One ticket and its history, if `agent` may see it."""
    ticket = await repo.get_ticket(conn, ticket_id)
    if ticket is None:
        raise NotFound("no such ticket")
    check_may_see(agent_id=agent.agent_id, role=agent.role, assignee_id=ticket["assignee_id"])
    history = await repo.ticket_history(conn, ticket_id)
    detail = {k: v for k, v in dict(ticket).items() if k != "confirm_token_sha256"}
    return {**detail, "history": [dict(h) for h in history]}


async def reply(
    conn: asyncpg.Connection, *, ticket_id: UUID, agent: Caller, body: str
) -> tuple[UUID, bool]:
    """Store an agent's reply and tell the learner; returns its id and whether it came first."""
    reply_id = uuid7()
    ticket = await _locked(conn, ticket_id)
    _check_work(agent, ticket)
    replied_at, first = await repo.insert_reply(
        conn, reply_id=reply_id, ticket_id=ticket_id, agent_id=agent.agent_id, body=body
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
                    body=body,
                    first_response=first,
                    created_at=ticket["created_at"],
                    replied_at=replied_at,
                ),
                producer=PRODUCER,
            )
        ],
    )
    return reply_id, first


async def resolve(
    conn: asyncpg.Connection, *, ticket_id: UUID, agent: Caller, resolution: str, public_url: str
) -> None:
    """Resolve; the learner is e-mailed a link to confirm, whose token only the link keeps."""
    token = tokens.new_token()
    ticket = await _locked(conn, ticket_id)
    _check_work(agent, ticket)
    resolved_at = now()
    await repo.set_status(
        conn,
        ticket_id,
        Status.RESOLVED,
        resolved_at=resolved_at,
        confirm_token_sha256=tokens.digest(token),
        needs_supervisor=False,
    )
    await repo.add_history(
        conn, [(ticket_id, "resolved", agent.agent_id, {"resolution": resolution})]
    )
    await outbox.add(
        conn,
        [
            new_event(
                TicketResolved(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    agent_id=agent.agent_id,
                    resolution=resolution,
                    confirm_url=f"{public_url}/confirm/{token}",
                    created_at=ticket["created_at"],
                    resolved_at=resolved_at,
                ),
                producer=PRODUCER,
            )
        ],
    )


async def confirm(conn: asyncpg.Connection, *, token: str, answer: Answer) -> Status:
    """The learner's answer to "is it solved?": closes or reopens; NotFound, Conflict."""
    ticket = await repo.lock_by_confirm_token(conn, tokens.digest(token))
    if ticket is None:
        raise NotFound("this link is no longer valid")
    outcome = answer_outcome(Status(ticket["status"]), answer)
    if outcome is Status.REOPENED:
        await _reopen(conn, ticket, reason=ReopenReason.NOT_SOLVED, actor="learner")
    else:
        await _close(conn, [ticket], reason=CloseReason.CONFIRMED, actor="learner", closed_at=now())
    return outcome


async def awaits_answer(conn: asyncpg.Connection, token: str) -> None:
    """Raise NotFound unless a resolved ticket waits for the learner's answer on this link."""
    ticket = await repo.by_confirm_token(conn, tokens.digest(token))
    if ticket is None or ticket["status"] != Status.RESOLVED:
        raise NotFound("this link is no longer valid")
