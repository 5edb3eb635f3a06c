"""intake's wiring: the web form and every channel's edge, the inbound consumer, the Redis
dedupe window; no database."""

from fastapi import FastAPI

from services.intake import handlers, web
from services.intake.channels import (
    hotline,
    imap,
    learner_api,
    partner,
    smtp_gateway,
    suggestion,
    wechat,
    weibo,
)
from services.intake.settings import IntakeSettings
from shared import http
from shared.service import build_app, new_context


def create_app(settings: IntakeSettings) -> FastAPI:
    ctx = new_context("intake", settings)
    handlers.subscribe(ctx)
    app = build_app(
        ctx,
        uses_postgres=False,
        uses_redis=True,
        background=(smtp_gateway.run, imap.run),
        title="careloop intake",
    )
    app.include_router(web.routes(ctx))
    app.include_router(learner_api.routes(ctx))
    app.include_router(partner.routes(ctx))
    app.include_router(hotline.routes(ctx))
    app.include_router(suggestion.routes(ctx))
    app.include_router(wechat.routes(ctx))
    app.include_router(weibo.routes(ctx))
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app
