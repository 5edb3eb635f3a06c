"""The complaint cases' use cases: each runs in its caller's transaction, records the change in
the ticket's history and stages the events it causes in the outbox."""

import collections
import uuid
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import structlog
from prometheus_client import Counter, Gauge
from uuid6 import uuid7

from services.desk import handlers as desk_handlers
from services.desk import repo as desk_repo
from services.desk.cases import repo
from services.desk.cases.domain import (
    EXTERNAL,
    REFUNDING,
    CaseStatus,
    Finding,
    Invalid,
    Remedy,
    RemedyStatus,
    RemedyType,
    after_approval,
    approvals_needed,
    check_answer,
    check_may_close,
    check_may_decide,
    check_open,
    check_order_value,
    check_remedy,
    may_open_case,
)
from services.desk.cases.settings import CaseSettings
from services.desk.domain import Caller, Conflict, NotFound
from services.desk.links import Links
from services.desk.settings import DeskSettings, Retry
from shared import outbox
from shared.events import (
    CallbackReason,
    CallbackRecorded,
    CaseConcluded,
    CaseRemedy,
    CoinKind,
    CouponIssued,
    Envelope,
    EventData,
    ExtensionGranted,
    Learner,
    LessonsGranted,
    RefundRequested,
    RemedyAcknowledged,
    RemedyRejected,
    new_event,
    now,
)
from shared.inbox import AfterCommit, Handler
from shared.service import Context, Task, every

log = structlog.get_logger(__name__)
PRODUCER = "desk"
# A remedy's event id is derived from its id: relayed twice, it is still one event.
REMEDY_EVENTS = uuid.UUID("7d3c1f9e-2b8a-4c55-9f0e-5a1d6c2e8b47")
OVERDUE = Gauge(
    "careloop_remedies_overdue",
    "Approved remedies the acting system has not acknowledged within "
    "CARELOOP_DESK_CASE_ACK_OVERDUE_HOURS, by remedy type.",
    ["type"],
)
ANSWERS = Counter(
    "careloop_remedy_answers_total",
    "Answers desk read from careloop.remedies.acks.v1, by outcome: acknowledged, rejected, "
    "repeated (the same answer again), foreign (another service's remedy, e.g. incident's).",
    ["outcome"],
)
CLOCK_BATCH = 500


# ---- reading -------------------------------------------------------------------------------


async def _ticket_seen_by(conn: asyncpg.Connection, ticket_id: UUID, agent: Caller) -> Any:
    """The ticket, if `agent` may see it (desk's rule: theirs, their teams', or they
    supervise); one they may not see is as missing (404, so ids cannot be probed)."""
    ticket = await desk_repo.get_ticket(conn, ticket_id)
    if ticket is None:
        raise NotFound("no such ticket")
    desk_handlers.check_see(agent, ticket)
    return ticket


async def _case_for(
    conn: asyncpg.Connection, case_id: UUID, agent: Caller, *, lock: bool
) -> tuple[asyncpg.Record, asyncpg.Record]:
    case = await (repo.lock_case if lock else repo.get_case)(conn, case_id)
    if case is None:
        raise NotFound("no such case")
    try:
        ticket = await _ticket_seen_by(conn, case["ticket_id"], agent)
    except NotFound:
        raise NotFound("no such case") from None
    return case, ticket


def public(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """A row as the API answers it: money as decimal strings, never as floats."""
    return {k: repo.as_decimal(v) if isinstance(v, Decimal) else v for k, v in dict(row).items()}


async def case_detail(
    conn: asyncpg.Connection, *, case_id: UUID, agent: Caller, settings: CaseSettings
) -> dict[str, Any]:
    """A case with its ticket's number, notes, remedies (each with its approvals and whether
    it is overdue) and the repeat complaints it belongs with."""
    case, ticket = await _case_for(conn, case_id, agent, lock=False)
    remedies = await repo.remedies(conn, case_id)
    decisions = await repo.approvals(conn, [r["remedy_id"] for r in remedies])
    at = now()
    learner = ticket["learner"] or {}
    repeats = await repo.repeats(
        conn,
        case_id=case_id,
        ticket_id=ticket["ticket_id"],
        learner_id=ticket["learner_id"],
        email=learner.get("email"),
        teacher_id=case["teacher_id"],
        course_id=case["course_id"],
        since=at - timedelta(days=settings.repeat_window_days),
    )
    return {
        **public(case),
        "number": ticket["number"],
        "notes": [dict(n) for n in await repo.notes(conn, case_id)],
        "remedies": [
            {
                **public(r),
                "overdue": r["status"] == RemedyStatus.REQUESTED
                and r["requested_at"] + timedelta(hours=settings.ack_overdue_hours) < at,
                "approvals": [
                    {k: d[k] for k in ("approver_id", "decision", "note", "at")}
                    for d in decisions
                    if d["remedy_id"] == r["remedy_id"]
                ],
            }
            for r in remedies
        ],
        "repeat": {
            "learner": bool(repeats["learner"]),
            "teacher": bool(repeats["teacher"]),
            "course": bool(repeats["course"]),
            "related": repeats,
        },
    }


# ---- the investigation ---------------------------------------------------------------------


def _course_of(ticket: asyncpg.Record) -> str | None:
    """The ticket's course, else the learner's only course in the LMS's context."""
    if ticket["course_id"]:
        course: str = ticket["course_id"]
        return course
    courses = (ticket["learner_context"] or {}).get("courses") or []
    return str(courses[0]["course_id"]) if len(courses) == 1 else None


async def open_case(
    conn: asyncpg.Connection, *, ticket_id: UUID, agent: Caller, fields: dict[str, Any]
) -> UUID:
    """The ticket's case: its course from the ticket or the learner context unless given."""
    ticket = await _ticket_seen_by(conn, ticket_id, agent)
    may_open_case(category=ticket["category"], role=agent.role)
    case_id = uuid7()
    fields = {"course_id": _course_of(ticket), **{k: v for k, v in fields.items() if v}}
    if (
        await repo.insert_case(
            conn, case_id=case_id, ticket_id=ticket_id, opened_by=agent.agent_id, **fields
        )
        is None
    ):
        raise Conflict("the ticket has a case already")
    await desk_repo.add_history(
        conn, [(ticket_id, "case_opened", agent.agent_id, {"case_id": str(case_id)})]
    )
    return case_id


async def update_case(
    conn: asyncpg.Connection, *, case_id: UUID, agent: Caller, changes: dict[str, Any]
) -> None:
    case, _ = await _case_for(conn, case_id, agent, lock=True)
    check_open(CaseStatus(case["status"]))
    if "order_value" in changes:
        check_order_value(
            changes["order_value"], refunded=await repo.refunded(conn, case_id, REFUNDING)
        )
    await repo.update_case(conn, case_id, changes)
    await desk_repo.add_history(
        conn,
        [
            (
                case["ticket_id"],
                "case_updated",
                agent.agent_id,
                {"case_id": str(case_id), "fields": sorted(changes)},
            )
        ],
    )


async def add_note(conn: asyncpg.Connection, *, case_id: UUID, agent: Caller, body: str) -> UUID:
    case, _ = await _case_for(conn, case_id, agent, lock=True)
    check_open(CaseStatus(case["status"]))
    note_id = uuid7()
    await repo.add_note(conn, note_id=note_id, case_id=case_id, agent_id=agent.agent_id, body=body)
    await desk_repo.add_history(
        conn,
        [
            (
                case["ticket_id"],
                "case_note",
                agent.agent_id,
                {"case_id": str(case_id), "note_id": str(note_id)},
            )
        ],
    )
    return note_id


async def set_finding(
    conn: asyncpg.Connection,
    *,
    case_id: UUID,
    agent: Caller,
    finding: Finding,
    summary: str | None,
) -> None:
    case, _ = await _case_for(conn, case_id, agent, lock=True)
    check_open(CaseStatus(case["status"]))
    await repo.update_case(conn, case_id, {"finding": finding, "finding_summary": summary})
    await desk_repo.add_history(
        conn,
        [
            (
                case["ticket_id"],
                "case_finding",
                agent.agent_id,
                {"case_id": str(case_id), "finding": finding},
            )
        ],
    )


# ---- remedies and their approval -----------------------------------------------------------


async def propose_remedy(
    conn: asyncpg.Connection,
    *,
    case_id: UUID,
    agent: Caller,
    line: dict[str, Any],
    settings: CaseSettings,
) -> asyncpg.Record:
    """A remedy line on the case; one that needs no approval is carried out at once."""
    case, ticket = await _case_for(conn, case_id, agent, lock=True)
    check_open(CaseStatus(case["status"]))
    kind = RemedyType(line["type"])
    if kind in (RemedyType.REFUND, RemedyType.COUPON):
        line = {**line, "currency": line.get("currency") or settings.currency}
    if kind in (RemedyType.EXTENSION, RemedyType.LESSONS):
        line = {**line, "course_id": line.get("course_id") or case["course_id"]}
    remedy = Remedy(
        type=kind,
        amount=line.get("amount"),
        currency=line.get("currency"),
        days=line.get("days"),
        lessons=line.get("lessons"),
        points=line.get("points"),
    )
    check_remedy(
        remedy,
        currency=settings.currency,
        order_value=case["order_value"],
        refunded=await repo.refunded(conn, case_id, REFUNDING),
        course_id=line.get("course_id"),
    )
    needed = approvals_needed(remedy, settings)
    status = after_approval(needed=needed, approvals=0, remedy_type=kind)
    row = await repo.insert_remedy(
        conn,
        remedy_id=uuid7(),
        case_id=case_id,
        ticket_id=case["ticket_id"],
        line=line,
        approvals_needed=needed,
        status=status,
        proposed_by=agent.agent_id,
    )
    await desk_repo.add_history(
        conn,
        [
            (
                case["ticket_id"],
                "remedy_proposed",
                agent.agent_id,
                {
                    "case_id": str(case_id),
                    "remedy_id": str(row["remedy_id"]),
                    "type": kind,
                    "approvals_needed": needed,
                },
            )
        ],
    )
    if status is RemedyStatus.REQUESTED:
        await outbox.add(conn, [remedy_event(row, case=case, ticket=ticket, approvers=())])
    return row


async def decide(
    conn: asyncpg.Connection,
    *,
    remedy_id: UUID,
    agent: Caller,
    approve: bool,
    note: str | None,
) -> asyncpg.Record:
    """A supervisor's approval or refusal; the last approval needed sends the remedy on."""
    remedy = await repo.lock_remedy(conn, remedy_id)
    if remedy is None:
        raise NotFound("no such remedy")
    try:
        case, ticket = await _case_for(conn, remedy["case_id"], agent, lock=True)
    except NotFound:
        raise NotFound("no such remedy") from None
    check_open(CaseStatus(case["status"]))
    before = await repo.approvals(conn, [remedy_id])
    check_may_decide(
        approver=agent.agent_id,
        role=agent.role,
        proposer=remedy["proposed_by"],
        status=RemedyStatus(remedy["status"]),
        decided_by=frozenset(d["approver_id"] for d in before),
    )
    count = await repo.decide(
        conn,
        remedy_id=remedy_id,
        approver_id=agent.agent_id,
        decision="approved" if approve else "declined",
        note=note,
    )
    kind = RemedyType(remedy["type"])
    status = (
        after_approval(needed=remedy["approvals_needed"], approvals=count, remedy_type=kind)
        if approve
        else RemedyStatus.DECLINED
    )
    if status is not RemedyStatus.PROPOSED:
        await repo.set_remedy_status(conn, remedy_id, status)
    await desk_repo.add_history(
        conn,
        [
            (
                case["ticket_id"],
                "remedy_approved" if approve else "remedy_declined",
                agent.agent_id,
                {
                    "case_id": str(case["case_id"]),
                    "remedy_id": str(remedy_id),
                    "approvals": count,
                    "approvals_needed": remedy["approvals_needed"],
                    "note": note,
                },
            )
        ],
    )
    updated = await repo.lock_remedy(conn, remedy_id)
    assert updated is not None
    if status is RemedyStatus.REQUESTED:
        approvers = (*(d["approver_id"] for d in before), agent.agent_id)
        await outbox.add(
            conn, [remedy_event(updated, case=case, ticket=ticket, approvers=approvers)]
        )
    return updated


def remedy_event(
    remedy: asyncpg.Record,
    *,
    case: asyncpg.Record,
    ticket: asyncpg.Record,
    approvers: Sequence[str],
) -> Envelope[Any]:
    """The event that asks the acting system to carry out `remedy`, its id derived from the
    remedy's: the remedy is one event on careloop.remedies.v1 however often it is relayed."""
    common: dict[str, Any] = {
        "ticket_id": case["ticket_id"],
        "case_id": case["case_id"],
        "remedy_id": remedy["remedy_id"],
        "number": ticket["number"],
        "learner_id": ticket["learner_id"],
        "learner": msgspec.convert(ticket["learner"], Learner),
        "approved_by": tuple(approvers),
        "approved_at": remedy["approved_at"] or now(),
    }
    data: EventData
    match RemedyType(remedy["type"]):
        case RemedyType.REFUND:
            data = RefundRequested(
                **common,
                amount=repo.as_decimal(remedy["amount"]) or "0",
                currency=remedy["currency"],
                order_id=case["order_id"],
            )
        case RemedyType.EXTENSION:
            data = ExtensionGranted(**common, course_id=remedy["course_id"], days=remedy["days"])
        case RemedyType.LESSONS:
            data = LessonsGranted(
                **common, course_id=remedy["course_id"], lessons=remedy["lessons"]
            )
        case RemedyType.COUPON:
            data = CouponIssued(
                **common,
                kind=CoinKind.COUPON,
                value=repo.as_decimal(remedy["amount"]) or "0",
                currency=remedy["currency"],
            )
        case RemedyType.POINTS:
            data = CouponIssued(**common, kind=CoinKind.POINTS, value=str(remedy["points"]))
        case other:
            raise ValueError(f"a {other} remedy is carried out by desk's people, not an event")
    event = new_event(data, producer=PRODUCER)
    event_id = uuid.uuid5(REMEDY_EVENTS, str(remedy["remedy_id"]))
    return msgspec.structs.replace(event, event_id=event_id, correlation_id=event_id)


# ---- the acting systems' answers -----------------------------------------------------------


async def on_answers(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
    """remedy.acknowledged / remedy.rejected: each of desk's remedies answered once.

    The topic is shared: incident's compensations are answered on it too, so an answer for a
    remedy desk never issued is another service's and is passed over (counted as foreign).
    The same answer again (re-sent under a new event id) changes nothing. An answer that
    contradicts desk's remedy (another ticket, a remedy not waiting for one, a second answer
    that differs) is refused, and the consumer dead-letters it with why.
    """
    known = {
        r["remedy_id"]: r
        for r in await repo.lock_remedies(conn, [e.data.remedy_id for e in events])
    }
    answered: dict[UUID, tuple[str, str]] = {}
    outcomes: collections.Counter[str] = collections.Counter()
    for event in events:
        data: RemedyAcknowledged | RemedyRejected = event.data
        remedy = known.get(data.remedy_id)
        if remedy is None:
            outcomes["foreign"] += 1
            continue
        if remedy["ticket_id"] != data.ticket_id:
            raise Invalid("ticket_id", f"remedy {data.remedy_id} is not on ticket {data.ticket_id}")
        acknowledged = isinstance(data, RemedyAcknowledged)
        status = RemedyStatus.ACKNOWLEDGED if acknowledged else RemedyStatus.REJECTED
        was = answered.get(data.remedy_id, (remedy["status"], remedy["answer_system"]))
        if was == (status, data.system):
            outcomes["repeated"] += 1
            continue
        check_answer(RemedyStatus(was[0]))
        await repo.answer(
            conn,
            remedy_id=data.remedy_id,
            status=status,
            system=data.system,
            reference=getattr(data, "reference", None),
            reason=getattr(data, "reason", None),
            at=data.acknowledged_at if isinstance(data, RemedyAcknowledged) else data.rejected_at,
        )
        answered[data.remedy_id] = (status, data.system)
        outcomes[status] += 1
        await desk_repo.add_history(
            conn,
            [
                (
                    data.ticket_id,
                    "remedy_acknowledged" if acknowledged else "remedy_rejected",
                    data.system,
                    {
                        "remedy_id": str(data.remedy_id),
                        "reference": getattr(data, "reference", None),
                        "reason": getattr(data, "reason", None),
                    },
                )
            ],
        )

    def count() -> None:
        for outcome, n in outcomes.items():
            ANSWERS.labels(outcome).inc(n)

    return count


def event_handlers() -> dict[str, Handler]:
    """What desk does with careloop.remedies.acks.v1."""
    return {RemedyAcknowledged.TYPE: on_answers, RemedyRejected.TYPE: on_answers}


# ---- closing, the learner's outcome and the call-back --------------------------------------


async def close_case(
    conn: asyncpg.Connection,
    *,
    case_id: UUID,
    agent: Caller,
    outcome: str,
    settings: CaseSettings,
    links: Links,
) -> None:
    """Close and archive the case; the learner is told the finding and the remedies on their
    channel, and a call-back falls due `callback_days` later."""
    case, ticket = await _case_for(conn, case_id, agent, lock=True)
    check_open(CaseStatus(case["status"]))
    check_may_close(
        finding=Finding(case["finding"]) if case["finding"] else None,
        undecided=await repo.undecided(conn, case_id),
    )
    closed_at = now()
    await repo.close_case(
        conn,
        case_id=case_id,
        by=agent.agent_id,
        outcome=outcome,
        closed_at=closed_at,
        callback_due_at=closed_at + timedelta(days=settings.callback_days),
    )
    granted = [
        r
        for r in await repo.remedies(conn, case_id)
        if r["status"] not in (RemedyStatus.DECLINED, RemedyStatus.REJECTED)
    ]
    await desk_repo.add_history(
        conn,
        [
            (
                case["ticket_id"],
                "case_closed",
                agent.agent_id,
                {"case_id": str(case_id), "finding": case["finding"]},
            )
        ],
    )
    await outbox.add(
        conn,
        [
            new_event(
                CaseConcluded(
                    ticket_id=case["ticket_id"],
                    number=ticket["number"],
                    case_id=case_id,
                    finding=case["finding"],
                    outcome=outcome,
                    remedies=tuple(
                        CaseRemedy(
                            remedy_id=r["remedy_id"],
                            type=r["type"],
                            amount=repo.as_decimal(r["amount"]),
                            currency=r["currency"],
                            days=r["days"],
                            lessons=r["lessons"],
                            points=r["points"],
                            course_id=r["course_id"],
                            description=r["description"],
                        )
                        for r in granted
                    ),
                    portal_url=links.portal_url(case["ticket_id"]),
                    concluded_at=closed_at,
                ),
                producer=PRODUCER,
            )
        ],
    )


async def record_callback(
    conn: asyncpg.Connection,
    *,
    case_id: UUID,
    agent: Caller,
    reached: bool,
    score: int | None,
    outcome: str,
    retry: Retry,
) -> asyncpg.Record:
    """Record a call made for the case's due call-back; one that did not reach the learner is
    due again after `retry.after`, up to `retry.attempts` calls. (when, done, calls so far,
    due); NotFound, Conflict when none is due."""
    _, ticket = await _case_for(conn, case_id, agent, lock=True)
    made = await repo.callback_done(
        conn,
        case_id=case_id,
        by=agent.agent_id,
        reached=reached,
        score=score,
        outcome=outcome,
        retry=retry,
    )
    if made is None:
        raise Conflict("no call-back is due on this case")
    await _made(
        conn,
        ticket,
        made,
        reason=CallbackReason.CASE,
        agent=agent,
        reached=reached,
        score=score,
        note=outcome,
        detail={"case_id": str(case_id)},
    )
    return made


async def record_ticket_callback(
    conn: asyncpg.Connection,
    *,
    ticket_id: UUID,
    agent: Caller,
    reached: bool,
    score: int | None,
    outcome: str,
    retry: Retry,
) -> asyncpg.Record:
    """Record a call made for a closed ticket's due call-back (sampled, or a complaint without
    a case), as `record_callback` does; NotFound, Conflict when none is due."""
    ticket = await _ticket_seen_by(conn, ticket_id, agent)
    made = await repo.ticket_callback_done(
        conn,
        ticket_id=ticket_id,
        by=agent.agent_id,
        reached=reached,
        score=score,
        note=outcome,
        retry=retry,
    )
    if made is None:
        raise Conflict("no call-back is due on this ticket")
    await _made(
        conn,
        ticket,
        made,
        reason=CallbackReason(made["reason"]),
        agent=agent,
        reached=reached,
        score=score,
        note=outcome,
        detail={"reason": made["reason"]},
    )
    return made


async def _made(
    conn: asyncpg.Connection,
    ticket: asyncpg.Record,
    made: asyncpg.Record,
    *,
    reason: CallbackReason,
    agent: Caller,
    reached: bool,
    score: int | None,
    note: str,
    detail: dict[str, Any],
) -> None:
    """A call in the ticket's history (which try, and whether it is due again) and on Kafka."""
    again = None if made["done"] else made["due_at"].isoformat()
    history = {**detail, "reached": reached, "attempt": made["attempts"], "again_at": again}
    await desk_repo.add_history(
        conn, [(ticket["ticket_id"], "callback_made", agent.agent_id, history)]
    )
    # the outcome for the analysis: metrics counts it beside the surveys' scores
    recorded = CallbackRecorded(
        ticket_id=ticket["ticket_id"],
        number=ticket["number"],
        reason=reason,
        reached=reached,
        score=score,
        note=note,
        by=agent.agent_id,
        recorded_at=made["at"],
    )
    await outbox.add(conn, [new_event(recorded, producer=PRODUCER)])


def clock(settings: CaseSettings) -> Task:
    """desk's background task that raises each call-back that fell due, once (it enters the
    agents' call-back list and the ticket's history), and counts the overdue remedies for
    careloop_remedies_overdue."""

    async def case_clock(ctx: Context[DeskSettings]) -> None:
        await every(settings.clock_seconds, lambda: _tick(ctx, settings), what="case clock")

    return case_clock


async def _tick(ctx: Context[DeskSettings], settings: CaseSettings) -> bool:
    at = now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        raised = await repo.raise_callbacks(conn, at, CLOCK_BATCH)
        await desk_repo.add_history(
            conn,
            [
                (r["ticket_id"], "callback_due", "system", {"case_id": str(r["case_id"])})
                for r in raised
            ],
        )
        counts = await repo.overdue_counts(conn, at - timedelta(hours=settings.ack_overdue_hours))
    for kind in EXTERNAL:
        OVERDUE.labels(kind).set(counts.get(kind, 0))
    return len(raised) == CLOCK_BATCH
