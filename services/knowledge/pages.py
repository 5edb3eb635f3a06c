"""The learners' article page (`GET /kb/{id}`) and its "helpful / not helpful" form.

The page works on a phone without JavaScript, in Chinese or English, and escapes everything it
shows. The form is CSRF-safe by a double-submitted token: a SameSite=Lax, HttpOnly cookie and a
hidden field that must match (another site can neither read the cookie nor post with it). The
cookie also names the voter: one vote per article and browser, which a changed mind replaces.
"""

import hashlib
import secrets
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader

from services.knowledge import repo
from services.knowledge.domain import NotFound, Status
from services.knowledge.handlers import Knowledge
from services.knowledge.settings import KnowledgeSettings
from shared.forms import FormRefused, read_form
from shared.problems import pages, problems
from shared.service import Context

CSRF_COOKIE = "careloop_kb_csrf"
TOKEN_LENGTH = 32  # secrets.token_urlsafe(24)
_templates = Environment(loader=PackageLoader("services.knowledge", "templates"), autoescape=True)
HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}
ArticleId = Annotated[UUID, Path(description="The article's id.")]
PageLanguage = Annotated[
    Literal["zh", "en"] | None, Query(description="The page's language; else the article's")
]
GONE: dict[int | str, dict[str, Any]] = {
    410: {
        "content": {"text/html": {"schema": {"type": "string"}}},
        "description": "The article was archived: the page says it was withdrawn",
    }
}
FORM_BODY = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["csrf", "helpful"],
                "properties": {
                    "csrf": {"type": "string"},
                    "helpful": {"type": "string", "enum": ["yes", "no"]},
                },
            }
        }
    },
}


def paragraphs(body: str) -> list[list[str]]:
    """The body as paragraphs (split at blank lines) of lines, for the template to escape."""
    blocks = [b for b in body.replace("\r\n", "\n").split("\n\n") if b.strip()]
    return [b.strip().split("\n") for b in blocks]


def page_routes(ctx: Context[KnowledgeSettings], knowledge: Knowledge) -> APIRouter:
    web = APIRouter(tags=["pages"], max_body_size=ctx.settings.http_max_body_bytes)

    def page(
        article_id: UUID,
        *,
        status_code: int = 200,
        lang: str,
        article: asyncpg.Record | None = None,
        csrf: str | None = None,
        voted: str | None = None,
        error: str | None = None,
        gone: bool = False,
    ) -> HTMLResponse:
        token = csrf if csrf and len(csrf) == TOKEN_LENGTH else secrets.token_urlsafe(24)
        context: dict[str, Any] = {
            "lang": lang,
            "here": f"/kb/{article_id}",
            "article": article,
            "paragraphs": paragraphs(article["body"]) if article else [],
            "csrf": token,
            "voted": voted,
            "error": error,
            "gone": gone,
        }
        html = _templates.get_template("article.html.j2").render(**context)
        response = HTMLResponse(html, status_code=status_code, headers=HEADERS)
        response.set_cookie(
            CSRF_COOKIE,
            token,
            max_age=365 * 24 * 3600,
            path="/kb",
            httponly=True,
            samesite="lax",
            secure=ctx.settings.secure_cookie,
        )
        return response

    async def fetch(article_id: UUID) -> asyncpg.Record | None:
        async with ctx.pool.acquire() as conn:
            return await repo.get(conn, article_id)

    def missing(
        article_id: UUID, row: asyncpg.Record | None, lang: str | None, csrf: str | None
    ) -> HTMLResponse:
        gone = row is not None and row["status"] == Status.ARCHIVED
        return page(
            article_id, status_code=410 if gone else 404, lang=lang or "zh", csrf=csrf, gone=gone
        )

    @web.get(
        "/kb/{article_id}",
        response_class=HTMLResponse,
        summary="An article, for learners (phones first; zh or en)",
        responses={**pages(404), **GONE, **problems(422, 503)},
    )
    async def article_page(
        article_id: ArticleId, request: Request, lang: PageLanguage = None
    ) -> HTMLResponse:
        row = await fetch(article_id)
        csrf = request.cookies.get(CSRF_COOKIE)
        if row is None or row["status"] != Status.PUBLISHED:
            return missing(article_id, row, lang, csrf)
        return page(article_id, lang=lang or row["language"], article=row, csrf=csrf)

    @web.post(
        "/kb/{article_id}/feedback",
        response_class=HTMLResponse,
        summary="The article page's form: was it helpful? (`helpful` yes or no)",
        responses={
            **pages(400, 403, 404, 415, 422),
            **GONE,
            **problems(413, 503),
        },
        openapi_extra={"requestBody": FORM_BODY},
    )
    async def feedback(
        article_id: ArticleId, request: Request, lang: PageLanguage = None
    ) -> HTMLResponse:
        row = await fetch(article_id)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if row is None or row["status"] != Status.PUBLISHED:
            return missing(article_id, row, lang, cookie)
        language = lang or row["language"]
        try:
            form = await read_form(request)
        except FormRefused as exc:
            return page(
                article_id, status_code=exc.status, lang=language, article=row, error="form"
            )
        if not cookie or not secrets.compare_digest(cookie.encode(), form.get("csrf", "").encode()):
            return page(article_id, status_code=403, lang=language, article=row, error="csrf")
        answer = form.get("helpful")
        if answer not in ("yes", "no"):
            return page(
                article_id,
                status_code=422,
                lang=language,
                article=row,
                csrf=cookie,
                error="helpful",
            )
        voter = hashlib.sha256(cookie.encode()).hexdigest()
        try:
            await knowledge.vote(article_id, voter_sha256=voter, helpful=answer == "yes")
        except NotFound:
            return missing(article_id, row, lang, cookie)
        return page(article_id, lang=language, article=row, csrf=cookie, voted=answer)

    return web
