"""The complaint cases' JSON API: agents work the cases of their tickets, supervisors approve
remedies; overdue remedies and due call-backs are listed for both."""

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.desk import handlers as desk_handlers
from services.desk.api import TicketRef, as_http
from services.desk.cases import handlers, repo
from services.desk.cases.domain import Finding, Invalid
from services.desk.cases.settings import CaseSettings
from services.desk.domain import Caller
from services.desk.settings import DeskSettings
from shared.agents import Role
from shared.events import now
from shared.http import Utf8JsonRoute
from shared.params import DIGITS, QueryBool
from shared.problems import problems
from shared.service import Context
from shared.text import Line, Text

Amount = Annotated[Decimal, Field(gt=0, le=Decimal("999999999.99"), decimal_places=2)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217; default: CNY")]
CourseId = Annotated[Line, Field(min_length=1, max_length=100)]
Ident = Annotated[Line, Field(min_length=1, max_length=100)]
Name = Annotated[Line, Field(min_length=1, max_length=200)]


class CaseFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    department: Name | None = Field(None, description="The department responsible.")
    responsible: Name | None = Field(None, description="The person responsible.")
    teacher_id: Ident | None = None
    course_id: CourseId | None = Field(
        None, description="Default: the ticket's course, else the learner's only course."
    )
    order_id: Ident | None = None
    order_value: Amount | None = Field(
        None,
        description="The order's value: the case's refunds together may not exceed it, and a "
        "refund needs it.",
    )


class CaseChange(CaseFields):
    @model_validator(mode="after")
    def _something(self) -> "CaseChange":
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Text = Field(min_length=1, max_length=20_000)


class FindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    finding: Finding
    summary: Text | None = Field(None, max_length=20_000)


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Apology(_Line):
    type: Literal["apology"]
    description: Text = Field(min_length=1, max_length=2000, description="The apology's words.")


class Refund(_Line):
    type: Literal["refund"]
    amount: Amount
    currency: Currency | None = None


class Extension(_Line):
    type: Literal["extension"]
    days: int = Field(ge=1, le=3650)
    course_id: CourseId | None = Field(None, description="Default: the case's course.")


class Lessons(_Line):
    type: Literal["lessons"]
    lessons: int = Field(ge=1, le=1000)
    course_id: CourseId | None = Field(None, description="Default: the case's course.")


class Coupon(_Line):
    type: Literal["coupon"]
    amount: Amount
    currency: Currency | None = None


class Points(_Line):
    type: Literal["points"]
    points: int = Field(ge=1, le=10_000_000)


class Replacement(_Line):
    type: Literal["replacement"]
    description: Text = Field(
        min_length=1, max_length=2000, description="What replaces the service (teacher, class)."
    )


RemedyIn = Annotated[
    Apology | Refund | Extension | Lessons | Coupon | Points | Replacement,
    Field(discriminator="type"),
]


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Text | None = Field(None, max_length=2000)


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text = Field(min_length=1, max_length=2000)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Text = Field(
        min_length=1, max_length=20_000, description="What the learner is told, with the remedies."
    )


class CallbackIn(BaseModel):
    """A call-back made: whether the learner answered, how satisfied they said they are, and
    what they said (or why nobody answered)."""

    model_config = ConfigDict(extra="forbid")

    reached: bool = Field(True, description="`false`: the learner did not answer.")
    score: int | None = Field(
        None, ge=1, le=5, description="The learner's satisfaction, 1 (very poor) to 5, if given."
    )
    outcome: Text = Field(min_length=1, max_length=20_000, description="What the learner said.")

    @model_validator(mode="after")
    def _score_from_the_learner(self) -> "CallbackIn":
        if self.score is not None and not self.reached:
            raise ValueError("a score comes from a learner reached: drop it or set reached")
        return self


class Ref(BaseModel):
    """The id of what the request created or changed."""

    id: UUID


class CallMade(Ref):
    """A call recorded: `done` when the learner was reached or it was the last try
    (CARELOOP_DESK_CALLBACK_ATTEMPTS); otherwise the call-back is due again at `due_at`."""

    attempts: int
    done: bool
    due_at: datetime | None


@contextlib.contextmanager
def as_http_422() -> Iterator[None]:
    """desk's refusals, and a field the request got wrong as a 422 naming it."""
    try:
        with as_http():
            yield
    except Invalid as exc:
        raise HTTPException(
            422, [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]
        ) from exc


def call_made(ref: UUID, made: Any) -> CallMade:
    return CallMade(
        id=ref,
        attempts=made["attempts"],
        done=made["done"],
        due_at=None if made["done"] else made["due_at"],
    )


def routes(
    ctx: Context[DeskSettings],
    *,
    current_agent: Callable[..., Awaitable[Caller]],
    settings: CaseSettings,
) -> APIRouter:
    router = APIRouter(
        route_class=Utf8JsonRoute,
        max_body_size=ctx.settings.http_max_body_bytes,
        tags=["cases"],
    )
    links = desk_handlers.links_for(ctx.settings)
    Agent = Annotated[Caller, Depends(current_agent)]

    async def supervisor(agent: Agent) -> Caller:
        """Approving is a supervisor's (or admin's) job: an agent is refused before anything
        is read, whatever the request holds."""
        if agent.role is Role.AGENT:
            raise HTTPException(403, "only supervisors and admins approve or decline remedies")
        return agent

    Supervisor = Annotated[Caller, Depends(supervisor)]
    Limit = Annotated[int, Query(ge=1, le=500), DIGITS]

    def own(agent: Caller, everyone: bool) -> str | None:
        """Whose items a list shows: the agent's own tickets', or everyone's (supervisors)."""
        if everyone and agent.role is Role.AGENT:
            raise HTTPException(403, "only supervisors and admins see everyone's")
        return None if agent.role is not Role.AGENT and everyone else agent.agent_id

    Everyone = Annotated[
        QueryBool, Query(description="`true`: every agent's (supervisors, admins)")
    ]

    @router.post(
        "/v1/tickets/{ticket_id}/case",
        status_code=201,
        summary="Open the ticket's complaint case",
        description="A complaint ticket's case is opened by whoever works it; a case on any "
        "other ticket only by a supervisor (403). 404 for a ticket the caller cannot see, 409 "
        "when the ticket has a case already.",
        responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def open_case(ticket_id: TicketRef, body: CaseFields, agent: Agent) -> Ref:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                case_id = await handlers.open_case(
                    conn,
                    ticket_id=await desk_handlers.ticket_ref(conn, ticket_id),
                    agent=agent,
                    fields=body.model_dump(exclude_unset=True),
                )
        return Ref(id=case_id)

    @router.get(
        "/v1/cases",
        summary="Cases on the caller's tickets (everyone's for supervisors)",
        responses=problems(401, 403, 422, 503),
    )
    async def list_cases(
        agent: Agent,
        everyone: Everyone = False,
        archived: Annotated[QueryBool, Query(description="`true`: closed cases")] = False,
        limit: Limit = 100,
    ) -> list[dict[str, Any]]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.list_cases(
                conn, assignee_id=own(agent, everyone), archived=archived, limit=limit
            )
        return [handlers.public(r) for r in rows]

    @router.get(
        "/v1/cases/{case_id}",
        summary="A case: investigation, notes, remedies with approvals, repeat flags",
        responses=problems(401, 404, 422, 503),
    )
    async def case_detail(case_id: UUID, agent: Agent) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            with as_http():
                return await handlers.case_detail(
                    conn, case_id=case_id, agent=agent, settings=settings
                )

    @router.patch(
        "/v1/cases/{case_id}",
        summary="Set the responsible department and person, teacher, course or order",
        description="422 names order_value when a new order value is below the case's refunds "
        "(or removes it under them).",
        responses=problems(400, 401, 404, 409, 413, 422, 503),
    )
    async def update_case(case_id: UUID, body: CaseChange, agent: Agent) -> Ref:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http_422():
                await handlers.update_case(
                    conn, case_id=case_id, agent=agent, changes=body.model_dump(exclude_unset=True)
                )
        return Ref(id=case_id)

    @router.post(
        "/v1/cases/{case_id}/notes",
        status_code=201,
        summary="Add an investigation note",
        responses=problems(400, 401, 404, 409, 413, 422, 503),
    )
    async def add_note(case_id: UUID, body: NoteIn, agent: Agent) -> Ref:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                note_id = await handlers.add_note(
                    conn, case_id=case_id, agent=agent, body=body.body
                )
        return Ref(id=note_id)

    @router.put(
        "/v1/cases/{case_id}/finding",
        summary="Set the finding: upheld, partly_upheld or not_upheld",
        responses=problems(400, 401, 404, 409, 413, 422, 503),
    )
    async def set_finding(case_id: UUID, body: FindingIn, agent: Agent) -> Ref:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                await handlers.set_finding(
                    conn, case_id=case_id, agent=agent, finding=body.finding, summary=body.summary
                )
        return Ref(id=case_id)

    @router.post(
        "/v1/cases/{case_id}/remedies",
        status_code=201,
        summary="Propose a remedy; above its threshold it waits for approval",
        description="Types: apology, refund, extension, lessons, coupon, points, replacement. "
        "One under every threshold is carried out at once; above, it needs a supervisor, a "
        "refund above the higher threshold two different ones (CARELOOP_DESK_CASE_*). 422 "
        "names the field: a negative amount, an unknown type, refunds together above the order's "
        "value (or a case with no order_value), another currency, an extension with no course.",
        responses=problems(400, 401, 404, 409, 413, 422, 503),
    )
    async def propose(case_id: UUID, body: RemedyIn, agent: Agent) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http_422():
                row = await handlers.propose_remedy(
                    conn,
                    case_id=case_id,
                    agent=agent,
                    line=body.model_dump(exclude_none=True),
                    settings=settings,
                )
        return handlers.public(row)

    @router.post(
        "/v1/remedies/{remedy_id}/approve",
        summary="Approve a proposed remedy (supervisors; never one's own, once per approver)",
        description="403 for an agent; 409 for the proposer, a second approval by the same "
        "supervisor, or a remedy already decided. The last approval needed sends the remedy to "
        "the system that carries it out (careloop.remedies.v1).",
        responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def approve(remedy_id: UUID, body: ApproveIn, agent: Supervisor) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                row = await handlers.decide(
                    conn, remedy_id=remedy_id, agent=agent, approve=True, note=body.note
                )
        return handlers.public(row)

    @router.post(
        "/v1/remedies/{remedy_id}/decline",
        summary="Decline a proposed remedy, with the reason (supervisors)",
        responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def decline(remedy_id: UUID, body: DeclineIn, agent: Supervisor) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                row = await handlers.decide(
                    conn, remedy_id=remedy_id, agent=agent, approve=False, note=body.reason
                )
        return handlers.public(row)

    @router.post(
        "/v1/cases/{case_id}/close",
        summary="Close and archive the case; the learner is told the outcome",
        description="409 without a finding, with remedies still waiting for approval, or for a "
        "closed case. The learner receives the finding, the remedies and `outcome` on their "
        "channel; a call-back falls due CARELOOP_DESK_CASE_CALLBACK_DAYS later.",
        responses=problems(400, 401, 404, 409, 413, 422, 503),
    )
    async def close(case_id: UUID, body: CloseIn, agent: Agent) -> Ref:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                await handlers.close_case(
                    conn,
                    case_id=case_id,
                    agent=agent,
                    outcome=body.outcome,
                    settings=settings,
                    links=links,
                )
        return Ref(id=case_id)

    @router.get(
        "/v1/remedies/overdue",
        summary="Remedies no system acknowledged in time, oldest first",
        responses=problems(401, 403, 422, 503),
    )
    async def overdue(
        agent: Agent, everyone: Everyone = False, limit: Limit = 100
    ) -> list[dict[str, Any]]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.overdue(
                conn,
                before=now() - timedelta(hours=settings.ack_overdue_hours),
                assignee_id=own(agent, everyone),
                limit=limit,
            )
        return [handlers.public(r) for r in rows]

    @router.get(
        "/v1/remedies/pending",
        summary="Remedies waiting for the caller's approval (supervisors)",
        description="Proposed remedies the caller neither proposed nor approved yet, oldest "
        "first. 403 for an agent.",
        responses=problems(401, 403, 422, 503),
    )
    async def pending(agent: Supervisor, limit: Limit = 100) -> list[dict[str, Any]]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.pending(conn, approver_id=agent.agent_id, limit=limit)
        return [handlers.public(r) for r in rows]

    @router.get(
        "/v1/callbacks",
        summary="Call-backs that fell due and nobody has made, the longest due first",
        description="Each row's `reason`: `case` (a closed complaint case's, recorded on the "
        "case), `complaint` (a complaint closed without a case) or `sample` "
        "(CARELOOP_DESK_CALLBACK_SAMPLE of closed tickets), both recorded on the ticket.",
        responses=problems(401, 403, 422, 503),
    )
    async def callbacks(
        agent: Agent, everyone: Everyone = False, limit: Limit = 100
    ) -> list[dict[str, Any]]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.callbacks(conn, assignee_id=own(agent, everyone), limit=limit)
        return [handlers.public(r) for r in rows]

    @router.post(
        "/v1/cases/{case_id}/callback",
        summary="Record a call made for the case's call-back, with what the learner said",
        description="A call that did not reach the learner (`reached: false`) leaves the "
        "call-back due again CARELOOP_DESK_CALLBACK_RETRY_HOURS later, up to "
        "CARELOOP_DESK_CALLBACK_ATTEMPTS calls; the answer says which. 409 when none is due.",
        responses=problems(400, 401, 404, 409, 413, 422, 503),
    )
    async def callback(case_id: UUID, body: CallbackIn, agent: Agent) -> CallMade:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                made = await handlers.record_callback(
                    conn,
                    case_id=case_id,
                    agent=agent,
                    reached=body.reached,
                    score=body.score,
                    outcome=body.outcome,
                    retry=ctx.settings.callback_retry,
                )
        return call_made(case_id, made)

    @router.post(
        "/v1/tickets/{ticket_id}/callback",
        summary="Record the call-back on a closed ticket, with what the learner said",
        description="For a ticket in the call-back list without a case (a sampled ticket, or a "
        "complaint closed without one; a case's call-back is recorded on the case). A call "
        "that did not reach the learner leaves it due again, as for a case. 409 when no "
        "call-back is due on the ticket, 404 for a ticket the caller cannot see.",
        responses=problems(400, 401, 404, 409, 413, 422, 503),
    )
    async def ticket_callback(ticket_id: TicketRef, body: CallbackIn, agent: Agent) -> CallMade:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                ticket = await desk_handlers.ticket_ref(conn, ticket_id)
                made = await handlers.record_ticket_callback(
                    conn,
                    ticket_id=ticket,
                    agent=agent,
                    reached=body.reached,
                    score=body.score,
                    outcome=body.outcome,
                    retry=ctx.settings.callback_retry,
                )
        return call_made(ticket, made)

    return router
