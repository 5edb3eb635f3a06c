"""incident's wiring: the ticket, people and learner consumers, the early warning, the notice releaser
and the response group's sender, the incidents API and the public status page."""

from fastapi import FastAPI
from prometheus_client import Counter

from services.incident import api, handlers, pages, repo
from services.incident.delivery import Delivery
from services.incident.settings import IncidentSettings
from services.incident.watch import Watch
from shared import http, learners, people, topics
from shared.agents import load_agents
from shared.service import Context, build_app, consume, new_context

SNAPSHOTS = Counter(
    "careloop_incident_learner_snapshots_total",
    "Learner snapshots incident read from careloop.learners.v1 (for enrolments), by outcome: "
    "stored, stale (not newer than the one held), rejected (dead-lettered).",
    ["outcome"],
)


def create_app(settings: IncidentSettings) -> FastAPI:
    ctx = new_context("incident", settings)
    incidents = handlers.Incidents(ctx)
    consume(
        ctx,
        topic_names=[topics.TICKETS, topics.ROUTING, topics.PEOPLE, topics.REMEDY_ACKS],
        handlers={**incidents.handlers(), **people.HANDLERS},
        idempotent=handlers.IDEMPOTENT | people.IDEMPOTENT,
    )
    learners.consume_snapshots(ctx, upsert=repo.outreach.upsert_learners, counted=SNAPSHOTS)
    watch = Watch(ctx, incidents)
    delivery = Delivery(ctx)

    async def start(ctx: Context[IncidentSettings]) -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await people.seed(conn, load_agents(settings).agents)
        await incidents.start(ctx)

    app = build_app(
        ctx,
        on_start=start,
        background=(watch.run, watch.forget, delivery.release_notices, delivery.send_pages),
        title="careloop incident",
    )
    app.include_router(api.http_routes(ctx, incidents))
    app.include_router(pages.page_routes(ctx))
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app
