"""intake's wiring: web API, inbound consumer, Redis dedupe window; no database."""

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from services.intake import handlers, web
from services.intake.http import JsonBodyLimit, field_problems
from services.intake.settings import IntakeSettings
from shared.service import build_app, new_context


def create_app(settings: IntakeSettings) -> FastAPI:
    ctx = new_context("intake", settings)
    handlers.subscribe(ctx)
    app = build_app(ctx, uses_postgres=False, uses_redis=True, title="careloop intake")
    app.include_router(web.routes(ctx))
    app.add_exception_handler(RequestValidationError, field_problems)
    # The declared length is checked by JsonBodyLimit, which answers JSON; FastAPI's own
    # app-wide check would answer plain text first. Its per-router check still counts the
    # bytes of a body without a declared length (and answers JSON).
    app.max_body_size = None
    app.add_middleware(JsonBodyLimit, max_body_bytes=settings.http_max_body_bytes)
    return app
