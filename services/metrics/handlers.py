"""metrics' edges: every event updates the view; counters move only after it committed.

Most events change the view by their ticket's own key and count nothing, or count only what
their statement reports as new (a ticket triaged for the first time, a first response not
recorded before): applying one twice, or late after newer ones, is applying it once, so they
need no inbox row (`IDEMPOTENT`). The rest count once per event and keep the inbox's claim.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from services.metrics import exporter, repo
from services.metrics.domain import (
    STATUS_OF,
    SURVEY_DIMENSIONS,
    breached,
    first_contact,
    placed,
    reopenings,
)
from services.metrics.settings import MetricsSettings
from shared.events import (
    Envelope,
    NotificationFailed,
    NotificationSent,
    SlaBreached,
    SlaTarget,
    SurveyAnswered,
    SurveyLowScore,
    SurveyPeriodicAnswered,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketQueued,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    TicketRouted,
    TicketTriaged,
)
from shared.inbox import AfterCommit, Handler
from shared.service import Context, every

log = structlog.get_logger(__name__)


async def on_created(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.record_created(
        conn, [(e.data.ticket_id, e.data.channel, e.data.created_at, e.occurred_at) for e in events]
    )


async def on_routed(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit | None:
    """A new ticket's triage and placement; counted as created when first triaged."""
    placements = [(e, placed(e.data.agent_id)) for e in events]
    first = await repo.record_triage(
        conn, [_triage(e.data, status, e.occurred_at) for e, status in placements]
    )
    later = [
        (e.data.ticket_id, status, e.data.team, e.occurred_at)
        for e, status in placements
        if e.data.ticket_id not in first
    ]
    if later:  # triaged before (an old `ticket.triaged`): the placement still applies
        await repo.set_status(conn, later)
    return _first_triaged(events, first)


async def on_triaged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit | None:
    """An older record: the triage alone; its placement follows as assigned or queued."""
    first = await repo.record_triage(conn, [_triage(e.data, "new", None) for e in events])
    return _first_triaged(events, first)


def _first_triaged(
    events: list[Envelope[Any]], first: dict[UUID, asyncpg.Record]
) -> AfterCommit | None:
    """Count the tickets triaged for the first time as created, and observe the first
    responses that reached metrics before their triage did (desk's topic ran ahead)."""
    count = _count_created([e.data for e in events if e.data.ticket_id in first])
    waiting = [r for r in first.values() if r["first_response_seconds"] is not None]
    if not waiting:
        return count

    def both() -> None:
        if count:
            count()
        _observe_first_responses(waiting)

    return both


def _triage(
    t: TicketTriaged | TicketRouted, status: str, status_at: datetime | None
) -> tuple[Any, ...]:
    return (
        t.ticket_id,
        t.channel,
        t.category,
        t.priority,
        t.team,
        t.first_response_due_at,
        t.resolution_due_at,
        status,
        status_at,
    )


def _count_created(triaged: list[TicketTriaged | TicketRouted]) -> AfterCommit | None:
    if not triaged:
        return None

    def count() -> None:
        for t in triaged:
            exporter.TICKETS_CREATED.labels(t.channel, t.category, t.priority).inc()

    return count


async def on_placed(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """A later placement (reopened, drained from a queue, escalated), or an older record's."""
    await repo.set_status(
        conn, [(e.data.ticket_id, STATUS_OF[e.type], e.data.team, e.occurred_at) for e in events]
    )


async def _statuses(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.set_status(
        conn, [(e.data.ticket_id, STATUS_OF[e.type], None, e.occurred_at) for e in events]
    )


async def on_replied(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit | None:
    """A first response is observed under its ticket's priority; one that arrives before the
    ticket's triage is kept and observed when the triage comes (`_first_triaged`)."""
    first: list[TicketReplied] = [e.data for e in events if e.data.first_response]
    if not first:
        return None
    rows = await repo.record_first_responses(
        conn,
        [(r.ticket_id, r.replied_at, (r.replied_at - r.created_at).total_seconds()) for r in first],
    )
    ready = [r for r in rows if r["priority"] is not None]
    return (lambda: _observe_first_responses(ready)) if ready else None


def _observe_first_responses(rows: list[asyncpg.Record]) -> None:
    for row in rows:
        exporter.FIRST_RESPONSE.labels(row["priority"]).observe(row["first_response_seconds"])
        if breached(row["first_response_due_at"], row["first_responded_at"]):
            exporter.SLA_BREACHES.labels(row["priority"]).inc()


async def on_resolved(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    """Each resolution counted by category, priority, team and agent, and as a breach when
    routing had raised a resolution breach for the ticket since it was last opened."""
    await _statuses(conn, events)
    items: list[TicketResolved] = [e.data for e in events]
    known = await repo.record_resolutions(
        conn, [(t.ticket_id, t.agent_id, t.resolved_at) for t in items]
    )

    def observe() -> None:
        for t in items:
            row = known[t.ticket_id]
            priority = row["priority"]
            elapsed = (t.resolved_at - t.created_at).total_seconds()
            exporter.RESOLUTION.labels(priority).observe(elapsed)
            exporter.RESOLVED.labels(row["category"], priority, row["team"]).inc()
            exporter.AGENT_RESOLVED.labels(t.agent_id, row["team"]).inc()
            if row["breached"]:
                exporter.RESOLUTION_BREACHES.labels(priority).inc()

    return observe


async def on_reopened(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    await _statuses(conn, events)
    items: list[TicketReopened] = [e.data for e in events]
    await repo.record_reopens(conn, reopenings([(t.ticket_id, t.reopened_at) for t in items]))

    def count() -> None:
        for t in items:
            exporter.REOPENED.labels(t.reason).inc()

    return count


async def on_closed(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    """Each closing by reason, and by category and whether the ticket was never reopened."""
    await _statuses(conn, events)
    items: list[TicketClosed] = [e.data for e in events]
    known = await repo.closures(conn, [t.ticket_id for t in items])

    def count() -> None:
        for t in items:
            exporter.CLOSED.labels(t.reason).inc()
            row = known[t.ticket_id]
            exporter.CLOSED_BY_CATEGORY.labels(row["category"], first_contact(row["reopens"])).inc()

    return count


async def on_sla_breached(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """A resolution breach raised to a supervisor marks the ticket's resolution as late."""
    breaches: list[SlaBreached] = [
        e.data for e in events if e.data.target is SlaTarget.RESOLUTION and e.data.level == 1
    ]
    if breaches:
        await repo.record_resolution_breaches(
            conn, [(b.ticket_id, b.breached_at) for b in breaches]
        )


async def on_answered(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    """Scores by dimension, and by the agent who resolved the ticket where metrics knows them."""
    answers: list[SurveyAnswered] = [e.data for e in events]
    agents = await repo.resolvers(conn, [a.ticket_id for a in answers])

    def observe() -> None:
        for a in answers:
            agent = agents.get(a.ticket_id)
            for dimension in SURVEY_DIMENSIONS:
                score = getattr(a, dimension)
                exporter.SURVEY_SCORE.labels(dimension).observe(score)
                if agent is not None:
                    exporter.AGENT_SURVEY_SCORE.labels(agent, dimension).observe(score)

    return observe


# A periodic survey's scores (R9.3): its service scores apart from the post-resolution ones
# (a learner's view of the service in general, not of one ticket), and the course and teaching
# dimensions of 002 §五.2.
PERIODIC_DIMENSIONS = {
    **{d: f"periodic_{d}" for d in SURVEY_DIMENSIONS},
    "teacher_level": "teacher_level",
    "teaching_method": "teaching_method",
    "teaching_attitude": "teaching_attitude",
}
COURSE_DIMENSIONS = ("usefulness", "difficulty", "structure")


async def on_periodic_answered(_: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    """A periodic survey's scores, each course's under `course_<dimension>`."""
    answers: list[SurveyPeriodicAnswered] = [e.data for e in events]

    def observe() -> None:
        for a in answers:
            for field, dimension in PERIODIC_DIMENSIONS.items():
                exporter.SURVEY_SCORE.labels(dimension).observe(getattr(a, field))
            for course in a.courses:
                for d in COURSE_DIMENSIONS:
                    exporter.SURVEY_SCORE.labels(f"course_{d}").observe(getattr(course, d))

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
    TicketRouted.TYPE: on_routed,
    TicketTriaged.TYPE: on_triaged,
    TicketQueued.TYPE: on_placed,
    TicketAssigned.TYPE: on_placed,
    TicketReplied.TYPE: on_replied,
    SlaBreached.TYPE: on_sla_breached,  # before resolutions: a breach in the same batch counts
    TicketResolved.TYPE: on_resolved,
    TicketReopened.TYPE: on_reopened,
    TicketClosed.TYPE: on_closed,
    SurveyAnswered.TYPE: on_answered,
    SurveyPeriodicAnswered.TYPE: on_periodic_answered,
    SurveyLowScore.TYPE: on_low_score,
    NotificationSent.TYPE: on_notification,
    NotificationFailed.TYPE: on_notification,
}

# Applied by the ticket's own key (repo): a repeat or a stale copy writes and counts nothing.
# The others count every event (a resolution, a reason, a score, a delivery); their claim in
# the inbox costs what a key of their own would, and the inbox is pruned.
IDEMPOTENT = frozenset(
    {
        TicketCreated.TYPE,
        TicketRouted.TYPE,
        TicketTriaged.TYPE,
        TicketQueued.TYPE,
        TicketAssigned.TYPE,
        TicketReplied.TYPE,
        SlaBreached.TYPE,
    }
)


async def refresh_gauges(ctx: Context[MetricsSettings]) -> None:
    """Backlog, its oldest ticket and overdue gauges are state, recomputed from the view
    rather than counted."""

    async def step() -> bool:
        async with ctx.pool.acquire() as conn:
            await refresh_once(conn)
        return False

    await every(ctx.settings.refresh_seconds, step, what="gauge refresh")


async def refresh_once(conn: asyncpg.Connection) -> None:
    backlog = await repo.open_backlog(conn)
    overdue = await repo.overdue(conn)
    oldest = await repo.oldest_open(conn)
    exporter.OPEN.clear()
    for r in backlog:
        exporter.OPEN.labels(r["status"], r["team"]).set(r["n"])
    exporter.FIRST_RESPONSE_OVERDUE.clear()
    exporter.RESOLUTION_OVERDUE.clear()
    for r in overdue:
        exporter.FIRST_RESPONSE_OVERDUE.labels(r["priority"]).set(r["first_response"])
        exporter.RESOLUTION_OVERDUE.labels(r["priority"]).set(r["resolution"])
    exporter.BACKLOG_OLDEST.clear()
    for r in oldest:
        exporter.BACKLOG_OLDEST.labels(r["team"]).set(r["seconds"])
