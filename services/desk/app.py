"""desk's wiring: the ticket and learner consumers, the agent API, the learner's pages, the
auto-close clock."""

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter

from services.desk import (
    api,
    articles,
    handlers,
    incidents,
    learner_api,
    pages,
    portal,
    presence,
    repo,
    retention,
    self_service,
)
from services.desk.accounts import setup as accounts
from services.desk.cases import api as cases_api
from services.desk.cases import handlers as cases
from services.desk.cases.settings import CaseSettings
from services.desk.settings import DeskSettings
from services.desk.web import live, people_pages
from services.desk.web import routes as workspace
from shared import http, learners, topics
from shared.retention import scheduled
from shared.service import build_app, consume, new_context

SNAPSHOTS = Counter(
    "careloop_learner_snapshots_total",
    "Learner snapshots desk read from careloop.learners.v1, by outcome: stored (newer than "
    "the one held), stale (older or equal: ignored), rejected (dead-lettered).",
    ["outcome"],
)


def create_app(settings: DeskSettings) -> FastAPI:
    ctx = new_context("desk", settings)
    case_settings = CaseSettings()
    hub = live.Hub(settings, lambda: ctx.pool)  # the workspace's live feed
    consume(
        ctx,
        topic_names=[
            topics.INTAKE,
            topics.ROUTING,
            topics.SURVEY,
            topics.REMEDY_ACKS,
            topics.KNOWLEDGE,
            topics.INCIDENTS,
        ],
        handlers={
            **handlers.event_handlers(settings),
            **cases.event_handlers(),
            **self_service.event_handlers(),
            **incidents.event_handlers(settings.public_url, handlers.links_for(settings)),
            **presence.event_handlers(),
            **articles.event_handlers(),
        },
        idempotent=[*handlers.IDEMPOTENT, *self_service.IDEMPOTENT, *presence.IDEMPOTENT],
    )
    learners.consume_snapshots(ctx, upsert=repo.upsert_learners, counted=SNAPSHOTS)

    app = build_app(
        ctx,
        on_start=accounts.seed_users,
        background=(
            handlers.auto_close,
            cases.clock(case_settings),
            handlers.index_search,
            scheduled(retention.job(settings), what="desk"),
            hub.keep,
        ),
        title="careloop desk",
    )
    accounts.install(app, ctx)
    app.include_router(api.http_routes(ctx))
    app.include_router(api.ops_routes(ctx))
    app.include_router(pages.page_routes(ctx))
    app.include_router(portal.routes(ctx))
    app.include_router(learner_api.routes(ctx))
    app.include_router(workspace.routes(ctx, hub))
    app.include_router(people_pages.routes(ctx))
    app.mount("/workspace/static", StaticFiles(directory=workspace.STATIC), name="workspace")
    app.include_router(
        cases_api.routes(ctx, current_agent=api.agent_dependency(ctx), settings=case_settings)
    )
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app
