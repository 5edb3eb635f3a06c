"""routing's wiring: the ticket consumer, presence and admin APIs, Redis live load, sweep and
reconciliation."""

from fastapi import FastAPI

from services.routing import api, gauges, handlers, sla, status
from services.routing.settings import RoutingSettings
from shared import http, topics
from shared.events import AgentSeen, PersonChanged, TicketCreated
from shared.service import build_app, consume, new_context


def create_app(settings: RoutingSettings) -> FastAPI:
    ctx = new_context("routing", settings)
    clocks = sla.SlaClocks(ctx)
    router = handlers.Router(ctx, clocks)
    announcer = status.Announcer(ctx, router)
    # A ticket.created is placed once per ticket id (handlers.Router.on_created), a
    # person.changed applied by person, newest wins (Router.on_people): no inbox row for them.
    consume(
        ctx,
        topic_names=[topics.TICKETS, topics.PEOPLE, topics.INCIDENTS],
        handlers=sla.chain(router.handlers(), clocks.handlers(), announcer.handlers()),
        idempotent=[TicketCreated.TYPE, PersonChanged.TYPE, AgentSeen.TYPE],
    )
    app = build_app(
        ctx,
        uses_redis=True,
        on_start=sla.starting(router.start, clocks.seed_emails),
        background=(
            router.sweep,
            router.reconcile,
            clocks.run,
            clocks.predict,
            gauges.refresh_gauges,
            announcer.run,
        ),
        title="careloop routing",
    )
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    app.include_router(handlers.http_routes(ctx, router))
    app.include_router(api.admin_routes(ctx, router))
    return app
