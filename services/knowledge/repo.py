"""SQL for knowledge's schema. Nothing here commits: the caller owns the transaction."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.knowledge.domain import ArticleIn, Language, Status, indexed

# The article's words (jieba's, made in Python), weighted: title A, tags B, body C. The
# 'english' configuration stems English words and leaves Chinese ones as jieba cut them.
_SEARCH = """
    setweight(to_tsvector('english', {title}), 'A')
    || setweight(to_tsvector('english', {tags}), 'B')
    || setweight(to_tsvector('english', {body}), 'C')
"""
ARTICLE = """article_id, version, status, language, category, tags, title, body, owner_id,
    source_ticket_id, helpful, not_helpful, created_at, updated_at, published_at"""
LISTED = """article_id, version, status, language, category, tags, title, left(body, 200) AS summary,
    owner_id, helpful, not_helpful, updated_at, published_at"""
_VERSION = """
    INSERT INTO article_versions (article_id, version, status, language, category, tags, title,
        body, change, edited_by)
    SELECT article_id, version, status, language, category, tags, title, body, $change, $by
    FROM a
"""


def _words(article: ArticleIn) -> tuple[str, str, str]:
    return indexed(article.title), indexed(" ".join(article.tags)), indexed(article.body)


async def create(
    conn: asyncpg.Connection,
    *,
    article_id: UUID,
    article: ArticleIn,
    status: Status,
    owner_id: str,
    source_ticket_id: UUID | None = None,
    change: str,
) -> asyncpg.Record | None:
    """A new article and its first version; None when `article_id` exists already."""
    sql = f"""
        WITH a AS (
            INSERT INTO articles (article_id, version, status, language, category, tags, title,
                body, owner_id, source_ticket_id, search, published_at)
            VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, {_SEARCH.format(title="$10::text", tags="$11::text", body="$12::text")},
                CASE WHEN $2 = 'published' THEN now() END)
            ON CONFLICT (article_id) DO NOTHING
            RETURNING *
        ), v AS ({_VERSION.replace("$change", "$13").replace("$by", "$8")})
        SELECT {ARTICLE} FROM a
    """
    title, tags, body = _words(article)
    return await conn.fetchrow(
        sql,
        article_id,
        status.value,
        article.lang,
        article.category.value,
        list(article.tags),
        article.title,
        article.body,
        owner_id,
        source_ticket_id,
        title,
        tags,
        body,
        change,
    )


async def lock(conn: asyncpg.Connection, article_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {ARTICLE} FROM articles WHERE article_id = $1 FOR UPDATE", article_id
    )


async def get(conn: asyncpg.Connection, article_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {ARTICLE} FROM articles WHERE article_id = $1", article_id)


async def edit(
    conn: asyncpg.Connection, *, article_id: UUID, article: ArticleIn, by: str
) -> asyncpg.Record:
    """The next version with new content; the status stays."""
    sql = f"""
        WITH a AS (
            UPDATE articles SET version = version + 1, language = $2, category = $3, tags = $4,
                title = $5, body = $6,
                search = {_SEARCH.format(title="$7::text", tags="$8::text", body="$9::text")},
                updated_at = now()
            WHERE article_id = $1
            RETURNING *
        ), v AS ({_VERSION.replace("$change", "'edited'").replace("$by", "$10")})
        SELECT {ARTICLE} FROM a
    """
    title, tags, body = _words(article)
    row = await conn.fetchrow(
        sql,
        article_id,
        article.lang,
        article.category.value,
        list(article.tags),
        article.title,
        article.body,
        title,
        tags,
        body,
        by,
    )
    assert row is not None  # the caller holds the row's lock
    return row


async def set_status(
    conn: asyncpg.Connection, *, article_id: UUID, status: Status, by: str
) -> asyncpg.Record:
    """The next version with the same content and a new status."""
    sql = f"""
        WITH a AS (
            UPDATE articles SET version = version + 1, status = $2, updated_at = now(),
                published_at = CASE WHEN $2 = 'published' THEN now() ELSE published_at END
            WHERE article_id = $1
            RETURNING *
        ), v AS ({_VERSION.replace("$change", "$2").replace("$by", "$3")})
        SELECT {ARTICLE} FROM a
    """
    row = await conn.fetchrow(sql, article_id, status.value, by)
    assert row is not None  # the caller holds the row's lock
    return row


async def versions(conn: asyncpg.Connection, article_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT version, status, language, category, tags, title, body, change, edited_by, edited_at
        FROM article_versions WHERE article_id = $1 ORDER BY version DESC
        """,
        article_id,
    )


async def search(
    conn: asyncpg.Connection,
    *,
    tsquery: str | None,
    statuses: Sequence[Status],
    owner_id: str | None,
    language: Language | None,
    category: str | None,
    tag: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Articles in `statuses` (or, with `owner_id`, also that owner's drafts), best match
    first when there is a query, else the latest changed first."""
    return await conn.fetch(
        f"""
        SELECT {LISTED},
               CASE WHEN $1::text IS NULL THEN NULL
                    ELSE ts_rank(search, to_tsquery('english', $1), 1) END AS rank
        FROM articles
        WHERE ($1::text IS NULL OR search @@ to_tsquery('english', $1))
          AND (status = ANY($2::text[]) OR (owner_id = $3 AND status = 'draft'))
          AND ($4::text IS NULL OR language = $4)
          AND ($5::text IS NULL OR category = $5)
          AND ($6::text IS NULL OR $6 = ANY(tags))
        ORDER BY rank DESC NULLS LAST, updated_at DESC, article_id
        LIMIT $7
        """,
        tsquery,
        [s.value for s in statuses],
        owner_id,
        language,
        category,
        tag,
        limit,
    )


async def candidates(
    conn: asyncpg.Connection, wanted: Sequence[tuple[str, Language, str]], *, per_query: int
) -> list[asyncpg.Record]:
    """For each (key, language, tsquery), the published articles in that language matching
    best, up to `per_query` each: one statement for a whole batch of tickets."""
    return await conn.fetch(
        """
        SELECT w.key, c.*
        FROM unnest($1::text[], $2::text[], $3::text[]) AS w(key, language, q)
        CROSS JOIN LATERAL (
            SELECT article_id, title, category, helpful, not_helpful,
                   ts_rank(search, to_tsquery('english', w.q), 1) AS text_rank
            FROM articles
            WHERE status = 'published' AND language = w.language
              AND search @@ to_tsquery('english', w.q)
            ORDER BY text_rank DESC
            LIMIT $4
        ) AS c
        """,
        [k for k, _, _ in wanted],
        [lang for _, lang, _ in wanted],
        [q for _, _, q in wanted],
        per_query,
    )


async def remember_words(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, Language, str]]
) -> dict[UUID, asyncpg.Record]:
    """Each new ticket's (id, language, search words), kept to suggest again once its category
    is known; returns, per ticket, the category routing decided when that came first (else
    NULL) and `at`, read from the database's clock once the ticket's row is locked: whatever
    is suggested for a ticket later is stamped later."""
    found = await conn.fetch(
        """
        INSERT INTO tickets AS t (ticket_id, language, words)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
        ON CONFLICT (ticket_id) DO UPDATE SET language = excluded.language, words = excluded.words
        RETURNING ticket_id, category, clock_timestamp() AS at
        """,
        [t for t, _, _ in rows],
        [lang for _, lang, _ in rows],
        [w for _, _, w in rows],
    )
    return {r["ticket_id"]: r for r in found}


async def set_categories(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str, datetime]]
) -> list[asyncpg.Record]:
    """Each ticket's (id, category, decided at), unless a later decision is held; returns the
    tickets whose category was set, with their language and words (NULL while the ticket's
    ticket.created has not come) and `at` as `remember_words` reads it."""
    return await conn.fetch(
        """
        INSERT INTO tickets AS t (ticket_id, category, category_at)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[])
        ON CONFLICT (ticket_id) DO UPDATE
        SET category = excluded.category, category_at = excluded.category_at
        WHERE t.category_at IS NULL OR t.category_at < excluded.category_at
        RETURNING ticket_id, language, words, category, clock_timestamp() AS at
        """,
        [t for t, _, _ in rows],
        [c for _, c, _ in rows],
        [at for _, _, at in rows],
    )


async def forget_tickets(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> None:
    """Closed tickets' words: nothing will be suggested for them again."""
    await conn.execute("DELETE FROM tickets WHERE ticket_id = ANY($1::uuid[])", list(ticket_ids))


async def record_offers(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> set[UUID]:
    """Offers for new tickets; returns the tickets not offered before (a redelivery is not)."""
    found = await conn.fetch(
        """
        INSERT INTO offers (ticket_id, channel, language, article_ids)
        SELECT r.ticket_id, r.channel, r.language, r.article_ids
        FROM jsonb_to_recordset($1::jsonb)
             AS r(ticket_id uuid, channel text, language text, article_ids uuid[])
        ON CONFLICT (ticket_id) DO NOTHING
        RETURNING ticket_id
        """,
        list(rows),
    )
    return {r["ticket_id"] for r in found}


async def vote(
    conn: asyncpg.Connection, *, article_id: UUID, voter_sha256: str, helpful: bool
) -> None:
    """A voter's vote (a changed mind replaces it), and the article's counts recounted."""
    await conn.execute(
        """
        INSERT INTO votes (article_id, voter_sha256, helpful) VALUES ($1, $2, $3)
        ON CONFLICT (article_id, voter_sha256) DO UPDATE
        SET helpful = excluded.helpful, voted_at = now()
        """,
        article_id,
        voter_sha256,
        helpful,
    )
    await conn.execute(
        """
        UPDATE articles SET
            helpful = (SELECT count(*) FROM votes WHERE article_id = $1 AND helpful),
            not_helpful = (SELECT count(*) FROM votes WHERE article_id = $1 AND NOT helpful)
        WHERE article_id = $1
        """,
        article_id,
    )
