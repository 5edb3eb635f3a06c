"""incident's wiring: the ticket, people and learner consumers, the early warning, the notice releaser
and the response group's sender, the incidents API and the public status page."""

from typing import Any

import structlog
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from services.incident import api, handlers, pages, repo
from services.incident.delivery import Delivery
from services.incident.settings import IncidentSettings
from services.incident.watch import Watch
from shared import dlq, http, people, topics
from shared.agents import load_agents
from shared.events import LearnerSnapshot, decode_snapshot
from shared.inbox import batch_subscriber_options
from shared.service import Context, build_app, consume, new_context

log = structlog.get_logger(__name__)
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
    consume_learners(ctx)
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


def consume_learners(ctx: Context[IncidentSettings]) -> None:
    """careloop.learners.v1: who is enrolled in which course and how to reach them, for the
    notices to everyone enrolled in an incident's courses. A newer snapshot replaces the held
    one, so a redelivery is harmless; an invalid one is dead-lettered naming the field."""

    def snapshot(record: ConsumerRecord[Any, Any]) -> LearnerSnapshot:
        return decode_snapshot(record.value)

    async def store(snapshots: list[LearnerSnapshot]) -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            stored = await repo.outreach.upsert_learners(conn, snapshots)
        SNAPSHOTS.labels("stored").inc(stored)
        SNAPSHOTS.labels("stale").inc(len(snapshots) - stored)

    @ctx.broker.subscriber(
        topics.LEARNERS,
        **batch_subscriber_options(ctx.settings, "incident-learners"),
        title="incident:learners",
    )
    async def on_learners(message: KafkaMessage) -> None:
        raw = message.raw_message
        records: tuple[ConsumerRecord[Any, Any], ...] = raw if isinstance(raw, tuple) else (raw,)
        found, rejected = dlq.sort_out(records, snapshot, consumer="incident-learners")
        rejected += await dlq.apply_each(found, store, consumer="incident-learners")
        if rejected:
            SNAPSHOTS.labels("rejected").inc(len(rejected))
            log.warning("learner snapshots rejected", count=len(rejected))
            await dlq.publish(ctx.broker, rejected, service="incident")
