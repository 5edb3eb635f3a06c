"""Course changes' HTTP API (course operations: supervisors, admins and the course_ops team
announce changes and decide learners' requests; every agent reads them) and the learner's
reply page behind each notice's link."""

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader
from pydantic import BaseModel

from services.incident.changes import repo
from services.incident.changes.domain import COURSE_OPS, ChangeIn, DecisionIn
from services.incident.changes.handlers import Changes, TooMany, words
from services.incident.domain import Conflict, NotFound
from services.incident.settings import IncidentSettings
from shared import people
from shared.agents import Role, bearer_auth
from shared.events import now
from shared.http import Utf8JsonRoute
from shared.params import DIGITS
from shared.problems import pages, problems
from shared.service import Context

_templates = Environment(loader=PackageLoader("services.incident", "templates"), autoescape=True)
HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
MESSAGE_MAX = 5000


class ChangeOut(BaseModel):
    """A change and how far it got: learners targeted, reached (their notice released to
    notify), and replies (tickets linked to it)."""

    change_id: UUID
    number: str
    change_ref: str | None
    course_id: str
    course_title: str | None
    kind: str
    old: str | None
    new: str | None
    reason: str
    reason_en: str | None
    impact: str
    impact_en: str | None
    remedy: str
    remedy_en: str | None
    effective_at: datetime
    by: str
    at: datetime
    learners: int
    reached: int
    replies: int


class ReplyOut(BaseModel):
    ticket_id: UUID
    number: str | None  # the ticket's, once desk created it
    subject: str | None
    learner_name: str | None
    submitted_at: datetime
    linked_at: datetime | None


class RequestOut(BaseModel):
    """A learner's own course change request (a course_change ticket) and its decision."""

    ticket_id: UUID
    number: str | None
    subject: str | None
    course_id: str | None
    created_at: datetime
    decision: str | None
    note: str | None
    by: str | None
    at: datetime | None


class DecisionOut(BaseModel):
    ticket_id: UUID
    decision: str
    note: str
    note_en: str | None
    by: str
    at: datetime


@contextlib.contextmanager
def as_http() -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValueError as exc:  # Unprocessable, ChangeIn.check_at
        raise HTTPException(422, str(exc)) from exc


ChangeId = Annotated[UUID, Path(description="The change's id.")]
TicketId = Annotated[UUID, Path(description="The learner's request ticket.")]
Limit = Annotated[int, Query(ge=1, le=1000), DIGITS]


def http_routes(ctx: Context[IncidentSettings], changes: Changes) -> APIRouter:
    router = APIRouter(route_class=Utf8JsonRoute, max_body_size=ctx.settings.http_max_body_bytes)
    authenticated = bearer_auth(lambda: ctx.pool, people.person_by_token)
    Agent = Annotated[asyncpg.Record, Depends(authenticated)]

    async def course_ops(row: Agent) -> str:
        if Role(row["role"]) in (Role.SUPERVISOR, Role.ADMIN) or COURSE_OPS in row["teams"]:
            return str(row["agent_id"])
        raise HTTPException(
            403,
            "only course operations (the course_ops team), supervisors "
            "and admins announce course changes and decide requests",
        )

    CourseOps = Annotated[str, Depends(course_ops)]

    @router.post("/v1/course-changes", status_code=201, responses=problems(401, 403, 413, 422, 503))
    async def announce(given: ChangeIn, by: CourseOps) -> ChangeOut:
        """Announce a change to a course: every learner enrolled in it is told once on their
        channel, in their language, with the reason, impact, remedy and a reply link."""
        with as_http():
            given.check_at(now())
        row = await changes.announce(given, by=by)
        assert row is not None  # no change_ref: never a repeat
        return await read(row["change_id"])

    async def read(change_id: UUID) -> ChangeOut:
        async with ctx.pool.acquire() as conn:
            row = await repo.change(conn, change_id)
        if row is None:
            raise HTTPException(404, f"no course change {change_id}")
        return ChangeOut(**{k: row[k] for k in ChangeOut.model_fields})

    @router.get("/v1/course-changes", responses=problems(401, 422, 503))
    async def list_changes(_: Agent, limit: Limit = 50) -> list[ChangeOut]:
        """The newest changes with learners targeted, reached and replies."""
        async with ctx.pool.acquire() as conn:
            rows = await repo.changes(conn, limit)
        return [ChangeOut(**{k: r[k] for k in ChangeOut.model_fields}) for r in rows]

    @router.get("/v1/course-changes/{change_id}", responses=problems(401, 404, 422, 503))
    async def get_change(change_id: ChangeId, _: Agent) -> ChangeOut:
        return await read(change_id)

    @router.get("/v1/course-changes/{change_id}/replies", responses=problems(401, 404, 422, 503))
    async def list_replies(change_id: ChangeId, _: Agent) -> list[ReplyOut]:
        """The learners' replies: each a ticket linked to the change."""
        await read(change_id)
        async with ctx.pool.acquire() as conn:
            rows = await repo.replies(conn, change_id, 1000)
        return [ReplyOut(**{k: r[k] for k in ReplyOut.model_fields}) for r in rows]

    @router.get("/v1/course-change-requests", responses=problems(401, 422, 503))
    async def list_requests(_: Agent) -> list[RequestOut]:
        """Learners' own change requests (course_change tickets) with their decisions."""
        async with ctx.pool.acquire() as conn:
            rows = await repo.requests(conn, 200)
        return [RequestOut(**{k: r[k] for k in RequestOut.model_fields}) for r in rows]

    @router.post(
        "/v1/course-change-requests/{ticket_id}/decision",
        status_code=201,
        responses=problems(401, 403, 404, 409, 413, 422, 503),
    )
    async def decide(ticket_id: TicketId, given: DecisionIn, by: CourseOps) -> DecisionOut:
        """Approve or decline the change a learner asked for, once: recorded with who and
        when, noted on the ticket, and the learner told on their channel."""
        with as_http():
            row = await changes.decide(ticket_id, given, by=by)
        return DecisionOut(**{k: row[k] for k in DecisionOut.model_fields})

    return router


def page_routes(ctx: Context[IncidentSettings], changes: Changes) -> APIRouter:
    web = APIRouter(tags=["pages"])

    def render(
        notice: asyncpg.Record | None, *, lang: str, status_code: int = 200, **context: object
    ) -> HTMLResponse:
        change = words(notice, ctx.settings) if notice is not None else None
        html = _templates.get_template("change_reply.html.j2").render(
            lang=lang, change=change, notice=notice, **context
        )
        return HTMLResponse(html, status_code=status_code, headers=HEADERS)

    async def found(token: str) -> asyncpg.Record | None:
        async with ctx.pool.acquire() as conn:
            return await repo.notice_by_token(conn, token)

    @web.get(
        "/changes/reply/{token}",
        response_class=HTMLResponse,
        summary="A learner's page for answering a course change (the link in its notice)",
        responses={**pages(404), **problems(503)},
    )
    async def reply_page(token: str, lang: str | None = None) -> HTMLResponse:
        notice = await found(token)
        language = lang if lang in ("zh", "en") else (notice["locale"] if notice else "zh")
        return render(notice, lang=language, status_code=200 if notice else 404)

    @web.post(
        "/changes/reply/{token}",
        response_class=HTMLResponse,
        summary="The learner's answer: a ticket linked to the change",
        responses={**pages(404, 422, 429), **problems(413, 503)},
    )
    async def reply(token: str, request: Request, lang: str | None = None) -> HTMLResponse:
        form = await request.form()
        message = form.get("message")
        text = message.strip() if isinstance(message, str) else ""
        language = lang if lang in ("zh", "en") else "zh"
        if not text or len(text) > MESSAGE_MAX or "\x00" in text:
            notice = await found(token)
            return render(
                notice, lang=language, status_code=422 if notice else 404, error="message"
            )
        try:
            done = await changes.reply(token, text)
        except TooMany:
            notice = await found(token)
            return render(notice, lang=language, status_code=429, error="too_many")
        if done is None:
            return render(None, lang=language, status_code=404)
        notice, _ = done
        return render(notice, lang=language, sent=True)

    return web
