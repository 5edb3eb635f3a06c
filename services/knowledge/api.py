"""knowledge's JSON API: articles (agents read, supervisors and admins edit), their versions,
search, suggestions for a ticket, and drafts made from an agent's reply."""

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel

from services.knowledge.domain import (
    ArticleEdit,
    ArticleIn,
    Conflict,
    FromReply,
    Language,
    NotFound,
    Status,
    Tag,
    VersionRef,
)
from services.knowledge.handlers import Caller, Knowledge
from services.knowledge.settings import KnowledgeSettings
from shared import people
from shared.agents import Role, bearer_auth
from shared.events import Category
from shared.http import Utf8JsonRoute
from shared.params import DIGITS
from shared.problems import problems
from shared.service import Context
from shared.text import Text, detect_language


class ArticleOut(BaseModel):
    """An article's current version; `url` is the learners' page (live once published)."""

    article_id: UUID
    version: int
    status: Status
    language: Language
    category: Category
    tags: list[str]
    title: str
    body: str
    owner_id: str
    source_ticket_id: UUID | None
    helpful: int
    not_helpful: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    url: str


class ArticleListed(BaseModel):
    """An article in a list: the body's first 200 characters; `rank` when searched by text."""

    article_id: UUID
    version: int
    status: Status
    language: Language
    category: Category
    tags: list[str]
    title: str
    summary: str
    owner_id: str
    helpful: int
    not_helpful: int
    updated_at: datetime
    published_at: datetime | None
    rank: float | None
    url: str


class VersionOut(BaseModel):
    """One saved version: what changed (`created`, `edited`, `published`, `archived`), by whom."""

    version: int
    status: Status
    language: Language
    category: Category
    tags: list[str]
    title: str
    body: str
    change: str
    edited_by: str
    edited_at: datetime


class Suggestion(BaseModel):
    article_id: UUID
    title: str
    url: str
    score: float


class Suggestions(BaseModel):
    """The articles that may answer a ticket's text, best first (possibly none)."""

    language: Language
    articles: list[Suggestion]


@contextlib.contextmanager
def as_http() -> Iterator[None]:
    """knowledge's refusals as HTTP answers."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc


ArticleId = Annotated[UUID, Path(description="The article's id.")]
Limit = Annotated[int, Query(ge=1, le=100), DIGITS]


def http_routes(ctx: Context[KnowledgeSettings], knowledge: Knowledge) -> APIRouter:
    settings = ctx.settings
    router = APIRouter(route_class=Utf8JsonRoute, max_body_size=settings.http_max_body_bytes)
    authenticated = bearer_auth(lambda: ctx.pool, people.person_by_token)

    async def current(row: Annotated[asyncpg.Record, Depends(authenticated)]) -> Caller:
        return Caller(agent_id=row["agent_id"], name=row["name"], role=Role(row["role"]))

    async def editor(caller: Annotated[Caller, Depends(current)]) -> Caller:
        if not caller.editor:
            raise HTTPException(403, "only supervisors and admins edit articles")
        return caller

    Reader = Annotated[Caller, Depends(current)]
    Editor = Annotated[Caller, Depends(editor)]

    def out(row: asyncpg.Record) -> ArticleOut:
        return ArticleOut(
            **{k: row[k] for k in ArticleOut.model_fields if k != "url"},
            url=settings.article_url(row["article_id"], row["language"]),
        )

    def listed(row: asyncpg.Record) -> ArticleListed:
        return ArticleListed(
            **{k: row[k] for k in ArticleListed.model_fields if k != "url"},
            url=settings.article_url(row["article_id"], row["language"]),
        )

    @router.get(
        "/v1/articles",
        summary="Search or list articles",
        description="With `q`, the best matches first (Chinese and English: jieba's words, "
        "English stemmed; any word may match, more matching words rank higher; title over tags "
        "over body). Without, the latest changed first. Agents see published articles and "
        "their own drafts; supervisors and admins every status.",
        responses=problems(401, 422, 503),
    )
    async def search(
        caller: Reader,
        q: Annotated[Text | None, Query(max_length=500, description="Words to find")] = None,
        status: Status | None = None,
        language: Language | None = None,
        category: Category | None = None,
        tag: Tag | None = None,
        limit: Limit = 20,
    ) -> list[ArticleListed]:
        rows = await knowledge.search(
            text=q,
            caller=caller,
            status=status,
            language=language,
            category=category.value if category else None,
            tag=tag,
            limit=limit,
        )
        return [listed(r) for r in rows]

    @router.post(
        "/v1/articles",
        status_code=201,
        summary="Write a new article (a draft, owned by the caller)",
        responses=problems(400, 401, 403, 413, 422, 503),
    )
    async def create(body: ArticleIn, caller: Editor) -> ArticleOut:
        return out(await knowledge.create(body, by=caller))

    @router.post(
        "/v1/articles/from-reply",
        status_code=201,
        summary="Make a draft article from an agent's reply to a ticket",
        description="Any agent may: the draft is theirs, and an editor publishes it. The title "
        "is the reply's first line unless given.",
        responses=problems(400, 401, 413, 422, 503),
    )
    async def from_reply(body: FromReply, caller: Reader) -> ArticleOut:
        row = await knowledge.create(
            body.article(), by=caller, source_ticket_id=body.ticket_id, change="from_reply"
        )
        return out(row)

    @router.get(
        "/v1/articles/{article_id}",
        summary="An article's current version",
        responses=problems(401, 404, 422, 503),
    )
    async def read(article_id: ArticleId, caller: Reader) -> ArticleOut:
        with as_http():
            return out(await knowledge.read(article_id, caller))

    @router.get(
        "/v1/articles/{article_id}/versions",
        summary="Every saved version of an article, newest first",
        responses=problems(401, 404, 422, 503),
    )
    async def versions(article_id: ArticleId, caller: Reader) -> list[VersionOut]:
        with as_http():
            rows = await knowledge.history(article_id, caller)
        return [VersionOut(**dict(r)) for r in rows]

    @router.put(
        "/v1/articles/{article_id}",
        summary="Save a new version of an article",
        description="`version` is the version the edit starts from: when someone saved a newer "
        "one meanwhile the edit is refused with 409 (read it again and redo the change). A "
        "published article stays published and its new version is announced.",
        responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def edit(article_id: ArticleId, body: ArticleEdit, caller: Editor) -> ArticleOut:
        with as_http():
            return out(await knowledge.edit(article_id, body, by=caller))

    @router.post(
        "/v1/articles/{article_id}/publish",
        summary="Publish an article (a draft, or an archived one again)",
        responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def publish(article_id: ArticleId, body: VersionRef, caller: Editor) -> ArticleOut:
        with as_http():
            return out(await knowledge.publish(article_id, body.version, by=caller))

    @router.post(
        "/v1/articles/{article_id}/archive",
        summary="Archive an article: no longer shown or suggested",
        responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def archive(article_id: ArticleId, body: VersionRef, caller: Editor) -> ArticleOut:
        with as_http():
            return out(await knowledge.archive(article_id, body.version, by=caller))

    @router.get(
        "/v1/suggestions",
        summary="Published articles that may answer a ticket, best first",
        description="Ranked by the text's match, a boost for the ticket's category and the "
        "learners' helpful / not helpful votes; only articles in the ticket's language.",
        responses=problems(401, 422, 503),
    )
    async def suggestions(
        _: Reader,
        text: Annotated[
            Text, Query(min_length=1, max_length=20_000, description="The ticket's text")
        ],
        category: Category | None = None,
        language: Annotated[
            Language | None, Query(description="else detected from the text")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10), DIGITS] = 5,
    ) -> Suggestions:
        lang: Language = language or ("zh" if detect_language(text) == "zh" else "en")
        found = await knowledge.suggestions(
            text=text, language=lang, category=category.value if category else None, limit=limit
        )
        return Suggestions(
            language=lang,
            articles=[Suggestion(**msgspec.structs.asdict(a)) for a in found],
        )

    return router
