"""desk's wiring: the ticket and learner consumers, the agent API, the learner's pages, the
auto-close clock."""

from typing import Any

import structlog
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from services.desk import (
    api,
    handlers,
    incidents,
    learner_api,
    pages,
    portal,
    presence,
    repo,
    self_service,
)
from services.desk.accounts import setup as accounts
from services.desk.cases import api as cases_api
from services.desk.cases import handlers as cases
from services.desk.cases.settings import CaseSettings
from services.desk.retention import retention
from services.desk.settings import DeskSettings
from services.desk.web import routes as workspace
from shared import dlq, http, topics
from shared.events import LearnerSnapshot, decode_snapshot
from shared.inbox import batch_subscriber_options
from shared.service import Context, build_app, consume, new_context

log = structlog.get_logger(__name__)
SNAPSHOTS = Counter(
    "careloop_learner_snapshots_total",
    "Learner snapshots desk read from careloop.learners.v1, by outcome: stored (newer than "
    "the one held), stale (older or equal: ignored), rejected (dead-lettered).",
    ["outcome"],
)


def create_app(settings: DeskSettings) -> FastAPI:
    ctx = new_context("desk", settings)
    case_settings = CaseSettings()
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
        },
        idempotent=[*handlers.IDEMPOTENT, *self_service.IDEMPOTENT, *presence.IDEMPOTENT],
    )
    consume_learners(ctx)

    app = build_app(
        ctx,
        on_start=accounts.seed_users,
        background=(
            handlers.auto_close,
            cases.clock(case_settings),
            handlers.index_search,
            retention,
        ),
        title="careloop desk",
    )
    accounts.install(app, ctx)
    app.include_router(api.http_routes(ctx))
    app.include_router(api.ops_routes(ctx))
    app.include_router(pages.page_routes(ctx))
    app.include_router(portal.routes(ctx))
    app.include_router(learner_api.routes(ctx))
    app.include_router(workspace.routes(ctx))
    app.mount("/workspace/static", StaticFiles(directory=workspace.STATIC), name="workspace")
    app.include_router(
        cases_api.routes(ctx, current_agent=api.agent_dependency(ctx), settings=case_settings)
    )
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app


def consume_learners(ctx: Context[DeskSettings]) -> None:
    """careloop.learners.v1: the LMS's learner snapshots (bare JSON, key = learner_id). A
    newer snapshot replaces the held one, an older one changes nothing, so a redelivery is
    harmless and needs no inbox; what is not a valid snapshot goes to the dead-letter topic
    with the field that is wrong."""

    def snapshot(record: ConsumerRecord[Any, Any]) -> LearnerSnapshot:
        return decode_snapshot(record.value)

    async def store(snapshots: list[LearnerSnapshot]) -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            stored = await repo.upsert_learners(conn, snapshots)
        SNAPSHOTS.labels("stored").inc(stored)
        SNAPSHOTS.labels("stale").inc(len(snapshots) - stored)

    @ctx.broker.subscriber(
        topics.LEARNERS,
        **batch_subscriber_options(ctx.settings, "desk-learners"),
        title="desk:learners",
    )
    async def on_learners(message: KafkaMessage) -> None:
        raw = message.raw_message
        records: tuple[ConsumerRecord[Any, Any], ...] = raw if isinstance(raw, tuple) else (raw,)
        snapshots, rejected = dlq.sort_out(records, snapshot, consumer="desk-learners")
        rejected += await dlq.apply_each(snapshots, store, consumer="desk-learners")
        if rejected:
            SNAPSHOTS.labels("rejected").inc(len(rejected))
            log.warning("learner snapshots rejected", count=len(rejected))
            await dlq.publish(ctx.broker, rejected, service="desk")
