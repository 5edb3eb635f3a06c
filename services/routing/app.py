"""routing's wiring: the ticket consumer, presence API, Redis live load, sweep and reconciliation."""

from fastapi import FastAPI

from services.routing import handlers
from services.routing.settings import RoutingSettings
from shared import http, topics
from shared.events import TicketCreated
from shared.service import build_app, consume, new_context


def create_app(settings: RoutingSettings) -> FastAPI:
    ctx = new_context("routing", settings)
    router = handlers.Router(ctx)
    # A ticket.created is placed once per ticket id (handlers.Router.on_created): no inbox row.
    consume(
        ctx,
        topic_names=[topics.TICKETS],
        handlers=router.handlers(),
        idempotent=[TicketCreated.TYPE],
    )
    app = build_app(
        ctx,
        uses_redis=True,
        on_start=router.start,
        background=(router.sweep, router.reconcile),
        title="careloop routing",
    )
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    app.include_router(handlers.http_routes(ctx, router))
    return app
