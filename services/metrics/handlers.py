"""metrics' edges: every event updates the view; counters move only after it committed."""

from typing import Any

import asyncpg
import structlog
from prometheus_client import Counter

from services.metrics import exporter, repo
from services.metrics.domain import STATUS_OF, breached
from services.metrics.settings import MetricsSettings
from shared.events import (
    Envelope,
    NotificationFailed,
    NotificationSent,
    SurveyAnswered,
    SurveyLowScore,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketQueued,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    TicketTriaged,
)
from shared.inbox import AfterCommit, Handler
from shared.service import Context, every

log = structlog.get_logger(__name__)


def _facts(ticket_id: Any, **fields: Any) -> dict[str, Any]:
    return {"ticket_id": str(ticket_id), **{k: v for k, v in fields.items() if v is not None}}


async def on_created(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.upsert_facts(
        conn,
        [
            _facts(
                e.data.ticket_id, channel=e.data.channel, created_at=e.data.created_at.isoformat()
            )
            for e in events
        ],
    )
    await _statuses(conn, events)


async def on_triaged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    items: list[TicketTriaged] = [e.data for e in events]
    await repo.upsert_facts(
        conn,
        [
            _facts(
                t.ticket_id,
                channel=t.channel,
                category=t.category,
                priority=t.priority,
                team=t.team,
                first_response_due_at=t.first_response_due_at.isoformat(),
            )
            for t in items
        ],
    )

    def count() -> None:
        for t in items:
            exporter.TICKETS_CREATED.labels(t.channel, t.category, t.priority).inc()

    return count


async def _statuses(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.set_status(
        conn,
        [
            {
                "ticket_id": str(e.data.ticket_id),
                "status": STATUS_OF[e.type],
                "status_at": e.occurred_at.isoformat(),
            }
            for e in events
        ],
    )


async def on_status(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.upsert_facts(conn, [_facts(e.data.ticket_id, team=e.data.team) for e in events])
    await _statuses(conn, events)


async def on_replied(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit | None:
    first: list[TicketReplied] = [e.data for e in events if e.data.first_response]
    if not first:
        return None
    rows = await repo.record_first_responses(
        conn,
        [{"ticket_id": str(r.ticket_id), "replied_at": r.replied_at.isoformat()} for r in first],
    )
    known = {r["ticket_id"]: r for r in rows}

    def observe() -> None:
        for reply in first:
            row = known[reply.ticket_id]
            priority = row["priority"] or "unknown"
            elapsed = (reply.replied_at - reply.created_at).total_seconds()
            exporter.FIRST_RESPONSE.labels(priority).observe(elapsed)
            if breached(row["first_response_due_at"], reply.replied_at):
                exporter.SLA_BREACHES.labels(priority).inc()

    return observe


async def on_resolved(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    await _statuses(conn, events)
    items: list[TicketResolved] = [e.data for e in events]
    priority = await repo.priorities(conn, [t.ticket_id for t in items])

    def observe() -> None:
        for t in items:
            elapsed = (t.resolved_at - t.created_at).total_seconds()
            exporter.RESOLUTION.labels(priority.get(t.ticket_id) or "unknown").observe(elapsed)

    return observe


def _counted_by_reason(counter: Counter) -> Handler:
    """A status change that also counts the tickets by the event's reason."""

    async def handle(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
        await _statuses(conn, events)
        reasons = [e.data.reason for e in events]

        def count() -> None:
            for r in reasons:
                counter.labels(r).inc()

        return count

    return handle


on_reopened = _counted_by_reason(exporter.REOPENED)
on_closed = _counted_by_reason(exporter.CLOSED)


async def on_answered(_: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    answers: list[SurveyAnswered] = [e.data for e in events]

    def observe() -> None:
        for a in answers:
            for dimension in ("overall", "response_speed", "problem_solving", "attitude"):
                exporter.SURVEY_SCORE.labels(dimension).observe(getattr(a, dimension))

    return observe


async def on_low_score(_: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    def count() -> None:
        exporter.SURVEY_LOW.inc(len(events))

    return count


async def on_notification(_: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    outcomes = [
        (e.data.kind, "sent" if e.type == NotificationSent.TYPE else "failed") for e in events
    ]

    def count() -> None:
        for kind, outcome in outcomes:
            exporter.NOTIFICATIONS.labels(kind, outcome).inc()

    return count


EVENT_HANDLERS: dict[str, Handler] = {
    TicketCreated.TYPE: on_created,
    TicketTriaged.TYPE: on_triaged,
    TicketQueued.TYPE: on_status,
    TicketAssigned.TYPE: on_status,
    TicketReplied.TYPE: on_replied,
    TicketResolved.TYPE: on_resolved,
    TicketReopened.TYPE: on_reopened,
    TicketClosed.TYPE: on_closed,
    SurveyAnswered.TYPE: on_answered,
    SurveyLowScore.TYPE: on_low_score,
    NotificationSent.TYPE: on_notification,
    NotificationFailed.TYPE: on_notification,
}


async def refresh_gauges(ctx: Context[MetricsSettings]) -> None:
    """Backlog and overdue gauges are state, recomputed from the view rather than counted."""

    async def step() -> bool:
        async with ctx.pool.acquire() as conn:
            backlog = await repo.open_backlog(conn)
            overdue = await repo.overdue_first_responses(conn)
        exporter.OPEN.clear()
        for r in backlog:
            exporter.OPEN.labels(r["status"], r["team"]).set(r["n"])
        exporter.FIRST_RESPONSE_OVERDUE.clear()
        for r in overdue:
            exporter.FIRST_RESPONSE_OVERDUE.labels(r["priority"]).set(r["n"])
        return False

    await every(ctx.settings.refresh_seconds, step, what="gauge refresh")
