"""The reports' facts, kept from the events metrics already consumes.

`with_facts` adds these handlers to metrics' own, in the same batch transaction: every one is
idempotent by its own key (a ticket, a reopening's time, a survey), so it is right under the
inbox's claim and without it alike.
"""

import hashlib
from collections.abc import Mapping
from typing import Any

import asyncpg

from services.metrics.reports import repo
from shared.events import (
    CallbackRecorded,
    Envelope,
    SurveyAnswered,
    SurveyPeriodicAnswered,
    TicketClosed,
    TicketCreated,
    TicketReopened,
    TicketResolved,
    TicketRouted,
    TicketTriaged,
)
from shared.inbox import AfterCommit, Handler


def learner_key(created: TicketCreated) -> str | None:
    """Who raised the ticket, as a hash: repeat problems are counted per learner, and the
    reports' tables hold no contact. The LMS id when known, else the first contact given."""
    learner = created.learner
    ident = (
        (created.learner_context.learner_id if created.learner_context else None)
        or learner.learner_id
        or learner.email
        or learner.phone
        or learner.wechat_openid
        or learner.weibo_uid
    )
    if ident is None:
        return None
    return hashlib.sha256(ident.strip().lower().encode()).hexdigest()[:32]


def line_of(course_id: str) -> str | None:
    """The course line (routing's skills' word): a course id's prefix before a dash, `PY` of
    `PY-101`."""
    return course_id.strip().upper().split("-", 1)[0][:32] or None


def course_line(created: TicketCreated) -> str | None:
    """The ticket's course line: of its own course, else of the learner's first course the LMS
    lists."""
    course = created.course_id
    if course is None and created.learner_context and created.learner_context.courses:
        course = created.learner_context.courses[0].course_id
    return line_of(course) if course else None


async def on_created(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    rows = []
    for e in events:
        t: TicketCreated = e.data
        tier = t.learner_context.tier if t.learner_context else None
        rows.append((t.ticket_id, learner_key(t), tier, course_line(t), t.subject[:200]))
    await repo.record_origins(conn, rows)


async def on_triaged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    triaged: list[TicketRouted | TicketTriaged] = [e.data for e in events]
    await repo.record_resolution_due(conn, [(t.ticket_id, t.resolution_due_at) for t in triaged])


async def on_resolved(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    resolved: list[TicketResolved] = [e.data for e in events]
    await repo.record_resolutions(conn, [(t.ticket_id, t.resolved_at) for t in resolved])


async def on_reopened(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    reopened: list[TicketReopened] = [e.data for e in events]
    await repo.record_reopens(conn, [(t.ticket_id, t.reopened_at) for t in reopened])


async def on_closed(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    closed: list[TicketClosed] = [e.data for e in events]
    await repo.record_closes(conn, [(t.ticket_id, t.closed_at) for t in closed])


async def on_answered(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    answers: list[SurveyAnswered] = [e.data for e in events]
    await repo.record_surveys(
        conn,
        [
            (
                a.survey_id,
                a.ticket_id,
                a.overall,
                a.response_speed,
                a.problem_solving,
                a.attitude,
                a.answered_at,
            )
            for a in answers
        ],
    )


async def on_periodic_answered(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    answers: list[SurveyPeriodicAnswered] = [e.data for e in events]
    await repo.record_periodic(
        conn,
        [
            (
                a.survey_id,
                a.overall,
                a.response_speed,
                a.problem_solving,
                a.attitude,
                a.teacher_level,
                a.teaching_method,
                a.teaching_attitude,
                a.answered_at,
            )
            for a in answers
        ],
        [
            (
                a.survey_id,
                c.course_id,
                line_of(c.course_id) or c.course_id,
                c.usefulness,
                c.difficulty,
                c.structure,
                a.answered_at,
            )
            for a in answers
            for c in a.courses
        ],
    )


async def on_callback(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    calls: list[CallbackRecorded] = [e.data for e in events]
    await repo.record_callbacks(
        conn, [(c.ticket_id, c.recorded_at, c.reason, c.reached, c.score) for c in calls]
    )


HANDLERS: dict[str, Handler] = {
    TicketCreated.TYPE: on_created,
    TicketRouted.TYPE: on_triaged,
    TicketTriaged.TYPE: on_triaged,
    TicketResolved.TYPE: on_resolved,
    TicketReopened.TYPE: on_reopened,
    TicketClosed.TYPE: on_closed,
    SurveyAnswered.TYPE: on_answered,
    SurveyPeriodicAnswered.TYPE: on_periodic_answered,
    CallbackRecorded.TYPE: on_callback,
}


def both(first: Handler, second: Handler) -> Handler:
    """`first` then `second` on the same batch and transaction; both after-commit actions."""

    async def handle(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit | None:
        after = [a for a in (await first(conn, events), await second(conn, events)) if a]
        if not after:
            return None

        async def run() -> None:
            for action in after:
                result = action()
                if result is not None:
                    await result

        return run

    return handle


def with_facts(handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    """metrics' `handlers`, each event type the reports read also keeping its facts; the
    order (which `app.by_type` ranks by) is metrics' own."""
    joined = {t: both(h, HANDLERS[t]) if t in HANDLERS else h for t, h in handlers.items()}
    return joined | {t: h for t, h in HANDLERS.items() if t not in joined}
