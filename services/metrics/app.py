"""metrics' wiring: the all-topics consumer, in large batches, the gauge refresher, the
consumer-lag reader, and the reports (their facts, schedule and API)."""

from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord
from fastapi import FastAPI

from services.metrics import callbacks, handlers, lag
from services.metrics.reports import api as reports_api
from services.metrics.reports import facts as report_facts
from services.metrics.reports import schedule as report_schedule
from services.metrics.settings import MetricsSettings
from shared import http, people, topics
from shared.agents import load_agents
from shared.kafka import type_of
from shared.service import Context, build_app, consume, new_context

TOPICS = (topics.TICKETS, topics.ROUTING, topics.NOTIFY, topics.SURVEY, topics.PEOPLE)
_RANK = {event_type: rank for rank, event_type in enumerate(handlers.EVENT_HANDLERS)}
# Every type metrics consumes, each event type the reports read keeping its facts too (the
# call-backs' counter and their facts alike).
HANDLERS = {
    **report_facts.with_facts({**handlers.EVENT_HANDLERS, **callbacks.HANDLERS}),
    **people.HANDLERS,
}


def create_app(settings: MetricsSettings) -> FastAPI:
    ctx = new_context("metrics", settings)
    _consume_in_bulk(ctx)

    async def seed_people(ctx: Context[MetricsSettings]) -> None:
        async with ctx.pool.acquire() as conn:
            await people.seed(conn, load_agents(settings).agents)

    app = build_app(
        ctx,
        on_start=seed_people,
        background=(handlers.refresh_gauges, lag.export_lag, report_schedule.run_schedule),
        title="careloop metrics",
    )
    app.include_router(reports_api.routes(ctx))
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app


def _consume_in_bulk(ctx: Context[MetricsSettings]) -> None:
    """The consumer, with fetches that wait for a burst to gather.

    The hops on a learner's path fetch whatever is there at once; metrics trails them by up
    to `batch_wait_ms` so that a burst reaches it in a few batches of thousands of events,
    each one transaction of a few set-based statements, instead of one per few dozen events.
    """
    settings = ctx.settings
    consume(
        ctx,
        topic_names=TOPICS,
        handlers=HANDLERS,
        idempotent=handlers.IDEMPOTENT | people.IDEMPOTENT,
        options={
            "max_records": settings.batch_max_records,
            "fetch_max_wait_ms": settings.batch_wait_ms,
            "fetch_min_bytes": settings.batch_min_bytes,
        },
        arrange=by_type,
    )


def by_type(records: Sequence[ConsumerRecord[Any, Any]]) -> list[ConsumerRecord[Any, Any]]:
    """The batch's records grouped by event type, facts first (`EVENT_HANDLERS`' order).

    The consumer applies each run of one type with one statement, and a ticket's events
    alternate types within a partition (an older routing wrote triaged, assigned, triaged...).
    metrics may reorder them: its view takes the newest status by time and each fact once,
    whatever the order of arrival (topics are not ordered with each other anyway).
    """
    return sorted(records, key=lambda r: _RANK.get(type_of(r), len(_RANK)))
