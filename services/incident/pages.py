"""The public status page (`GET /status`, `GET /status/{number}`): current incidents with
their progress updates, and the last 90 days' history; phones first, Chinese or English, no
JavaScript, everything escaped. Only what an incident's managers marked public is shown."""

from datetime import timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader

from services.incident import repo
from services.incident.settings import IncidentSettings
from shared.events import now
from shared.problems import pages, problems
from shared.service import Context

_templates = Environment(loader=PackageLoader("services.incident", "templates"), autoescape=True)
HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; frame-ancestors 'none'",
    # Learners reload it during an outage: a few seconds of caching spare the database.
    "Cache-Control": "public, max-age=15",
}
HISTORY_DAYS = 90
PageLanguage = Annotated[
    Literal["zh", "en"] | None,
    Query(description="The page's language; else the browser's (Accept-Language), else zh"),
]
Number = Annotated[str, Path(pattern=r"^INC-[0-9]{4,}$", description="The incident's number.")]


def language(lang: str | None, request: Request) -> str:
    if lang:
        return lang
    accepted = request.headers.get("accept-language", "").lower()
    return "en" if accepted.startswith("en") else "zh"


def page_routes(ctx: Context[IncidentSettings]) -> APIRouter:
    web = APIRouter(tags=["pages"])

    async def render(
        conn: asyncpg.Connection,
        *,
        lang: str,
        here: str,
        incidents: list[asyncpg.Record],
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        entries: dict[Any, list[asyncpg.Record]] = {}
        for e in await repo.incidents.timeline(
            conn, [i["incident_id"] for i in incidents], public_only=True
        ):
            entries.setdefault(e["incident_id"], []).append(e)
        html = _templates.get_template("status.html.j2").render(
            lang=lang, here=here, entries=entries, zone=ctx.settings.zone, **context
        )
        return HTMLResponse(html, status_code=status_code, headers=HEADERS)

    @web.get(
        "/status",
        response_class=HTMLResponse,
        summary="The public status page: current incidents and the last 90 days",
        responses=problems(422, 503),
    )
    async def status_page(request: Request, lang: PageLanguage = None) -> HTMLResponse:
        async with ctx.pool.acquire() as conn:
            rows = await repo.incidents.incidents(conn, open_only=False, limit=200)
            since = now() - timedelta(days=HISTORY_DAYS)
            current = [r for r in rows if r["status"] != "resolved"]
            history = [r for r in rows if r["status"] == "resolved" and r["resolved_at"] > since]
            return await render(
                conn,
                lang=language(lang, request),
                here="/status",
                incidents=current + history,
                current=current,
                history=history,
                incident=None,
                missing=False,
            )

    @web.get(
        "/status/{number}",
        response_class=HTMLResponse,
        summary="One incident's page: its progress updates, newest first",
        responses={**pages(404), **problems(422, 503)},
    )
    async def incident_page(
        number: Number, request: Request, lang: PageLanguage = None
    ) -> HTMLResponse:
        async with ctx.pool.acquire() as conn:
            row = await repo.incidents.incident_by_number(conn, number)
            return await render(
                conn,
                lang=language(lang, request),
                here=f"/status/{number}",
                incidents=[row] if row else [],
                status_code=200 if row else 404,
                incident=row,
                missing=row is None,
            )

    return web
