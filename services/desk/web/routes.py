"""The workspace's pages: the views, search, the ticket page with everything an agent does to
a ticket, the live feed and the supervisor board.

Pages are rendered on the server (Jinja2, autoescaped: every learner's and agent's word is
text, never markup) and work without script; htmx only refreshes the parts the live feed says
changed. Each form posts to its own address and answers with a redirect to the ticket's page
(Post/Redirect/Get: a reload never sends twice) or, when refused, the page again with the
reason and the draft. What a user may see and do is decided by desk's handlers, as for the
JSON API; a ticket the user may not see is "no such ticket", whatever is typed.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

import asyncpg
import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from jinja2 import Environment, PackageLoader

from services.desk import articles, handlers, presence
from services.desk.accounts import repo as accounts_repo
from services.desk.accounts import security
from services.desk.accounts.web import SESSION_COOKIE, User, require_user
from services.desk.cases import handlers as cases
from services.desk.cases import repo as cases_repo
from services.desk.domain import RESOLUTION_CODES, Caller, Conflict, NotAllowed, NotFound
from services.desk.settings import DeskSettings
from services.desk.web import queries, skills
from services.desk.web.live import CLOSED, Hub, Push, Who
from services.desk.web.text import TEXT, language_of
from services.desk.web.views import (
    OPEN,
    SUPERVISING,
    View,
    beijing,
    conversation,
    countdown,
    event_text,
    next_due,
    presence_of,
    views_for,
)
from shared.agents import Role
from shared.errors import PermanentError
from shared.events import AgentSkills, Category, Priority, now
from shared.forms import FormRefused, read_form
from shared.problems import pages, problems
from shared.service import Context
from shared.text import problem

STATIC = Path(__file__).parent / "static"
MAX_BODY = 20_000
MAX_REASON = 500
_templates = Environment(loader=PackageLoader("services.desk.web", "templates"), autoescape=True)
# No inline script or style anywhere; the live feed and htmx's requests go to desk itself.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
}
KEYS = {View.MINE: "m", View.TEAM: "t", View.REVIEW: "v", View.RISK: "r", View.ALL: "a"}
TO_LOGIN: dict[int | str, dict[str, Any]] = {
    303: {"description": "No session: to /login?next=<this page>"}
}
BACK_TO_TICKET: dict[int | str, dict[str, Any]] = {
    303: {"description": "Done: back to the ticket's page, with a notice"}
}
WORKING = frozenset({"assigned", "pending_learner"})

Page = Annotated[User, Depends(require_user())]
Supervisor = Annotated[User, Depends(require_user(Role.SUPERVISOR, Role.ADMIN))]
# Skills and schedules are an admin's to change, as in routing's admin API (PATCH is admins').
Admin = Annotated[User, Depends(require_user(Role.ADMIN))]


def caller(user: User) -> Caller:
    return Caller(agent_id=user.agent_id, name=user.name, role=user.role, teams=user.teams)


def safe_url(url: Any) -> str | None:
    """A link's address when it is http(s); anything else (javascript:, data:) is not linked."""
    return url if isinstance(url, str) and url.lower().startswith(("https://", "http://")) else None


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """desk's refusals as the Refusal a page shows."""
    try:
        yield
    except NotFound as exc:
        raise Refusal(404, "not_found") from exc
    except NotAllowed as exc:
        raise Refusal(403, "conflict", str(exc)) from exc
    except Conflict as exc:
        raise Refusal(409, "conflict", str(exc)) from exc
    except PermanentError as exc:  # desk's Invalid: a field a handler refused
        raise Refusal(422, "conflict", str(exc)) from exc


class Refusal(Exception):
    def __init__(self, status: int, key: str, reason: str = "") -> None:
        self.status = status
        self.key = key
        self.reason = reason


def refused(user: User, exc: FormRefused | Refusal) -> str:
    """What a page says, in the user's language, of a form it refused."""
    errors = TEXT[language_of(user.language)]["errors"]
    if isinstance(exc, FormRefused):
        return str(errors["form"])
    return str(errors[exc.key]).format(reason=exc.reason)


def read_capacity(raw: str) -> int | None:
    """A capacity typed on the board: blank (unchanged) or a whole number in range."""
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > presence.MAX_CAPACITY:
        raise Refusal(422, "capacity")
    return int(raw)


def read_score(raw: str) -> int | None:
    """A satisfaction score chosen on a form: none, or 1 to 5."""
    if not raw:
        return None
    if raw not in ("1", "2", "3", "4", "5"):
        raise Refusal(422, "score")
    return int(raw)


def parse_uuid(raw: str) -> UUID:
    """An id a form carries back; anything else is a case that does not exist."""
    try:
        return UUID(raw)
    except ValueError:
        raise Refusal(404, "not_found") from None


def read_text(form: Mapping[str, str], name: str, *, limit: int = MAX_BODY) -> str:
    """A text field as stored: CRLF as LF, trimmed, present, not too long, storable."""
    value = form.get(name, "").replace("\r\n", "\n").strip()
    if not value:
        raise Refusal(422, "empty")
    if len(value) > limit:
        raise Refusal(422, "too_long")
    if problem(value, multiline=limit == MAX_BODY):
        raise Refusal(422, "text")
    return value


def routes(ctx: Context[DeskSettings], hub: Hub) -> APIRouter:
    """The workspace's pages; `hub` is the live feed's reader, whose `keep` desk runs as a
    background task of its lifespan."""
    settings = ctx.settings
    links = handlers.links_for(settings)
    seen = presence.Seen()
    router = APIRouter(tags=["workspace"], max_body_size=settings.http_max_body_bytes)

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = _templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def words(user: User) -> dict[str, Any]:
        return TEXT[language_of(user.language)]

    async def frame(
        conn: asyncpg.Connection, user: User, request: Request, current: str
    ) -> dict[str, Any]:
        """What every page's frame shows: the user, the views with their counts. A page
        shown is the user at work: routing hears of it (`presence.Seen`)."""
        await seen.note(conn, user.agent_id)
        counts = await queries.view_counts(
            conn, agent_id=user.agent_id, role=user.role, teams=user.teams
        )
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return {
            "user": user,
            "lang": language_of(user.language),
            "t": words(user),
            "views": views_for(user.role),
            "counts": counts,
            "keys": KEYS,
            "current": current,
            "supervising": user.role in SUPERVISING,
            "here": here,
        }

    def due_of(row: Mapping[str, Any], at: datetime) -> dict[str, Any] | None:
        due = next_due(row, at)
        if due is None:
            return None
        return {
            "target": due.target,
            "state": due.state.value,
            "iso": due.due_at.isoformat(),
            "when": beijing(due.due_at),
            "left": countdown(due.seconds_left),
        }

    def with_due(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
        at = now()
        return [{**dict(r), "due": due_of(r, at)} for r in rows]

    @router.get(
        "/",
        summary="Workspace: the start page, the user's own tickets",
        status_code=303,
        responses={303: {"description": "To /views/mine, or /login without a session"}},
    )
    async def home(_: Page) -> RedirectResponse:
        return RedirectResponse("/views/mine", status_code=303)

    @router.get(
        "/views/{view}",
        response_class=HTMLResponse,
        summary="Workspace: a view's tickets (mine, team, review, risk, all)",
        responses={**TO_LOGIN, **pages(403, 404), **problems(503)},
    )
    async def view_page(view: str, request: Request, user: Page) -> HTMLResponse:
        t = words(user)
        async with ctx.pool.acquire() as conn:
            base = await frame(conn, user, request, view)
            if view not in {v.value for v in views_for(user.role)}:
                return render("missing.html.j2", 404, **base, message=t["errors"]["not_found"])
            rows = await queries.view_tickets(
                conn, View(view), agent_id=user.agent_id, role=user.role, teams=user.teams
            )
        return render(
            "list.html.j2",
            **base,
            heading=t["views"][view],
            rows=with_due(rows),
            empty=t["no_tickets"],
        )

    @router.get(
        "/workspace/nav",
        response_class=HTMLResponse,
        summary="Workspace: the views with their counts (the live feed reloads it)",
        responses={**TO_LOGIN, **problems(503)},
    )
    async def nav(
        request: Request,
        user: Page,
        current: Annotated[str, Query(max_length=20)] = "",
    ) -> HTMLResponse:
        async with ctx.pool.acquire() as conn:
            base = await frame(conn, user, request, current)
        return render("_nav.html.j2", **base)

    @router.get(
        "/search",
        response_class=HTMLResponse,
        summary="Workspace: search tickets by number, learner, e-mail, phone or text",
        responses={**TO_LOGIN, **problems(503)},
    )
    async def search_page(
        request: Request,
        user: Page,
        q: Annotated[str, Query(max_length=200)] = "",
    ) -> HTMLResponse:
        t = words(user)
        query = q.strip()
        async with ctx.pool.acquire() as conn:
            base = await frame(conn, user, request, "search")
            rows = (
                await handlers.search(conn, agent=caller(user), q=query)
                if query and not problem(query, multiline=False)
                else []
            )
        return render(
            "list.html.j2",
            **base,
            query=query,
            heading=f"{t['views']['search']}: {query}" if query else t["views"]["search"],
            rows=with_due([{**r, "learner_name": r.get("learner_name")} for r in rows]),
            empty=t["no_results"] if query else t["search_hint"],
        )

    async def ticket_of(conn: asyncpg.Connection, ref: str, user: User) -> asyncpg.Record:
        """The ticket `ref` names (number or id) if the user may see it; else Refusal 404."""
        with refusals():
            ticket_id = await handlers.ticket_ref(conn, ref[:64])
        row = await queries.visible_ticket(
            conn, ticket_id, agent_id=user.agent_id, role=user.role, teams=user.teams
        )
        if row is None:
            raise Refusal(404, "not_found")
        return row

    async def items_of(conn: asyncpg.Connection, ticket_id: UUID, user: User) -> list[Any]:
        t = words(user)
        rows = await handlers.timeline(conn, ticket_id=ticket_id, agent=caller(user))
        out = []
        for item in conversation(
            [
                {**r, "author": r.get("actor_name") or r.get("actor")}
                for r in rows
                if r["kind"] != "event" or r["body"] != "created"
            ]
        ):
            learner = item.kind in ("description", "message")
            out.append(
                {
                    "kind": item.kind,
                    "iso": item.at.isoformat(),
                    "when": beijing(item.at),
                    "who": item.author or (t["ticket"]["you"] if learner else ""),
                    "channel": t["channel"].get(item.channel, item.channel) if learner else None,
                    "body": item.body,
                    "text": event_text(item, t) if item.kind == "event" else None,
                    "link": safe_url(item.detail.get("url")) if item.kind == "event" else None,
                    "reply_id": item.detail.get("reply_id") if item.kind == "reply" else None,
                    "author": item.author,
                    "attachments": [
                        {"name": a.get("name"), "url": safe_url(a.get("url"))}
                        for a in item.attachments
                    ],
                }
            )
        return out

    async def show_ticket(
        request: Request,
        user: User,
        ref: str,
        *,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
        draft: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        t = words(user)
        async with ctx.pool.acquire() as conn:
            base = await frame(conn, user, request, "")
            try:
                ticket = await ticket_of(conn, ref, user)
            except Refusal:
                return render("missing.html.j2", 404, **base, message=t["errors"]["not_found"])
            items = await items_of(conn, ticket["ticket_id"], user)
            earlier = await queries.earlier_tickets(
                conn, ticket, agent_id=user.agent_id, role=user.role, teams=user.teams
            )
            people = await handlers.people(conn)
            macros = await handlers.list_macros(conn)
        lang = language_of(user.language)
        mine = ticket["assignee_id"] == user.agent_id or user.role in SUPERVISING
        return render(
            "ticket.html.j2",
            status,
            **base,
            ticket=ticket,
            due=due_of(ticket, now()),
            items=items,
            learner=ticket["learner"] or {},
            context=ticket["learner_context"],
            earlier=earlier,
            suggestions=[
                {"title": a.get("title"), "url": url}
                for a in ticket["suggested_articles"] or ()
                if (url := safe_url(a.get("url")))
            ],
            people=people,
            macros=[m for m in macros if m.get("language") in (None, lang)] or macros,
            created=beijing(ticket["created_at"]),
            workable=mine and ticket["status"] in WORKING,
            open=ticket["status"] in OPEN,
            resolution_codes=[c.value for c in RESOLUTION_CODES],
            notice=t["notices"].get(notice or ""),
            error=error,
            draft=draft or {},
            max_body=MAX_BODY,
        )

    @router.get(
        "/tickets/{ref}",
        response_class=HTMLResponse,
        summary="Workspace: a ticket's page (conversation, learner card, actions)",
        responses={**TO_LOGIN, **pages(404), **problems(503)},
    )
    async def ticket_page(
        ref: str,
        request: Request,
        user: Page,
        notice: Annotated[str | None, Query(max_length=20)] = None,
    ) -> HTMLResponse:
        return await show_ticket(request, user, ref, notice=notice)

    @router.get(
        "/tickets/{ref}/conversation",
        response_class=HTMLResponse,
        summary="Workspace: a ticket's conversation (the live feed reloads it)",
        responses={**TO_LOGIN, **pages(404), **problems(503)},
    )
    async def ticket_conversation(ref: str, user: Page) -> HTMLResponse:
        t = words(user)
        async with ctx.pool.acquire() as conn:
            try:
                ticket = await ticket_of(conn, ref, user)
            except Refusal:
                return render("_missing.html.j2", 404, t=t, message=t["errors"]["not_found"])
            items = await items_of(conn, ticket["ticket_id"], user)
        return render("_conversation.html.j2", t=t, items=items, user=user, ticket=ticket)

    @router.get(
        "/tickets/{ref}/macros/{macro_id}",
        response_class=PlainTextResponse,
        summary="Workspace: a macro's text for this ticket, to insert into the reply",
        responses={**TO_LOGIN, **pages(404, 422), **problems(503)},
    )
    async def macro_text(ref: str, macro_id: UUID, user: Page) -> Response:
        async with ctx.pool.acquire() as conn:
            try:
                ticket = await ticket_of(conn, ref, user)
                with refusals():
                    text = await handlers.render_macro_for(
                        conn, ticket_id=ticket["ticket_id"], macro_id=macro_id, agent=caller(user)
                    )
            except Refusal as exc:
                return PlainTextResponse(exc.reason or exc.key, status_code=exc.status)
        return PlainTextResponse(text, headers={"Cache-Control": "no-store"})

    async def act(request: Request, user: User, ref: str, draft_key: str, action: Any) -> Response:
        """Run `action(conn, ticket, form)` on a ticket the user may see, in one
        transaction; back to the ticket's page with the action's notice, or the page again
        with why it was refused (and what was typed)."""
        form: dict[str, str] = {}
        try:
            form = await read_form(request)
            async with ctx.pool.acquire() as conn, conn.transaction():
                ticket = await ticket_of(conn, ref, user)
                with refusals():
                    notice, number = await action(conn, ticket, form)
        except (FormRefused, Refusal) as exc:
            return await show_ticket(
                request,
                user,
                ref,
                status=exc.status,
                error=refused(user, exc),
                draft={draft_key: form.get("body") or form.get("resolution") or ""},
            )
        query = urlencode({"notice": notice})
        return RedirectResponse(f"/tickets/{number}?{query}", status_code=303, headers=HEADERS)

    form_responses = {**BACK_TO_TICKET, **pages(400, 403, 404, 409, 415, 422), **problems(413, 503)}

    @router.post(
        "/tickets/{ref}/reply",
        response_class=HTMLResponse,
        summary="Workspace: reply to the learner (sent on the ticket's channel)",
        responses=form_responses,
    )
    async def post_reply(ref: str, request: Request, user: Page) -> Response:
        async def reply(conn: asyncpg.Connection, ticket: Any, form: Mapping[str, str]) -> Any:
            await handlers.reply(
                conn,
                ticket_id=ticket["ticket_id"],
                agent=caller(user),
                body=read_text(form, "body"),
                links=links,
            )
            return "replied", ticket["number"]

        return await act(request, user, ref, "reply", reply)

    @router.post(
        "/tickets/{ref}/note",
        response_class=HTMLResponse,
        summary="Workspace: an internal note (@agent tells them)",
        responses=form_responses,
    )
    async def post_note(ref: str, request: Request, user: Page) -> Response:
        async def note(conn: asyncpg.Connection, ticket: Any, form: Mapping[str, str]) -> Any:
            await handlers.add_note(
                conn,
                ticket_id=ticket["ticket_id"],
                agent=caller(user),
                body=read_text(form, "body"),
            )
            return "noted", ticket["number"]

        return await act(request, user, ref, "note", note)

    @router.post(
        "/tickets/{ref}/transfer",
        response_class=HTMLResponse,
        summary="Workspace: transfer to a team or an agent, with a reason",
        responses=form_responses,
    )
    async def post_transfer(ref: str, request: Request, user: Page) -> Response:
        async def transfer(conn: asyncpg.Connection, ticket: Any, form: Mapping[str, str]) -> Any:
            kind, _, target = form.get("to", "").partition(":")
            if kind not in ("team", "agent") or not target:
                raise Refusal(422, "choose")
            await handlers.transfer(
                conn,
                ticket_id=ticket["ticket_id"],
                agent=caller(user),
                to_agent_id=target if kind == "agent" else None,
                to_team=target if kind == "team" else None,
                reason=read_text(form, "reason", limit=MAX_REASON),
            )
            return "transferred", ticket["number"]

        return await act(request, user, ref, "transfer", transfer)

    @router.post(
        "/tickets/{ref}/merge",
        response_class=HTMLResponse,
        summary="Workspace: merge this duplicate into another ticket",
        responses=form_responses,
    )
    async def post_merge(ref: str, request: Request, user: Page) -> Response:
        async def merge(conn: asyncpg.Connection, ticket: Any, form: Mapping[str, str]) -> Any:
            into = await ticket_of(conn, read_text(form, "into", limit=64), user)
            done = await handlers.merge(
                conn,
                ticket_id=ticket["ticket_id"],
                into_id=into["ticket_id"],
                agent=caller(user),
                links=links,
            )
            return "merged", done["into_number"]

        return await act(request, user, ref, "merge", merge)

    @router.post(
        "/tickets/{ref}/retriage",
        response_class=HTMLResponse,
        summary="Workspace: change the category or priority, with a reason",
        responses=form_responses,
    )
    async def post_retriage(ref: str, request: Request, user: Page) -> Response:
        async def retriage(conn: asyncpg.Connection, ticket: Any, form: Mapping[str, str]) -> Any:
            try:
                category = Category(form.get("category", ""))
                priority = Priority(form.get("priority", ""))
            except ValueError:
                raise Refusal(422, "choose") from None
            await handlers.retriage(
                conn,
                ticket_id=ticket["ticket_id"],
                agent=caller(user),
                category=None if category == ticket["category"] else category,
                priority=None if priority == ticket["priority"] else priority,
                reason=read_text(form, "reason", limit=MAX_REASON),
            )
            return "retriaged", ticket["number"]

        return await act(request, user, ref, "retriage", retriage)

    @router.post(
        "/tickets/{ref}/pending",
        response_class=HTMLResponse,
        summary="Workspace: wait on the learner (the SLA clocks pause)",
        responses=form_responses,
    )
    async def post_pending(ref: str, request: Request, user: Page) -> Response:
        async def pending(conn: asyncpg.Connection, ticket: Any, _: Mapping[str, str]) -> Any:
            await handlers.set_pending(conn, ticket_id=ticket["ticket_id"], agent=caller(user))
            return "pending", ticket["number"]

        return await act(request, user, ref, "pending", pending)

    @router.post(
        "/tickets/{ref}/article",
        response_class=HTMLResponse,
        summary="Workspace: make a draft article in knowledge from one of the ticket's replies",
        description="Sent to knowledge (article.draft_requested), which makes it the user's "
        "draft; the ticket's conversation shows it, with its page, once made. Once per reply "
        "and user: asked again, it is the same draft.",
        responses=form_responses,
    )
    async def post_article(ref: str, request: Request, user: Page) -> Response:
        async def draft(conn: asyncpg.Connection, ticket: Any, form: Mapping[str, str]) -> Any:
            try:
                reply_id = UUID(form.get("reply", ""))
            except ValueError:
                raise Refusal(422, "choose") from None
            if (
                await articles.request_draft(
                    conn, ticket=ticket, reply_id=reply_id, by=user.agent_id
                )
                is None
            ):
                raise Refusal(404, "no_reply")
            return "drafting", ticket["number"]

        return await act(request, user, ref, "article", draft)

    @router.post(
        "/tickets/{ref}/resolve",
        response_class=HTMLResponse,
        summary="Workspace: resolve with a resolution code; the learner is asked to confirm",
        responses=form_responses,
    )
    async def post_resolve(ref: str, request: Request, user: Page) -> Response:
        async def resolve(conn: asyncpg.Connection, ticket: Any, form: Mapping[str, str]) -> Any:
            code = next(
                (c for c in RESOLUTION_CODES if c.value == form.get("resolution_code")), None
            )
            if code is None:
                raise Refusal(422, "choose")
            await handlers.resolve(
                conn,
                ticket_id=ticket["ticket_id"],
                agent=caller(user),
                resolution=read_text(form, "resolution"),
                resolution_code=code,
                public_url=settings.public_url,
                links=links,
            )
            return "resolved", ticket["number"]

        return await act(request, user, ref, "resolve", resolve)

    @router.post(
        "/workspace/language",
        summary="Workspace: the user's language (zh or en), kept on their account",
        status_code=303,
        responses={**pages(400, 403, 415, 422), **problems(413, 503)},
    )
    async def language(request: Request, user: Page) -> Response:
        try:
            form = await read_form(request)
        except FormRefused as exc:
            return PlainTextResponse(exc.reason, status_code=exc.status)
        chosen = form.get("language")
        if chosen not in ("zh", "en"):
            return PlainTextResponse("language must be zh or en", status_code=422)
        async with ctx.pool.acquire() as conn, conn.transaction():
            await accounts_repo.update_user(
                conn, actor=user.agent_id, agent_id=user.agent_id, fields={"language": chosen}
            )
        back = form.get("next", "/")
        local = back if back.startswith("/") and not back.startswith("//") else "/"
        return RedirectResponse(local, status_code=303)

    async def show_board(
        request: Request,
        user: User,
        *,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
    ) -> HTMLResponse:
        t = words(user)
        async with ctx.pool.acquire() as conn:
            base = await frame(conn, user, request, "board")
            agents = await queries.agents_load(conn)
            depth = await queries.queue_depth(conn)
            rows = await queries.view_tickets(
                conn, View.RISK, agent_id=user.agent_id, role=user.role, teams=user.teams
            )
        queues: dict[str, dict[str, int]] = {}
        for d in depth:
            queues.setdefault(d["team"] or "—", {})[d["priority"]] = d["depth"]
        at = now()
        return render(
            "board.html.j2",
            status,
            **base,
            agents=[
                {**a, "presence": presence_of(a, at).value, "last_seen": beijing(a["last_seen_at"])}
                for a in agents
            ],
            queues=queues,
            rows=with_due(rows),
            empty=t["no_tickets"],
            notice=t["board_page"][notice] if notice in ("reassigned", "requested") else None,
            error=error,
        )

    @router.get(
        "/board",
        response_class=HTMLResponse,
        summary="Workspace: the supervisor board (agents' load, queues, tickets at risk)",
        responses={**TO_LOGIN, **pages(403), **problems(503)},
    )
    async def board(
        request: Request,
        user: Supervisor,
        notice: Annotated[str | None, Query(max_length=20)] = None,
    ) -> HTMLResponse:
        return await show_board(request, user, notice=notice)

    @router.post(
        "/board/reassign",
        response_class=HTMLResponse,
        summary="Workspace: a supervisor hands a ticket to an agent, with a reason",
        responses={
            303: {"description": "Done: back to the board"},
            **pages(400, 403, 404, 409, 415, 422),
            **problems(413, 503),
        },
    )
    async def reassign(request: Request, user: Supervisor) -> Response:
        try:
            form = await read_form(request)
            async with ctx.pool.acquire() as conn, conn.transaction():
                ticket = await ticket_of(conn, form.get("ticket", ""), user)
                with refusals():
                    await handlers.transfer(
                        conn,
                        ticket_id=ticket["ticket_id"],
                        agent=caller(user),
                        to_agent_id=form.get("agent") or None,
                        to_team=None,
                        reason=read_text(form, "reason", limit=MAX_REASON),
                    )
        except (FormRefused, Refusal) as exc:
            return await show_board(request, user, status=exc.status, error=refused(user, exc))
        return RedirectResponse("/board?notice=reassigned", status_code=303, headers=HEADERS)

    @router.post(
        "/board/agents",
        response_class=HTMLResponse,
        summary="Workspace: a supervisor sets an agent online/offline or changes their capacity",
        description="Sent to routing (agent.change_requested), which applies it and audits it "
        "as the supervisor; the board shows it once routing's next status arrives.",
        responses={
            303: {"description": "Sent: back to the board"},
            **pages(400, 403, 404, 415, 422),
            **problems(413, 503),
        },
    )
    async def change_agent(request: Request, user: Supervisor) -> Response:
        try:
            form = await read_form(request)
            choice = form.get("online", "")
            if choice not in ("", "online", "offline"):
                raise Refusal(422, "choose")
            online = None if choice == "" else choice == "online"
            capacity = read_capacity(form.get("capacity", ""))
            if online is None and capacity is None:
                raise Refusal(422, "choose")
            async with ctx.pool.acquire() as conn, conn.transaction():
                sent = await presence.request_change(
                    conn,
                    agent_id=form.get("agent", ""),
                    online=online,
                    capacity=capacity,
                    by=user.agent_id,
                )
            if not sent:
                raise Refusal(404, "no_agent")
        except (FormRefused, Refusal) as exc:
            return await show_board(request, user, status=exc.status, error=refused(user, exc))
        return RedirectResponse("/board?notice=requested", status_code=303, headers=HEADERS)

    async def show_callbacks(
        request: Request,
        user: User,
        *,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
    ) -> HTMLResponse:
        """The call-backs due (R9.3): an agent's own tickets', every one for supervisors."""
        t = words(user)
        async with ctx.pool.acquire() as conn:
            base = await frame(conn, user, request, "callbacks")
            rows = await cases_repo.callbacks(
                conn,
                assignee_id=None if user.role in SUPERVISING else user.agent_id,
                limit=200,
            )
        learners = [
            msgspec.json.decode(r["learner"]) if isinstance(r["learner"], str) else r["learner"]
            for r in rows
        ]
        return render(
            "callbacks.html.j2",
            status,
            **base,
            rows=[
                {
                    **dict(r),
                    "learner": learner,
                    "due": beijing(r["callback_due_at"]),
                    "closed": beijing(r["closed_at"]),
                }
                for r, learner in zip(rows, learners, strict=True)
            ],
            notice=t["callbacks"][notice] if notice in ("recorded", "again") else None,
            error=error,
        )

    @router.get(
        "/callbacks",
        response_class=HTMLResponse,
        summary="Workspace: the call-backs due (closed complaints and sampled closed tickets)",
        responses={**TO_LOGIN, **problems(503)},
    )
    async def callbacks_page(
        request: Request,
        user: Page,
        notice: Annotated[str | None, Query(max_length=20)] = None,
    ) -> HTMLResponse:
        return await show_callbacks(request, user, notice=notice)

    @router.post(
        "/callbacks/{ref}",
        response_class=HTMLResponse,
        summary="Workspace: record a call-back made (reached or not, a score, what was said)",
        responses={
            303: {"description": "Done: back to the call-backs"},
            **pages(400, 403, 404, 409, 415, 422),
            **problems(413, 503),
        },
    )
    async def record_callback(ref: str, request: Request, user: Page) -> Response:
        try:
            form = await read_form(request)
            reached = form.get("reached") != "no"
            score = read_score(form.get("score", ""))
            if score is not None and not reached:
                raise Refusal(422, "score_unreached")
            outcome = read_text(form, "outcome")
            async with ctx.pool.acquire() as conn, conn.transaction():
                ticket = await ticket_of(conn, ref, user)
                with refusals():
                    case_id = form.get("case", "")
                    if case_id:
                        made = await cases.record_callback(
                            conn,
                            case_id=parse_uuid(case_id),
                            agent=caller(user),
                            reached=reached,
                            score=score,
                            outcome=outcome,
                            retry=settings.callback_retry,
                        )
                    else:
                        made = await cases.record_ticket_callback(
                            conn,
                            ticket_id=ticket["ticket_id"],
                            agent=caller(user),
                            reached=reached,
                            score=score,
                            outcome=outcome,
                            retry=settings.callback_retry,
                        )
        except (FormRefused, Refusal) as exc:
            return await show_callbacks(request, user, status=exc.status, error=refused(user, exc))
        notice = "recorded" if made["done"] else "again"
        return RedirectResponse(f"/callbacks?notice={notice}", status_code=303, headers=HEADERS)

    async def show_skills(
        request: Request,
        user: User,
        agent_id: str,
        *,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
        values: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        t = words(user)
        async with ctx.pool.acquire() as conn:
            base = await frame(conn, user, request, "board")
            found = [a for a in await queries.agents_load(conn) if a["agent_id"] == agent_id]
        if not found:
            return render("missing.html.j2", 404, **base, message=t["errors"]["no_agent"])
        (agent,) = found
        known = msgspec.convert(agent["skills"], AgentSkills) if agent["skills"] else None
        return render(
            "skills.html.j2",
            status,
            **base,
            agent=agent,
            known=known,
            values=values if values is not None else (skills.as_form(known) if known else {}),
            choices=skills.CHOICES,
            days=skills.DAYS,
            zones=skills.ZONES,
            editable=user.role is Role.ADMIN,
            notice=t["skills_page"]["requested"] if notice == "requested" else None,
            error=error,
        )

    @router.get(
        "/board/agents/{agent_id}",
        response_class=HTMLResponse,
        summary="Workspace: an agent's skills and weekly schedule (supervisors see, admins change)",
        responses={**TO_LOGIN, **pages(403, 404), **problems(503)},
    )
    async def agent_skills(
        agent_id: Annotated[str, PathParam(max_length=50)],
        request: Request,
        user: Supervisor,
        notice: Annotated[str | None, Query(max_length=20)] = None,
    ) -> HTMLResponse:
        return await show_skills(request, user, agent_id, notice=notice)

    @router.post(
        "/board/agents/{agent_id}/skills",
        response_class=HTMLResponse,
        summary="Workspace: an admin changes an agent's skills and weekly schedule",
        description="Checked by routing's admin rules, then sent to routing "
        "(agent.change_requested), which applies it and audits it as the admin; the page shows "
        "it once routing's next status arrives.",
        responses={
            303: {"description": "Sent: back to the agent's page"},
            **pages(400, 403, 404, 415, 422),
            **problems(413, 503),
        },
    )
    async def change_skills(
        agent_id: Annotated[str, PathParam(max_length=50)], request: Request, user: Admin
    ) -> Response:
        t = words(user)
        try:
            form = await read_form(request)
        except FormRefused as exc:
            return await show_skills(
                request, user, agent_id, status=exc.status, error=t["errors"]["form"]
            )
        try:
            wanted = skills.read(form, t["skills_page"])
        except skills.SkillsRefused as exc:
            return await show_skills(
                request, user, agent_id, status=422, error=exc.message, values=form
            )
        async with ctx.pool.acquire() as conn, conn.transaction():
            sent = await presence.request_change(
                conn, agent_id=agent_id, skills=wanted, by=user.agent_id
            )
        if not sent:
            return await show_skills(request, user, agent_id, status=404)
        return RedirectResponse(
            f"/board/agents/{agent_id}?notice=requested", status_code=303, headers=HEADERS
        )

    # ---- one's own account: password, sessions, API tokens (as /v1/account/* does) ----------

    async def show_account(
        request: Request,
        user: User,
        *,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
        new_token: str | None = None,
    ) -> HTMLResponse:
        t = words(user)
        async with ctx.pool.acquire() as conn:
            base = await frame(conn, user, request, "account")
            tokens = await accounts_repo.tokens(conn, user.agent_id)
        return render(
            "account.html.j2",
            status,
            **base,
            tokens=[
                {
                    **dict(r),
                    "created": beijing(r["created_at"]),
                    "used": beijing(r["last_used_at"]) if r["last_used_at"] else None,
                }
                for r in reversed(tokens)
            ],
            min_password=security.MIN_PASSWORD,
            max_password=security.MAX_PASSWORD,
            notice=t["account_page"][notice] if notice in ("changed", "revoked") else None,
            error=error,
            new_token=new_token,
        )

    @router.get(
        "/account",
        response_class=HTMLResponse,
        summary="Workspace: one's own account (password, log out everywhere, API tokens)",
        responses={**TO_LOGIN, **problems(503)},
    )
    async def account(
        request: Request,
        user: Page,
        notice: Annotated[str | None, Query(max_length=20)] = None,
    ) -> HTMLResponse:
        return await show_account(request, user, notice=notice)

    account_form = {
        303: {"description": "Done: back to the account page, with a notice"},
        **pages(400, 403, 415, 422),
        **problems(413, 503),
    }

    @router.post(
        "/account/password",
        response_class=HTMLResponse,
        summary="Workspace: change one's own password (the current one required)",
        description="One's other sessions end; this one stays. A wrong current password: 403.",
        responses=account_form,
    )
    async def change_password(request: Request, user: Page) -> Response:
        said = words(user)["account_page"]
        try:
            form = await read_form(request)
        except FormRefused as exc:
            return await show_account(
                request, user, status=exc.status, error=words(user)["errors"]["form"]
            )
        new = form.get("new", "")
        refusal = None
        if new != form.get("again", ""):
            refusal = said["mismatch"]
        elif len(new) < security.MIN_PASSWORD:
            refusal = said["too_short"].format(min=security.MIN_PASSWORD)
        elif len(new) > security.MAX_PASSWORD:
            refusal = said["too_long"].format(max=security.MAX_PASSWORD)
        if refusal:
            return await show_account(request, user, status=422, error=refusal)
        async with ctx.pool.acquire() as conn:
            stored = await accounts_repo.password_hash(conn, user.agent_id)
        current = form.get("current", "")[: security.MAX_PASSWORD]
        if not await asyncio.to_thread(security.verify_password, stored, current):
            return await show_account(request, user, status=403, error=said["wrong"])
        hashed = await asyncio.to_thread(security.hash_password, new)
        async with ctx.pool.acquire() as conn, conn.transaction():
            await accounts_repo.set_password(
                conn,
                actor=user.agent_id,
                agent_id=user.agent_id,
                password_hash=hashed,
                keep_session=security.digest(request.cookies[SESSION_COOKIE]),
            )
        return RedirectResponse("/account?notice=changed", status_code=303, headers=HEADERS)

    @router.post(
        "/account/tokens",
        response_class=HTMLResponse,
        summary="Workspace: a new personal API token, shown on this answer only",
        description="200: the account page with the token's value, this once (never stored: "
        "only its SHA-256 is kept, and the page is not cached).",
        responses={**pages(400, 403, 415, 422), **problems(413, 503)},
    )
    async def new_token(request: Request, user: Page) -> HTMLResponse:
        try:
            form = await read_form(request)
            name = read_text(form, "name", limit=100)
        except (FormRefused, Refusal) as exc:
            return await show_account(request, user, status=exc.status, error=refused(user, exc))
        token = security.new_secret()
        async with ctx.pool.acquire() as conn, conn.transaction():
            await accounts_repo.add_token(conn, agent_id=user.agent_id, name=name, token=token)
        return await show_account(request, user, new_token=token)

    @router.post(
        "/account/tokens/{token_id}/revoke",
        response_class=HTMLResponse,
        summary="Workspace: revoke one of one's API tokens; it stops working at once",
        responses={
            303: {"description": "Done: back to the account page, with a notice"},
            **pages(403, 404),
            **problems(422, 503),
        },
    )
    async def revoke_token(token_id: UUID, request: Request, user: Page) -> Response:
        async with ctx.pool.acquire() as conn, conn.transaction():
            done = await accounts_repo.revoke_token(
                conn, actor=user.agent_id, agent_id=user.agent_id, token_id=token_id
            )
        if not done:
            error = words(user)["account_page"]["no_token"]
            return await show_account(request, user, status=404, error=error)
        return RedirectResponse("/account?notice=revoked", status_code=303, headers=HEADERS)

    @router.get(
        "/workspace/live",
        response_class=EventSourceResponse,
        summary="Workspace: live feed (server-sent events) of the user's tickets",
        description="`refresh` when a ticket the user may see changed; `ticket-<id>` for that "
        "ticket's page; `toast` (an HTML line) for what is addressed to them: a new "
        "assignment, the learner's reply, an SLA warning or breach, an @mention.",
        responses={**TO_LOGIN, **problems(503)},
    )
    async def live(user: Page) -> AsyncIterator[ServerSentEvent]:
        t = words(user)
        who = Who(agent_id=user.agent_id, role=user.role, teams=user.teams)
        async with hub.listen(who) as queue:
            yield ServerSentEvent(comment="ready")
            while True:
                # The feed held open is the workspace open: routing hears of it every minute.
                push: Push | None = None
                try:
                    async with asyncio.timeout(presence.SEEN_EVERY.seconds):
                        push = await queue.get()
                    if push is CLOSED:
                        return  # desk is stopping
                except TimeoutError:
                    pass  # nothing for them this minute
                if seen.due(user.agent_id):
                    async with ctx.pool.acquire() as conn:
                        await seen.note(conn, user.agent_id)
                if push is None:
                    continue
                yield ServerSentEvent(event="refresh", raw_data=push.number or "1")
                yield ServerSentEvent(event=f"ticket-{push.ticket_id}", raw_data="1")
                if user.agent_id in push.direct and push.kind != "changed":
                    text = t["live"][push.kind].format(
                        number=push.number, subject=push.subject, team=push.team or ""
                    )
                    tone = {"sla": "warn", "breached": "bad"}.get(push.kind, "")
                    html = _templates.get_template("_toast.html.j2").render(
                        number=push.number, text=text, tone=tone
                    )
                    yield ServerSentEvent(event="toast", raw_data=html.strip())

    return router
