"""incident's wiring: the ticket, people, learner and course-change consumers, the early warning,
the notice releaser and the response group's sender, the incidents and course-changes API, the
public status page and the learners' reply page."""

from typing import Any

import asyncpg
from fastapi import FastAPI
from prometheus_client import Counter

from services.incident import api, handlers, pages, repo, retention
from services.incident.changes import api as change_api
from services.incident.changes.handlers import Changes
from services.incident.delivery import Delivery
from services.incident.settings import IncidentSettings
from services.incident.watch import Watch
from shared import http, learners, people, topics
from shared.agents import load_agents
from shared.events import CourseChangeSubmitted, Envelope, TicketCreated
from shared.inbox import Handler
from shared.retention import scheduled
from shared.service import Context, build_app, consume, new_context

SNAPSHOTS = Counter(
    "careloop_incident_learner_snapshots_total",
    "Learner snapshots incident read from careloop.learners.v1 (for enrolments), by outcome: "
    "stored, stale (not newer than the one held), rejected (dead-lettered).",
    ["outcome"],
)


def both(first: Handler, then: Handler) -> Handler:
    """One event type, two use cases, in the same transaction."""

    async def handle(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        await first(conn, events)
        await then(conn, events)

    return handle


def create_app(settings: IncidentSettings) -> FastAPI:
    ctx = new_context("incident", settings)
    incidents = handlers.Incidents(ctx)
    changes = Changes(ctx)
    consume(
        ctx,
        topic_names=[
            topics.TICKETS,
            topics.ROUTING,
            topics.PEOPLE,
            topics.REMEDY_ACKS,
            topics.COURSE_CHANGES,
        ],
        handlers={
            **incidents.handlers(),
            **people.HANDLERS,
            TicketCreated.TYPE: both(incidents.on_created, changes.on_created),
            CourseChangeSubmitted.TYPE: changes.on_submitted,
        },
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
        background=(
            watch.run,
            watch.forget,
            delivery.release_notices,
            delivery.send_pages,
            scheduled(retention.run_once, what="incident"),
        ),
        title="careloop incident",
    )
    app.include_router(api.http_routes(ctx, incidents))
    app.include_router(pages.page_routes(ctx))
    app.include_router(change_api.http_routes(ctx, changes))
    app.include_router(change_api.page_routes(ctx, changes))
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app
