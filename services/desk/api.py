"""desk's JSON API: the agents' tickets, replies and resolutions, and the learner's answer."""

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from uuid6 import uuid7

from services.desk import handlers, repo
from services.desk.accounts.web import User, require_api_user
from services.desk.domain import (
    RESOLUTION_CODES,
    Answer,
    Caller,
    Conflict,
    Invalid,
    NotAllowed,
    NotFound,
    ResolutionCode,
    Status,
)
from services.desk.settings import DeskSettings
from shared.agents import AGENT_ID_PATTERN, TEAM_PATTERN, Role
from shared.events import (
    Call,
    Category,
    Channel,
    Learner,
    Priority,
    TicketSubmitted,
    now,
)
from shared.http import Utf8JsonRoute
from shared.params import DIGITS, QueryBool
from shared.phones import normal_phone
from shared.problems import problems
from shared.service import Context
from shared.text import TOKEN_PATTERN, Line, Text, detect_language


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Text = Field(min_length=1, max_length=20_000, description="What the learner reads.")


class ReplyOut(BaseModel):
    reply_id: UUID
    first_response: bool


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Text = Field(min_length=1, max_length=20_000)
    resolution_code: ResolutionCode = Field(
        ResolutionCode.ANSWERED, description="How it was resolved (GET /v1/resolution-codes)."
    )

    @field_validator("resolution_code")
    @classmethod
    def _agents_code(cls, code: ResolutionCode) -> ResolutionCode:
        if code not in RESOLUTION_CODES:
            raise ValueError(f"{code} is the learner's own answer, not an agent's code")
        return code


class ResolveOut(BaseModel):
    ticket_id: UUID
    status: Status


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: Answer


class ConfirmOut(BaseModel):
    status: Status


TokenInPath = Annotated[
    str,
    Path(
        description="The token from the e-mailed link; one that careloop did not send is 404.",
        json_schema_extra={"pattern": TOKEN_PATTERN},
    ),
]


TICKET_REF_PATTERN = (
    r"^([0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}"
    r"|[Cc][Ll]-[0-9]{6,18})$"
)
TicketRef = Annotated[
    str,
    Path(
        description="The ticket's id, or its number (`CL-000123`).",
        pattern=TICKET_REF_PATTERN,
    ),
]


class RetriageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    category: Category | None = None
    priority: Priority | None = None
    reason: Line = Field(min_length=1, max_length=500, description="Why: kept in the history.")

    @model_validator(mode="after")
    def _something(self) -> "RetriageIn":
        if self.category is None and self.priority is None:
            raise ValueError("give a category, a priority or both")
        return self


class Triaged(BaseModel):
    ticket_id: UUID
    category: Category
    priority: Priority


class Receipt(BaseModel):
    number: str
    status: Status
    ticket_id: UUID | None = None


class CallIn(BaseModel):
    """A call an agent took, logged by hand."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    caller_number: str = Field(pattern=r"^\+?[0-9][0-9 ()-]{5,30}$")
    name: Line | None = Field(None, max_length=200)
    subject: Line = Field(min_length=1, max_length=200)
    summary: Text = Field(min_length=1, max_length=20_000)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    ivr_choice: Line | None = Field(None, max_length=100)
    recording_url: Line | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")
    course_id: Line | None = Field(None, max_length=100)

    def submitted(self, agent_id: str) -> TicketSubmitted:
        phone = normal_phone(self.caller_number) or self.caller_number
        return TicketSubmitted(
            ticket_id=uuid7(),
            channel=Channel.HOTLINE,
            source="desk",
            learner=Learner(name=self.name or phone, phone=phone),
            subject=self.subject,
            description=self.summary,
            course_id=self.course_id,
            language=detect_language(self.subject, self.summary),
            submitted_at=now(),
            call=Call(
                caller=phone,
                agent=agent_id,
                started_at=self.started_at,
                ended_at=self.ended_at,
                ivr_choice=self.ivr_choice,
                recording_url=self.recording_url,
            ),
        )


def is_token(token: str) -> bool:
    """Whether `token` could be one careloop sent; anything else is answered 404 unread."""
    return re.fullmatch(TOKEN_PATTERN, token) is not None


@contextlib.contextmanager
def as_http() -> Iterator[None]:
    """desk's refusals as HTTP answers."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except NotAllowed as exc:
        raise HTTPException(403, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except Invalid as exc:
        raise HTTPException(422, str(exc)) from exc


def agent_dependency(ctx: Context[DeskSettings]) -> Callable[..., Awaitable[Caller]]:
    """The FastAPI dependency of every agent route (desk's API and its parts, like cases):
    the calling agent (bearer token, or session cookie with its CSRF token), else 401."""
    authenticated = require_api_user()

    async def current_agent(user: Annotated[User, Depends(authenticated)]) -> Caller:
        return Caller(agent_id=user.agent_id, name=user.name, role=user.role, teams=user.teams)

    return current_agent


def http_routes(ctx: Context[DeskSettings]) -> APIRouter:
    router = APIRouter(route_class=Utf8JsonRoute, max_body_size=ctx.settings.http_max_body_bytes)
    links = handlers.links_for(ctx.settings)
    CurrentAgent = Annotated[Caller, Depends(agent_dependency(ctx))]

    @router.get("/v1/agent/me", summary="Who the token belongs to", responses=problems(401, 503))
    async def me(agent: CurrentAgent) -> Caller:
        return agent

    @router.get(
        "/v1/agent/tickets",
        summary="The calling agent's tickets (everyone's for supervisors and admins)",
        responses=problems(401, 403, 503),
    )
    async def my_tickets(
        agent: CurrentAgent,
        status: Annotated[list[Status] | None, Query(description="default: assigned")] = None,
        everyone: Annotated[
            QueryBool, Query(description="`true`: every agent's tickets (supervisors, admins)")
        ] = False,
        limit: Annotated[int, Query(ge=1, le=500), DIGITS] = 100,
        needs_review: Annotated[
            QueryBool, Query(description="`true`: only tickets triage was unsure of")
        ] = False,
    ) -> list[dict[str, Any]]:
        if everyone and agent.role is Role.AGENT:
            raise HTTPException(403, "only supervisors and admins see everyone's tickets")
        async with ctx.pool.acquire() as conn:
            rows = await repo.list_tickets(
                conn,
                assignee_id=None if everyone else agent.agent_id,
                statuses=[s.value for s in (status or [Status.ASSIGNED])],
                limit=limit,
                needs_review=needs_review,
            )
        return [dict(r) for r in rows]

    @router.get(
        "/v1/tickets/{ticket_id}",
        summary="One ticket with its history",
        responses=problems(401, 403, 404, 503),
    )
    async def ticket_detail(ticket_id: TicketRef, agent: CurrentAgent) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            with as_http():
                tid = await handlers.ticket_ref(conn, ticket_id)
                return await handlers.ticket_with_history(conn, tid, agent)

    @router.get(
        "/v1/receipts/{ticket_id}",
        summary="A ticket's number once desk has it (for a channel's instant reply)",
        description="By the ticket's id, or by a learner message's id (a follow-up lands on "
        "a ticket under another id). Unauthenticated: says only the ticket's number, status "
        "and id (ids are not guessable). 404 until desk has it.",
        responses=problems(404, 503),
    )
    async def receipt(ticket_id: UUID) -> Receipt:
        async with ctx.pool.acquire() as conn:
            row = await repo.receipt(conn, ticket_id)
        if row is None:
            raise HTTPException(404, "no such ticket yet")
        return Receipt(
            number=row["number"], status=Status(row["status"]), ticket_id=row["ticket_id"]
        )

    @router.post(
        "/v1/calls",
        status_code=201,
        summary="Log a call the calling agent took: a hotline ticket",
        responses=problems(400, 401, 413, 503),
    )
    async def log_call(body: CallIn, agent: CurrentAgent) -> Receipt:
        async with ctx.pool.acquire() as conn, conn.transaction():
            ticket_id = await handlers.log_call(
                conn, agent=agent, call=body.submitted(agent.agent_id), links=links
            )
            row = await repo.get_ticket(conn, ticket_id)
        assert row is not None
        return Receipt(number=row["number"], status=Status(row["status"]), ticket_id=ticket_id)

    @router.post(
        "/v1/tickets/{ticket_id}/replies",
        status_code=201,
        summary="Reply to the learner",
        responses=problems(400, 401, 403, 404, 409, 413, 503),
    )
    async def reply(ticket_id: TicketRef, body: ReplyIn, agent: CurrentAgent) -> ReplyOut:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                reply_id, first = await handlers.reply(
                    conn,
                    ticket_id=await handlers.ticket_ref(conn, ticket_id),
                    agent=agent,
                    body=body.body,
                    links=links,
                )
        return ReplyOut(reply_id=reply_id, first_response=first)

    @router.post(
        "/v1/tickets/{ticket_id}/resolve",
        summary="Resolve; the learner is asked to confirm",
        responses=problems(400, 401, 403, 404, 409, 413, 503),
    )
    async def resolve(ticket_id: TicketRef, body: ResolveIn, agent: CurrentAgent) -> ResolveOut:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                tid = await handlers.ticket_ref(conn, ticket_id)
                await handlers.resolve(
                    conn,
                    ticket_id=tid,
                    agent=agent,
                    resolution=body.resolution,
                    resolution_code=body.resolution_code,
                    public_url=ctx.settings.public_url,
                    links=links,
                )
        return ResolveOut(ticket_id=tid, status=Status.RESOLVED)

    @router.post(
        "/v1/tickets/{ticket_id}/pending",
        summary="Wait on the learner: the SLA clocks pause until the learner writes",
        description="The assignee or a supervisor sets an assigned ticket to `pending_learner` "
        "(R5.3); the learner's next message, on any channel or the portal, sets it back to "
        "`assigned` and the clocks run on without the wait. 409 unless the ticket is assigned.",
        responses=problems(401, 403, 404, 409, 503),
    )
    async def pending(ticket_id: TicketRef, agent: CurrentAgent) -> ResolveOut:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                tid = await handlers.ticket_ref(conn, ticket_id)
                await handlers.set_pending(conn, ticket_id=tid, agent=agent)
        return ResolveOut(ticket_id=tid, status=Status.PENDING_LEARNER)

    @router.post(
        "/v1/tickets/{ticket_id}/retriage",
        summary="Correct the triage: category and/or priority, with a reason (audited)",
        description="The assignee or a supervisor. routing moves the ticket to the new "
        "category's team when it differs, and its SLA clocks take the new priority. 409 for a "
        "closed ticket, one not yet triaged, or nothing that changes; 422 naming an unknown "
        "category or priority.",
        responses=problems(400, 401, 403, 404, 409, 413, 503),
    )
    async def retriage(ticket_id: TicketRef, body: RetriageIn, agent: CurrentAgent) -> Triaged:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                tid = await handlers.ticket_ref(conn, ticket_id)
                row = await handlers.retriage(
                    conn,
                    ticket_id=tid,
                    agent=agent,
                    category=body.category,
                    priority=body.priority,
                    reason=body.reason,
                )
        return Triaged(ticket_id=tid, category=row["category"], priority=row["priority"])

    @router.post(
        "/v1/confirmations/{token}",
        summary="The learner's answer: solved or not",
        responses=problems(400, 404, 409, 413, 503),
    )
    async def confirm_api(token: TokenInPath, body: ConfirmIn) -> ConfirmOut:
        if not is_token(token):
            raise HTTPException(404, "this link is no longer valid")
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                return ConfirmOut(
                    status=await handlers.confirm(
                        conn,
                        token=token,
                        answer=body.answer,
                        callback_sample=ctx.settings.callback_sample,
                    )
                )

    return router


# ---- what agents do to a ticket: notes, macros, transfers, merges, search, timeline -------


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Text = Field(
        min_length=1,
        max_length=20_000,
        description="For agents only; `@agent_id` tells that agent (an e-mail).",
    )


class MacroIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Line = Field(min_length=1, max_length=100)
    body: Text = Field(
        min_length=1,
        max_length=20_000,
        description="Plain text with variables: {{ learner.name }}, {{ learner.email }}, "
        "{{ ticket.number }}, {{ ticket.subject }}, {{ ticket.category }}, {{ agent.name }}.",
    )
    language: Literal["zh", "en"] | None = None


class Rendered(BaseModel):
    body: str


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    to_agent_id: str | None = Field(None, pattern=AGENT_ID_PATTERN)
    to_team: str | None = Field(None, pattern=TEAM_PATTERN)
    reason: Text = Field(min_length=1, max_length=2000, description="What the new holder reads.")

    @model_validator(mode="after")
    def _somewhere(self) -> "TransferIn":
        if self.to_agent_id is None and self.to_team is None:
            raise ValueError("give to_agent_id, to_team or both")
        return self


class Transferred(BaseModel):
    ticket_id: UUID
    team: str
    assignee_id: str | None
    status: Status


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: str = Field(
        pattern=TICKET_REF_PATTERN,
        description="The ticket that carries on: its id or number.",
    )


class Merged(BaseModel):
    ticket_id: UUID
    merged_into: UUID
    into_number: str
    moved: int


class Found(BaseModel):
    ticket_id: UUID
    number: str
    subject: str
    status: Status
    priority: str | None
    category: str | None
    team: str | None
    assignee_id: str | None
    learner_name: str | None
    channel: str
    created_at: AwareDatetime
    updated_at: AwareDatetime
    archived_at: AwareDatetime | None
    rank: float


def ops_routes(ctx: Context[DeskSettings]) -> APIRouter:
    """Notes, macros, transfers, merges, resolution codes, search and the timeline (issue 9)."""
    router = APIRouter(route_class=Utf8JsonRoute, max_body_size=ctx.settings.http_max_body_bytes)
    links = handlers.links_for(ctx.settings)
    CurrentAgent = Annotated[Caller, Depends(agent_dependency(ctx))]
    MacroId = Annotated[UUID, Path(description="The macro's id.")]

    async def supervisor(agent: CurrentAgent) -> Caller:
        """Supervisors and admins keep the macros; refused before the body is read."""
        if not agent.supervises:
            raise HTTPException(403, "only supervisors and admins manage macros")
        return agent

    Supervisor = Annotated[Caller, Depends(supervisor)]

    @router.post(
        "/v1/tickets/{ticket_id}/notes",
        status_code=201,
        summary="An internal note (agents only); @agent_id mentions are e-mailed",
        responses=problems(400, 401, 403, 404, 413, 503),
    )
    async def add_note(ticket_id: TicketRef, body: NoteIn, agent: CurrentAgent) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                tid = await handlers.ticket_ref(conn, ticket_id)
                return await handlers.add_note(conn, ticket_id=tid, agent=agent, body=body.body)

    @router.get(
        "/v1/tickets/{ticket_id}/timeline",
        summary="Everything the ticket went through, in order (notes included: agents only)",
        responses=problems(401, 404, 503),
    )
    async def timeline(ticket_id: TicketRef, agent: CurrentAgent) -> list[dict[str, Any]]:
        async with ctx.pool.acquire() as conn:
            with as_http():
                tid = await handlers.ticket_ref(conn, ticket_id)
                return await handlers.timeline(conn, ticket_id=tid, agent=agent)

    @router.post(
        "/v1/tickets/{ticket_id}/transfer",
        summary="Hand the ticket to another agent or team, with a reason (R6.2)",
        description="The assignee or a supervisor. To an agent: theirs at once. To a team: it "
        "waits in that team's queue. 409 for a resolved or closed ticket, or a transfer to "
        "where it is; 422 for an unknown agent or team.",
        responses=problems(400, 401, 403, 404, 409, 413, 503),
    )
    async def transfer(ticket_id: TicketRef, body: TransferIn, agent: CurrentAgent) -> Transferred:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                tid = await handlers.ticket_ref(conn, ticket_id)
                done = await handlers.transfer(
                    conn,
                    ticket_id=tid,
                    agent=agent,
                    to_agent_id=body.to_agent_id,
                    to_team=body.to_team,
                    reason=body.reason,
                )
        return Transferred(**done)

    @router.post(
        "/v1/tickets/{ticket_id}/merge",
        summary="Merge this duplicate into another ticket (R6.3)",
        description="Its messages, replies and notes move to `into`; it closes as merged and "
        "the learner is told the number their request continues under. 409 into itself, into "
        "a closed ticket, or from a closed one.",
        responses=problems(400, 401, 403, 404, 409, 413, 503),
    )
    async def merge(ticket_id: TicketRef, body: MergeIn, agent: CurrentAgent) -> Merged:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                tid = await handlers.ticket_ref(conn, ticket_id)
                into = await handlers.ticket_ref(conn, body.into)
                done = await handlers.merge(
                    conn, ticket_id=tid, into_id=into, agent=agent, links=links
                )
        return Merged(**done)

    @router.get(
        "/v1/resolution-codes",
        summary="The codes an agent resolves a ticket with",
        responses=problems(401, 503),
    )
    async def resolution_codes(agent: CurrentAgent) -> list[str]:
        return [c.value for c in RESOLUTION_CODES]

    @router.get(
        "/v1/search",
        summary="Find tickets by number, e-mail, phone, learner name or words (Chinese too)",
        description="Best match first, among the tickets the caller may see (an agent: their "
        "own and their teams'; supervisors and admins: all).",
        responses=problems(401, 503),
    )
    async def search(
        agent: CurrentAgent,
        q: Annotated[Line, Query(min_length=1, max_length=200)],
        limit: Annotated[int, Query(ge=1, le=200), DIGITS] = 50,
    ) -> list[Found]:
        async with ctx.pool.acquire() as conn:
            rows = await handlers.search(conn, agent=agent, q=q, limit=limit)
        return [Found(**r) for r in rows]

    @router.get(
        "/v1/people",
        summary="Every agent (id, name, role, teams) and team: whom to transfer to or mention",
        responses=problems(401, 503),
    )
    async def people(agent: CurrentAgent) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            return await handlers.people(conn)

    @router.get("/v1/macros", summary="Every macro (canned reply)", responses=problems(401, 503))
    async def macros(agent: CurrentAgent) -> list[dict[str, Any]]:
        async with ctx.pool.acquire() as conn:
            return await handlers.list_macros(conn)

    @router.post(
        "/v1/macros",
        status_code=201,
        summary="A new macro (supervisors and admins)",
        description="422 names a template that does not render (bad syntax, unknown variable); "
        "409 for a name another macro has.",
        responses=problems(400, 401, 403, 409, 413, 503),
    )
    async def create_macro(body: MacroIn, agent: Supervisor) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            with as_http():
                return await handlers.save_macro(
                    conn, agent=agent, name=body.name, body=body.body, language=body.language
                )

    @router.put(
        "/v1/macros/{macro_id}",
        summary="Replace a macro (supervisors and admins)",
        responses=problems(400, 401, 403, 404, 409, 413, 503),
    )
    async def update_macro(macro_id: MacroId, body: MacroIn, agent: Supervisor) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            with as_http():
                return await handlers.save_macro(
                    conn,
                    agent=agent,
                    name=body.name,
                    body=body.body,
                    language=body.language,
                    macro_id=macro_id,
                )

    @router.delete(
        "/v1/macros/{macro_id}",
        status_code=204,
        summary="Delete a macro (supervisors and admins)",
        responses=problems(401, 403, 404, 503),
    )
    async def delete_macro(macro_id: MacroId, agent: Supervisor) -> None:
        async with ctx.pool.acquire() as conn:
            with as_http():
                await handlers.delete_macro(conn, agent=agent, macro_id=macro_id)

    @router.post(
        "/v1/tickets/{ticket_id}/macros/{macro_id}/render",
        summary="A macro's text for this ticket, to put in the reply (plain text)",
        responses=problems(401, 403, 404, 503),
    )
    async def render(ticket_id: TicketRef, macro_id: MacroId, agent: CurrentAgent) -> Rendered:
        async with ctx.pool.acquire() as conn:
            with as_http():
                tid = await handlers.ticket_ref(conn, ticket_id)
                text = await handlers.render_macro_for(
                    conn, ticket_id=tid, macro_id=macro_id, agent=agent
                )
        return Rendered(body=text)

    return router
