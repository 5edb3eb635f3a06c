"""`python -m services.knowledge.seed`: add the demo articles that are missing (idempotent).

It applies knowledge's migrations first, so it may run before the service ever started; the
articles' `article.published` events wait in the outbox until the service relays them. The local
run has the service add them as it starts instead (CARELOOP_KNOWLEDGE_DEMO_ARTICLES).
"""

import argparse
import asyncio
from pathlib import Path
from uuid import NAMESPACE_URL, UUID, uuid5

import asyncpg
import yaml
from pydantic import BaseModel, ConfigDict, Field

from services.knowledge import repo
from services.knowledge.domain import ArticleIn, Status
from services.knowledge.handlers import published_event
from services.knowledge.settings import KnowledgeSettings
from shared import outbox
from shared.db import create_pool
from shared.migrate import migrate

DEMO = Path(__file__).with_name("demo_articles.yaml")
OWNER = "careloop"


class DemoArticle(ArticleIn):
    slug: str = Field(pattern=r"^[a-z0-9-]{1,60}$")

    @property
    def article_id(self) -> UUID:
        """Fixed by slug and language: the same demo article is the same row on every run."""
        return uuid5(NAMESPACE_URL, f"careloop:knowledge:demo:{self.slug}:{self.lang}")


class DemoFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    articles: tuple[DemoArticle, ...]


def load(path: Path) -> tuple[DemoArticle, ...]:
    return DemoFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))).articles


async def seed(settings: KnowledgeSettings, articles: tuple[DemoArticle, ...]) -> int:
    """Publish the articles not there yet; returns how many were added."""
    dsn = settings.for_service("knowledge").pg_dsn.get_secret_value()
    await asyncio.to_thread(migrate, dsn, "knowledge")
    pool = await create_pool(dsn, schema="knowledge", max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            return await add_missing(conn, settings, articles)
    finally:
        await pool.close()


async def add_missing(
    conn: asyncpg.Connection, settings: KnowledgeSettings, articles: tuple[DemoArticle, ...]
) -> int:
    """In the caller's transaction: the articles not there yet, published and announced."""
    added = 0
    for a in articles:
        row = await repo.create(
            conn,
            article_id=a.article_id,
            article=a,
            status=Status.PUBLISHED,
            owner_id=OWNER,
            change="seeded",
        )
        if row is not None:
            await outbox.add(conn, [published_event(row, by=OWNER, settings=settings)])
            added += 1
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, default=DEMO, help="articles (YAML) to add")
    args = parser.parse_args()
    articles = load(args.file)
    added = asyncio.run(seed(KnowledgeSettings(), articles))
    print(f"knowledge: {added} of {len(articles)} demo articles added")


if __name__ == "__main__":
    main()
