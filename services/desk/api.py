"""desk's JSON API: the agents' tickets, replies and resolutions, and the learner's answer."""

import contextlib
import re
from collections.abc import Iterator
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from services.desk import handlers, repo
from services.desk.domain import Answer, Caller, Conflict, NotAllowed, NotFound, Status
from services.desk.settings import DeskSettings
from shared.agents import Role, bearer_auth
from shared.http import Utf8JsonRoute
from shared.params import DIGITS, QueryBool
from shared.problems import problems
from shared.service import Context
from shared.text import TOKEN_PATTERN, Text


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Text = Field(min_length=1, max_length=20_000, description="What the learner reads.")


class ReplyOut(BaseModel):
    reply_id: UUID
    first_response: bool


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Text = Field(min_length=1, max_length=20_000)


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


def http_routes(ctx: Context[DeskSettings]) -> APIRouter:
    router = APIRouter(route_class=Utf8JsonRoute, max_body_size=ctx.settings.http_max_body_bytes)
    authenticated = bearer_auth(lambda: ctx.pool, repo.agent_by_token)

    async def current_agent(row: Annotated[asyncpg.Record, Depends(authenticated)]) -> Caller:
        return Caller(agent_id=row["agent_id"], name=row["name"], role=Role(row["role"]))

    CurrentAgent = Annotated[Caller, Depends(current_agent)]

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

    @router.get(
        "/v1/tickets/{ticket_id}",
        summary="One ticket with its history",
        responses=problems(401, 403, 404, 503),
    )
    async def ticket_detail(ticket_id: UUID, agent: CurrentAgent) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            with as_http():
                return await handlers.ticket_with_history(conn, ticket_id, agent)

    @router.post(
        "/v1/tickets/{ticket_id}/replies",
        status_code=201,
        summary="Reply to the learner",
        responses=problems(400, 401, 403, 404, 409, 413, 503),
    )
    async def reply(ticket_id: UUID, body: ReplyIn, agent: CurrentAgent) -> ReplyOut:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                reply_id, first = await handlers.reply(
                    conn, ticket_id=ticket_id, agent=agent, body=body.body
                )
        return ReplyOut(reply_id=reply_id, first_response=first)

    @router.post(
        "/v1/tickets/{ticket_id}/resolve",
        summary="Resolve; the learner is asked to confirm",
        responses=problems(400, 401, 403, 404, 409, 413, 503),
    )
    async def resolve(ticket_id: UUID, body: ResolveIn, agent: CurrentAgent) -> ResolveOut:
        async with ctx.pool.acquire() as conn, conn.transaction():
            with as_http():
                await handlers.resolve(
                    conn,
                    ticket_id=ticket_id,
                    agent=agent,
                    resolution=body.resolution,
                    public_url=ctx.settings.public_url,
                )
        return ResolveOut(ticket_id=ticket_id, status=Status.RESOLVED)

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
                    status=await handlers.confirm(conn, token=token, answer=body.answer)
                )

    return router
