"""knowledge's use cases: writing articles (each change a version, published ones announced),
suggesting them for a ticket by its text and category, counting learners' votes, and the ticket
events it follows.
"""

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import jieba
import msgspec
import structlog
from prometheus_client import Counter
from pydantic import ValidationError
from uuid6 import uuid7

from services.knowledge import repo
from services.knowledge.domain import (
    ArticleEdit,
    ArticleIn,
    Candidate,
    FromReply,
    Language,
    NotFound,
    Ranked,
    Status,
    check_archivable,
    check_editable,
    check_publishable,
    check_version,
    decided_category,
    query,
    rank,
    ticket_language,
    ticket_text,
)
from services.knowledge.settings import KnowledgeSettings
from shared import outbox
from shared.agents import Role
from shared.errors import PermanentError
from shared.events import (
    ArticleArchived,
    ArticleDrafted,
    ArticleDraftRequested,
    ArticlePublished,
    ArticlesSuggested,
    Category,
    Envelope,
    EventData,
    SuggestedArticle,
    TicketClosed,
    TicketCreated,
    TicketResolved,
    TicketRetriaged,
    TicketRouted,
    new_event,
    now,
)
from shared.inbox import AfterCommit, Handler
from shared.service import Context

log = structlog.get_logger(__name__)
PRODUCER = "knowledge"
SELF_SERVED = "self_served"
# How many matches per ticket the search hands to the ranking, which keeps the best few.
CANDIDATES = 20

E = TypeVar("E", bound=EventData)

OFFERS = Counter(
    "careloop_knowledge_self_service_offers_total",
    "New tickets for which articles were offered to the learner, by channel.",
    ["channel"],
)
DEFLECTIONS = Counter(
    "careloop_knowledge_deflections_total",
    "Tickets the learner closed as solved by an offered article (resolution_code self_served).",
)


@dataclass(frozen=True)
class Caller:
    """Who is calling, by bearer token: agents read, supervisors and admins edit."""

    agent_id: str
    name: str
    role: Role

    @property
    def editor(self) -> bool:
        return self.role in (Role.SUPERVISOR, Role.ADMIN)


def may_read(row: asyncpg.Record, caller: Caller) -> bool:
    """Editors read everything; agents read what is published, and the drafts they own."""
    return (
        caller.editor
        or row["status"] == Status.PUBLISHED
        or (row["status"] == Status.DRAFT and row["owner_id"] == caller.agent_id)
    )


def keyed_by_article(data: E, article_id: UUID) -> Envelope[E]:
    """An article event, keyed by its article: an article's events stay in order."""
    return msgspec.structs.replace(new_event(data, producer=PRODUCER), key=str(article_id))


def published_event(
    row: asyncpg.Record, *, by: str, settings: KnowledgeSettings
) -> Envelope[ArticlePublished]:
    """`article.published` for the version in `row` (an article as repo returns it)."""
    published = ArticlePublished(
        ticket_id=row["source_ticket_id"],
        article_id=row["article_id"],
        version=row["version"],
        language=row["language"],
        category=Category(row["category"]),
        tags=tuple(row["tags"]),
        title=row["title"],
        url=settings.article_url(row["article_id"], row["language"]),
        by=by,
        published_at=row["updated_at"],
    )
    return keyed_by_article(published, row["article_id"])


class Knowledge:
    def __init__(self, ctx: Context[KnowledgeSettings]) -> None:
        self._ctx = ctx
        self._s = ctx.settings

    async def start(self, ctx: Context[KnowledgeSettings]) -> None:
        """jieba loads its dictionary (about a second) before the first request needs it, and
        keeps its progress lines (plain text on stderr) to itself."""
        jieba.setLogLevel(logging.WARNING)
        await asyncio.to_thread(jieba.initialize)

    # ---- articles ----------------------------------------------------------------------------

    async def create(
        self,
        article: ArticleIn,
        *,
        by: Caller,
        source_ticket_id: UUID | None = None,
        change: str = "created",
    ) -> asyncpg.Record:
        """A draft, owned by whoever wrote it; publishing it is an editor's step."""
        async with self._ctx.pool.acquire() as conn:
            row = await repo.create(
                conn,
                article_id=uuid7(),
                article=article,
                status=Status.DRAFT,
                owner_id=by.agent_id,
                source_ticket_id=source_ticket_id,
                change=change,
            )
        assert row is not None  # a new uuid7 exists nowhere yet
        return row

    async def read(self, article_id: UUID, caller: Caller) -> asyncpg.Record:
        async with self._ctx.pool.acquire() as conn:
            row = await repo.get(conn, article_id)
        if row is None or not may_read(row, caller):
            raise NotFound(f"no article {article_id}")
        return row

    async def history(self, article_id: UUID, caller: Caller) -> list[asyncpg.Record]:
        await self.read(article_id, caller)
        async with self._ctx.pool.acquire() as conn:
            return await repo.versions(conn, article_id)

    async def edit(self, article_id: UUID, edit: ArticleEdit, *, by: Caller) -> asyncpg.Record:
        """A new version from the one the editor read; a published article stays live, with
        its new version announced."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            current = await self._locked(conn, article_id)
            check_version(current["version"], edit.version)
            check_editable(Status(current["status"]))
            row = await repo.edit(conn, article_id=article_id, article=edit, by=by.agent_id)
            if row["status"] == Status.PUBLISHED:
                await outbox.add(conn, [published_event(row, by=by.agent_id, settings=self._s)])
        return row

    async def publish(self, article_id: UUID, version: int, *, by: Caller) -> asyncpg.Record:
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            current = await self._locked(conn, article_id)
            check_version(current["version"], version)
            check_publishable(Status(current["status"]))
            row = await repo.set_status(
                conn, article_id=article_id, status=Status.PUBLISHED, by=by.agent_id
            )
            await outbox.add(conn, [published_event(row, by=by.agent_id, settings=self._s)])
        return row

    async def archive(self, article_id: UUID, version: int, *, by: Caller) -> asyncpg.Record:
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            current = await self._locked(conn, article_id)
            check_version(current["version"], version)
            check_archivable(Status(current["status"]))
            row = await repo.set_status(
                conn, article_id=article_id, status=Status.ARCHIVED, by=by.agent_id
            )
            archived = ArticleArchived(
                article_id=article_id,
                version=row["version"],
                by=by.agent_id,
                archived_at=row["updated_at"],
            )
            await outbox.add(conn, [keyed_by_article(archived, article_id)])
        return row

    async def _locked(self, conn: asyncpg.Connection, article_id: UUID) -> asyncpg.Record:
        row = await repo.lock(conn, article_id)
        if row is None:
            raise NotFound(f"no article {article_id}")
        return row

    async def search(
        self,
        *,
        text: str | None,
        caller: Caller,
        status: Status | None,
        language: Language | None,
        category: str | None,
        tag: str | None,
        limit: int,
    ) -> list[asyncpg.Record]:
        """Agents find published articles (and their own drafts); editors any status."""
        if caller.editor:
            statuses, own_drafts = ([status] if status else list(Status)), False
        else:
            statuses = [Status.PUBLISHED] if status in (None, Status.PUBLISHED) else []
            own_drafts = status in (None, Status.DRAFT)
        async with self._ctx.pool.acquire() as conn:
            return await repo.search(
                conn,
                tsquery=query(text) if text else None,
                statuses=statuses,
                owner_id=caller.agent_id if own_drafts else None,
                language=language,
                category=category,
                tag=tag,
                limit=limit,
            )

    # ---- suggestions -------------------------------------------------------------------------

    async def suggest(
        self,
        conn: asyncpg.Connection,
        wanted: list[tuple[str, Language, str, str | None]],
        *,
        limit: int,
    ) -> dict[str, list[Ranked]]:
        """For each (key, language, search words, category), the best published articles in
        that language, ranked by text, category and learners' votes (none for no words)."""
        queries = [(key, lang, q) for key, lang, q, _ in wanted if q]
        found: dict[str, list[Candidate]] = defaultdict(list)
        if queries:
            for r in await repo.candidates(conn, queries, per_query=CANDIDATES):
                found[r["key"]].append(
                    Candidate(
                        article_id=r["article_id"],
                        title=r["title"],
                        category=r["category"],
                        text_rank=r["text_rank"],
                        helpful=r["helpful"],
                        not_helpful=r["not_helpful"],
                    )
                )
        return {
            key: rank(found[key], category=category, limit=limit, min_score=self._s.min_score)
            for key, _, _, category in wanted
        }

    async def suggestions(
        self, *, text: str, language: Language, category: str | None, limit: int
    ) -> list[SuggestedArticle]:
        async with self._ctx.pool.acquire() as conn:
            ranked = await self.suggest(
                conn, [("", language, query(text) or "", category)], limit=limit
            )
        return [self._suggested(r, language) for r in ranked[""]]

    def _suggested(self, r: Ranked, language: str) -> SuggestedArticle:
        return SuggestedArticle(
            article_id=r.article_id,
            title=r.title,
            url=self._s.article_url(r.article_id, language),
            score=r.score,
        )

    def _announced(
        self,
        ticket_id: UUID,
        language: Language,
        ranked: list[Ranked],
        *,
        at: datetime,
        cause: Envelope[Any],
    ) -> Envelope[ArticlesSuggested]:
        suggested = ArticlesSuggested(
            ticket_id=ticket_id,
            language=language,
            articles=tuple(self._suggested(r, language) for r in ranked),
            suggested_at=at,
        )
        return new_event(suggested, producer=PRODUCER, cause=cause)

    async def on_created(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> AfterCommit:
        """Every new ticket gets `articles.suggested`, once (a redelivery finds its offer):
        ranked in its category when routing's ticket.routed came first, else by its text, and
        again once the category is known (`on_categorised`, which reads the words kept here)."""
        tickets: dict[UUID, tuple[Envelope[Any], Language]] = {
            e.data.ticket_id: (e, ticket_language(e.data.language)) for e in events
        }
        words = {
            t: query(ticket_text(e.data.subject, e.data.description)) or ""
            for t, (e, _) in tickets.items()
        }
        kept = await repo.remember_words(
            conn, [(t, lang, words[t]) for t, (_, lang) in tickets.items()]
        )
        ranked = await self.suggest(
            conn,
            [(str(t), lang, words[t], kept[t]["category"]) for t, (_, lang) in tickets.items()],
            limit=self._s.suggestions,
        )
        new = await repo.record_offers(
            conn,
            [
                {
                    "ticket_id": str(t),
                    "channel": e.data.channel.value,
                    "language": lang,
                    "article_ids": [str(r.article_id) for r in ranked[str(t)]],
                }
                for t, (e, lang) in tickets.items()
            ],
        )
        await outbox.add(
            conn,
            [
                self._announced(t, lang, ranked[str(t)], at=kept[t]["at"], cause=e)
                for t, (e, lang) in tickets.items()
                if t in new
            ],
        )
        channels = [
            e.data.channel.value for t, (e, _) in tickets.items() if t in new and ranked[str(t)]
        ]

        def count() -> None:
            for channel in channels:
                OFFERS.labels(channel).inc()

        return count

    async def on_categorised(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """Triage's category for a new ticket (ticket.routed) or a person's correction
        (ticket.retriaged): its suggestions again, ranked in that category, as
        `articles.suggested` (desk shows the latest). A category older than the one held
        changes nothing (a redelivery, a late event); before the ticket's ticket.created the
        category is only kept for it."""
        latest: dict[UUID, tuple[Category, datetime, Envelope[Any]]] = {}
        for e in events:
            decided = decided_category(e.data)
            held = latest.get(e.data.ticket_id)
            if decided is not None and (held is None or held[1] < decided[1]):
                latest[e.data.ticket_id] = (*decided, e)
        rows = await repo.set_categories(
            conn, [(t, category.value, at) for t, (category, at, _) in latest.items()]
        )
        ready = [r for r in rows if r["words"] is not None]
        ranked = await self.suggest(
            conn,
            [(str(r["ticket_id"]), r["language"], r["words"], r["category"]) for r in ready],
            limit=self._s.suggestions,
        )
        await outbox.add(
            conn,
            [
                self._announced(
                    r["ticket_id"],
                    r["language"],
                    ranked[str(r["ticket_id"])],
                    at=r["at"],
                    cause=latest[r["ticket_id"]][2],
                )
                for r in ready
            ],
        )

    async def on_closed(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """A closed ticket is never suggested for again: its words are forgotten."""
        await repo.forget_tickets(conn, [e.data.ticket_id for e in events])

    async def on_resolved(self, _: asyncpg.Connection, events: list[Envelope[Any]]) -> AfterCommit:
        """A ticket the learner closed with "this solved it" is one deflected from an agent."""
        resolved: list[TicketResolved] = [e.data for e in events]
        deflected = sum(r.resolution_code == SELF_SERVED for r in resolved)

        def count() -> None:
            DEFLECTIONS.inc(deflected)

        return count

    async def on_draft_requested(
        self, conn: asyncpg.Connection, events: list[Envelope[Any]]
    ) -> None:
        """desk's "make an article from this reply": the agent's draft, as POST
        /v1/articles/from-reply makes it, under desk's article id (a redelivery finds it made
        and announces nothing twice). Someone knowledge does not know as an active person, or
        a reply no article may hold, is refused with the reason."""
        drafted = []
        for e in events:
            asked: ArticleDraftRequested = e.data
            refused = f"article.draft_requested by {asked.by} for ticket {asked.ticket_id}"
            if not await conn.fetchval("SELECT active FROM people WHERE agent_id = $1", asked.by):
                raise PermanentError(f"{refused}: knowledge knows no active person {asked.by!r}")
            try:
                article = FromReply(
                    reply=asked.reply,
                    category=asked.category,
                    language=asked.language,
                    ticket_id=asked.ticket_id,
                ).article()
            except ValidationError as exc:
                raise PermanentError(f"{refused}: {exc}") from None
            row = await repo.create(
                conn,
                article_id=asked.article_id,
                article=article,
                status=Status.DRAFT,
                owner_id=asked.by,
                source_ticket_id=asked.ticket_id,
                change="from_reply",
            )
            if row is not None:
                made = ArticleDrafted(
                    ticket_id=asked.ticket_id,
                    article_id=row["article_id"],
                    title=row["title"],
                    url=self._s.article_url(row["article_id"], row["language"]),
                    by=asked.by,
                    drafted_at=now(),
                )
                drafted.append(new_event(made, producer=PRODUCER, cause=e))
        await outbox.add(conn, drafted)

    def handlers(self) -> dict[str, Handler]:
        return {
            TicketCreated.TYPE: self.on_created,
            TicketRouted.TYPE: self.on_categorised,
            TicketRetriaged.TYPE: self.on_categorised,
            TicketClosed.TYPE: self.on_closed,
            TicketResolved.TYPE: self.on_resolved,
            ArticleDraftRequested.TYPE: self.on_draft_requested,
        }

    # ---- learners' votes ---------------------------------------------------------------------

    async def vote(self, article_id: UUID, *, voter_sha256: str, helpful: bool) -> None:
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            row = await repo.lock(conn, article_id)
            if row is None or row["status"] != Status.PUBLISHED:
                raise NotFound(f"no published article {article_id}")
            await repo.vote(conn, article_id=article_id, voter_sha256=voter_sha256, helpful=helpful)


# Keyed by the ticket: a new ticket's offer is recorded once (repo.record_offers), so a
# redelivered `ticket.created` needs no inbox row; a category is set only when it is newer than
# the one held, so a redelivered `ticket.routed` or `.retriaged` suggests nothing again; a closed
# ticket is forgotten however often; a draft from a reply is made once under desk's article id.
# Resolutions are counted, so claimed.
IDEMPOTENT = frozenset(
    {
        TicketCreated.TYPE,
        TicketRouted.TYPE,
        TicketRetriaged.TYPE,
        TicketClosed.TYPE,
        ArticleDraftRequested.TYPE,
    }
)
