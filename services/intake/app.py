"""intake's wiring: web API, inbound consumer, Redis dedupe window; no database."""

from fastapi import FastAPI

from services.intake import handlers
from services.intake.settings import IntakeSettings
from shared.service import build_app, new_context


def create_app(settings: IntakeSettings) -> FastAPI:
    ctx = new_context("intake", settings)
    handlers.subscribe(ctx)
    app = build_app(ctx, uses_postgres=False, uses_redis=True, title="careloop intake")
    app.include_router(handlers.http_routes(ctx))
    return app
