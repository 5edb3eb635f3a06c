"""intake's wiring: web API, inbound consumer, Redis dedupe window; no database."""

from fastapi import FastAPI

from services.intake import handlers, web
from services.intake.settings import IntakeSettings
from shared import http
from shared.service import build_app, new_context


def create_app(settings: IntakeSettings) -> FastAPI:
    ctx = new_context("intake", settings)
    handlers.subscribe(ctx)
    app = build_app(ctx, uses_postgres=False, uses_redis=True, title="careloop intake")
    app.include_router(web.routes(ctx))
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app
