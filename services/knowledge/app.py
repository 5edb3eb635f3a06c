"""knowledge's wiring: the ticket, routing and people consumer, the articles API, the learners'
article page."""

from fastapi import FastAPI

from services.knowledge import api, handlers, pages, seed
from services.knowledge.settings import KnowledgeSettings
from shared import http, people, topics
from shared.agents import load_agents
from shared.service import Context, build_app, consume, new_context


def create_app(settings: KnowledgeSettings) -> FastAPI:
    ctx = new_context("knowledge", settings)
    knowledge = handlers.Knowledge(ctx)
    consume(
        ctx,
        topic_names=[topics.TICKETS, topics.ROUTING, topics.PEOPLE],
        handlers={**knowledge.handlers(), **people.HANDLERS},
        idempotent=handlers.IDEMPOTENT | people.IDEMPOTENT,
    )

    async def start(ctx: Context[KnowledgeSettings]) -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await people.seed(conn, load_agents(settings).agents)
            if settings.demo_articles:
                await seed.add_missing(conn, ctx.settings, seed.load(seed.DEMO))
        await knowledge.start(ctx)

    app = build_app(ctx, on_start=start, title="careloop knowledge")
    app.include_router(api.http_routes(ctx, knowledge))
    app.include_router(pages.page_routes(ctx, knowledge))
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app
