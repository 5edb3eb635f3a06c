"""SQL for complaint cases, their notes, remedies and approvals; never commits."""

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from services.desk.settings import Retry

CASE_FIELDS = ("department", "responsible", "teacher_id", "course_id", "order_id", "order_value")


async def insert_case(
    conn: asyncpg.Connection, *, case_id: UUID, ticket_id: UUID, opened_by: str, **fields: Any
) -> asyncpg.Record | None:
    """The ticket's case, or None when it has one already."""
    return await conn.fetchrow(
        """
        INSERT INTO cases (case_id, ticket_id, opened_by, department, responsible, teacher_id,
                           course_id, order_id, order_value)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (ticket_id) DO NOTHING
        RETURNING *
        """,
        case_id,
        ticket_id,
        opened_by,
        *(fields.get(f) for f in CASE_FIELDS),
    )


async def get_case(conn: asyncpg.Connection, case_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM cases WHERE case_id = $1", case_id)


async def lock_case(conn: asyncpg.Connection, case_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM cases WHERE case_id = $1 FOR UPDATE", case_id)


async def case_of_ticket(conn: asyncpg.Connection, ticket_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM cases WHERE ticket_id = $1", ticket_id)


async def update_case(conn: asyncpg.Connection, case_id: UUID, changes: dict[str, Any]) -> None:
    """Set the given investigation fields (names from CASE_FIELDS and the finding's)."""
    allowed = {*CASE_FIELDS, "finding", "finding_summary"}
    if unknown := set(changes) - allowed:
        raise ValueError(f"not case fields: {sorted(unknown)}")
    columns = list(changes)
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    await conn.execute(
        f"UPDATE cases SET {sets}, updated_at = now() WHERE case_id = $1",
        case_id,
        *(changes[c] for c in columns),
    )


async def close_case(
    conn: asyncpg.Connection,
    *,
    case_id: UUID,
    by: str,
    outcome: str,
    closed_at: datetime,
    callback_due_at: datetime,
) -> None:
    await conn.execute(
        """
        UPDATE cases SET status = 'closed', outcome = $2, closed_by = $3, closed_at = $4,
            archived_at = $4, callback_due_at = $5, updated_at = $4
        WHERE case_id = $1
        """,
        case_id,
        outcome,
        by,
        closed_at,
        callback_due_at,
    )


async def list_cases(
    conn: asyncpg.Connection, *, assignee_id: str | None, archived: bool, limit: int
) -> list[asyncpg.Record]:
    """Open (or archived) cases, newest first; only those on `assignee_id`'s tickets if given."""
    return await conn.fetch(
        """
        SELECT c.case_id, c.ticket_id, t.number, t.subject, t.assignee_id, c.status, c.finding,
               c.department, c.responsible, c.opened_at, c.closed_at
        FROM cases c JOIN tickets t USING (ticket_id)
        WHERE (c.archived_at IS NOT NULL) = $1 AND ($2::text IS NULL OR t.assignee_id = $2)
        ORDER BY c.opened_at DESC
        LIMIT $3
        """,
        archived,
        assignee_id,
        limit,
    )


async def add_note(
    conn: asyncpg.Connection, *, note_id: UUID, case_id: UUID, agent_id: str, body: str
) -> datetime:
    at: datetime = await conn.fetchval(
        "INSERT INTO case_notes (note_id, case_id, agent_id, body) VALUES ($1, $2, $3, $4) "
        "RETURNING created_at",
        note_id,
        case_id,
        agent_id,
        body,
    )
    await conn.execute("UPDATE cases SET updated_at = now() WHERE case_id = $1", case_id)
    return at


async def notes(conn: asyncpg.Connection, case_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT note_id, agent_id, body, created_at FROM case_notes WHERE case_id = $1 "
        "ORDER BY created_at, note_id",
        case_id,
    )


async def insert_remedy(
    conn: asyncpg.Connection,
    *,
    remedy_id: UUID,
    case_id: UUID,
    ticket_id: UUID,
    line: dict[str, Any],
    approvals_needed: int,
    status: str,
    proposed_by: str,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        """
        INSERT INTO remedies (remedy_id, case_id, ticket_id, type, amount, currency, days,
                              lessons, points, course_id, description, approvals_needed,
                              status, proposed_by, approved_at, requested_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                CASE WHEN $13 <> 'proposed' THEN now() END,
                CASE WHEN $13 = 'requested' THEN now() END)
        RETURNING *
        """,
        remedy_id,
        case_id,
        ticket_id,
        line["type"],
        line.get("amount"),
        line.get("currency"),
        line.get("days"),
        line.get("lessons"),
        line.get("points"),
        line.get("course_id"),
        line.get("description"),
        approvals_needed,
        status,
        proposed_by,
    )
    return row


async def lock_remedy(conn: asyncpg.Connection, remedy_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM remedies WHERE remedy_id = $1 FOR UPDATE", remedy_id)


async def lock_remedies(
    conn: asyncpg.Connection, remedy_ids: Sequence[UUID]
) -> list[asyncpg.Record]:
    """Those of `remedy_ids` desk issued, locked, in one round trip (a batch of answers)."""
    return await conn.fetch(
        "SELECT * FROM remedies WHERE remedy_id = ANY($1::uuid[]) ORDER BY remedy_id FOR UPDATE",
        list(remedy_ids),
    )


async def remedies(conn: asyncpg.Connection, case_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM remedies WHERE case_id = $1 ORDER BY proposed_at, remedy_id", case_id
    )


async def approvals(conn: asyncpg.Connection, remedy_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM remedy_approvals WHERE remedy_id = ANY($1::uuid[]) ORDER BY at",
        list(remedy_ids),
    )


async def decide(
    conn: asyncpg.Connection, *, remedy_id: UUID, approver_id: str, decision: str, note: str | None
) -> int:
    """Record the approver's decision; returns how many approvals the remedy has now."""
    await conn.execute(
        "INSERT INTO remedy_approvals (remedy_id, approver_id, decision, note) "
        "VALUES ($1, $2, $3, $4)",
        remedy_id,
        approver_id,
        decision,
        note,
    )
    count: int = await conn.fetchval(
        "SELECT count(*) FROM remedy_approvals WHERE remedy_id = $1 AND decision = 'approved'",
        remedy_id,
    )
    return count


async def set_remedy_status(conn: asyncpg.Connection, remedy_id: UUID, status: str) -> None:
    await conn.execute(
        """
        UPDATE remedies SET status = $2,
            approved_at = CASE WHEN $2 IN ('requested', 'done') THEN now() ELSE approved_at END,
            requested_at = CASE WHEN $2 = 'requested' THEN now() ELSE requested_at END
        WHERE remedy_id = $1
        """,
        remedy_id,
        status,
    )


async def refunded(conn: asyncpg.Connection, case_id: UUID, statuses: Iterable[str]) -> Decimal:
    """The case's refunds in `statuses`, summed."""
    total: Decimal = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM remedies"
        " WHERE case_id = $1 AND type = 'refund' AND status = ANY($2::text[])",
        case_id,
        list(statuses),
    )
    return total


async def undecided(conn: asyncpg.Connection, case_id: UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM remedies WHERE case_id = $1 AND status = 'proposed'", case_id
    )
    return count


async def answer(
    conn: asyncpg.Connection,
    *,
    remedy_id: UUID,
    status: str,
    system: str,
    reference: str | None,
    reason: str | None,
    at: datetime,
) -> None:
    await conn.execute(
        """
        UPDATE remedies SET status = $2, answer_system = $3, answer_reference = $4,
            answer_reason = $5, answered_at = $6
        WHERE remedy_id = $1
        """,
        remedy_id,
        status,
        system,
        reference,
        reason,
        at,
    )


async def overdue(
    conn: asyncpg.Connection, *, before: datetime, assignee_id: str | None, limit: int
) -> list[asyncpg.Record]:
    """Requested remedies no system answered since before `before`, oldest first."""
    return await conn.fetch(
        """
        SELECT r.remedy_id, r.case_id, r.ticket_id, t.number, r.type, r.amount, r.currency,
               r.days, r.lessons, r.points, r.course_id, r.requested_at, t.assignee_id
        FROM remedies r JOIN tickets t USING (ticket_id)
        WHERE r.status = 'requested' AND r.requested_at < $1
          AND ($2::text IS NULL OR t.assignee_id = $2)
        ORDER BY r.requested_at
        LIMIT $3
        """,
        before,
        assignee_id,
        limit,
    )


async def pending(
    conn: asyncpg.Connection, *, approver_id: str, limit: int
) -> list[asyncpg.Record]:
    """Proposed remedies `approver_id` did not propose and has not decided, oldest first."""
    return await conn.fetch(
        """
        SELECT r.remedy_id, r.case_id, r.ticket_id, t.number, r.type, r.amount, r.currency,
               r.days, r.lessons, r.points, r.course_id, r.description, r.approvals_needed,
               r.proposed_by, r.proposed_at,
               (SELECT count(*) FROM remedy_approvals a
                WHERE a.remedy_id = r.remedy_id AND a.decision = 'approved') AS approvals
        FROM remedies r JOIN tickets t USING (ticket_id)
        WHERE r.status = 'proposed' AND r.proposed_by <> $1
          AND NOT EXISTS (SELECT 1 FROM remedy_approvals a
                          WHERE a.remedy_id = r.remedy_id AND a.approver_id = $1)
        ORDER BY r.proposed_at
        LIMIT $2
        """,
        approver_id,
        limit,
    )


async def overdue_counts(conn: asyncpg.Connection, before: datetime) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT type, count(*) AS n FROM remedies "
        "WHERE status = 'requested' AND requested_at < $1 GROUP BY type",
        before,
    )
    return {r["type"]: r["n"] for r in rows}


async def raise_callbacks(
    conn: asyncpg.Connection, at: datetime, limit: int
) -> list[asyncpg.Record]:
    """Mark the call-backs that fell due as raised, once each; returns them."""
    return await conn.fetch(
        """
        UPDATE cases SET callback_raised_at = $1
        WHERE case_id IN (
            SELECT case_id FROM cases
            WHERE callback_due_at <= $1 AND callback_raised_at IS NULL
            ORDER BY callback_due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING case_id, ticket_id, callback_due_at
        """,
        at,
        limit,
    )


async def callbacks(
    conn: asyncpg.Connection, *, assignee_id: str | None, limit: int
) -> list[asyncpg.Record]:
    """Call-backs due that nobody has made yet (or that did not reach the learner and are due
    again), cases' and closed tickets', the longest due first, with the calls made so far."""
    return await conn.fetch(
        """
        SELECT * FROM (
            SELECT 'case' AS reason, c.case_id, c.ticket_id, t.number, t.subject,
                   t.assignee_id, c.finding, c.closed_at, c.callback_due_at, t.learner,
                   c.callback_attempts AS attempts
            FROM cases c JOIN tickets t USING (ticket_id)
            WHERE c.callback_raised_at IS NOT NULL AND c.callback_done_at IS NULL
              AND c.callback_due_at <= now() AND ($1::text IS NULL OR t.assignee_id = $1)
            UNION ALL
            SELECT k.reason, NULL, k.ticket_id, t.number, t.subject, t.assignee_id, NULL,
                   t.closed_at, k.due_at, t.learner, k.attempts
            FROM ticket_callbacks k JOIN tickets t USING (ticket_id)
            WHERE k.done_at IS NULL AND k.due_at <= now()
              AND ($1::text IS NULL OR t.assignee_id = $1)
        ) AS due
        ORDER BY callback_due_at
        LIMIT $2
        """,
        assignee_id,
        limit,
    )


async def callback_done(
    conn: asyncpg.Connection,
    *,
    case_id: UUID,
    by: str,
    reached: bool,
    score: int | None,
    outcome: str,
    retry: Retry,
) -> asyncpg.Record | None:
    """Record a call made for a case's due call-back: done when the learner was reached or it
    was the last try, else due again `retry.after` from now. (when, done, calls so far); None
    when none is due."""
    return await conn.fetchrow(
        """
        UPDATE cases SET callback_attempts = callback_attempts + 1,
            callback_done_at = CASE WHEN $4 OR callback_attempts + 1 >= $6 THEN now() END,
            callback_due_at = CASE WHEN $4 OR callback_attempts + 1 >= $6 THEN callback_due_at
                                   ELSE now() + $7::interval END,
            callback_by = $2, callback_outcome = $3, callback_reached = $4, callback_score = $5
        WHERE case_id = $1 AND callback_raised_at IS NOT NULL AND callback_done_at IS NULL
          AND callback_due_at <= now()
        RETURNING now() AS at, callback_done_at IS NOT NULL AS done,
                  callback_attempts AS attempts, callback_due_at AS due_at
        """,
        case_id,
        by,
        outcome,
        reached,
        score,
        retry.attempts,
        retry.after,
    )


async def ticket_callback_done(
    conn: asyncpg.Connection,
    *,
    ticket_id: UUID,
    by: str,
    reached: bool,
    score: int | None,
    note: str,
    retry: Retry,
) -> asyncpg.Record | None:
    """Record a call made for a closed ticket's due call-back, as `callback_done` does: its
    reason, when, done, calls so far; None when none is due."""
    return await conn.fetchrow(
        """
        UPDATE ticket_callbacks SET attempts = attempts + 1,
            done_at = CASE WHEN $3 OR attempts + 1 >= $6 THEN now() END,
            due_at = CASE WHEN $3 OR attempts + 1 >= $6 THEN due_at ELSE now() + $7::interval END,
            done_by = $2, reached = $3, score = $4, note = $5
        WHERE ticket_id = $1 AND done_at IS NULL AND due_at <= now()
        RETURNING reason, now() AS at, done_at IS NOT NULL AS done, attempts, due_at
        """,
        ticket_id,
        by,
        reached,
        score,
        note,
        retry.attempts,
        retry.after,
    )


async def repeats(
    conn: asyncpg.Connection,
    *,
    case_id: UUID,
    ticket_id: UUID,
    learner_id: str | None,
    email: str | None,
    teacher_id: str | None,
    course_id: str | None,
    since: datetime,
) -> dict[str, list[dict[str, Any]]]:
    """Other complaints within the window: the same learner's (complaint tickets or tickets
    with a case), and other cases about the same teacher or course."""
    learner = await conn.fetch(
        """
        SELECT t.ticket_id, t.number, t.created_at FROM tickets t
        WHERE t.ticket_id <> $1 AND t.created_at >= $4
          AND (t.category = 'complaint' OR EXISTS (SELECT 1 FROM cases c
                                                   WHERE c.ticket_id = t.ticket_id))
          AND ((t.learner_id IS NOT NULL AND t.learner_id = $2)
               OR ($3::text IS NOT NULL AND lower(t.learner->>'email') = $3))
        ORDER BY t.created_at DESC LIMIT 20
        """,
        ticket_id,
        learner_id,
        email.lower() if email else None,
        since,
    )
    about = await conn.fetch(
        """
        SELECT c.case_id, t.number, c.opened_at, c.teacher_id = $2 AS same_teacher,
               c.course_id = $3 AS same_course
        FROM cases c JOIN tickets t USING (ticket_id)
        WHERE c.case_id <> $1 AND c.opened_at >= $4
          AND (c.teacher_id = $2 OR c.course_id = $3)
        ORDER BY c.opened_at DESC LIMIT 40
        """,
        case_id,
        teacher_id,
        course_id,
        since,
    )
    return {
        "learner": [dict(r) for r in learner],
        "teacher": [
            {k: r[k] for k in ("case_id", "number", "opened_at")}
            for r in about
            if r["same_teacher"]
        ],
        "course": [
            {k: r[k] for k in ("case_id", "number", "opened_at")} for r in about if r["same_course"]
        ],
    }


def as_decimal(value: Decimal | None) -> str | None:
    """A money column as the events carry it: a decimal string with two places."""
    return None if value is None else f"{value:.2f}"
