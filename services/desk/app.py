"""desk's wiring: the ticket consumer, the agent API, the auto-close clock."""

from fastapi import FastAPI

from services.desk import api, handlers, pages, repo
from services.desk.settings import DeskSettings
from shared import http, topics
from shared.agents import load_agents
from shared.service import Context, build_app, consume, new_context


def create_app(settings: DeskSettings) -> FastAPI:
    ctx = new_context("desk", settings)
    consume(
        ctx,
        topic_names=[topics.INTAKE, topics.ROUTING, topics.SURVEY],
        handlers=handlers.EVENT_HANDLERS,
        idempotent=handlers.IDEMPOTENT,
    )

    async def seed_agents(ctx: Context[DeskSettings]) -> None:
        async with ctx.pool.acquire() as conn:
            await repo.upsert_agents(conn, load_agents(settings).agents)

    app = build_app(
        ctx,
        on_start=seed_agents,
        background=(handlers.auto_close,),
        title="careloop desk",
    )
    app.include_router(api.http_routes(ctx))
    app.include_router(pages.page_routes(ctx))
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app
