"""metrics' wiring: the all-topics consumer and the gauge refresher behind /metrics."""

from fastapi import FastAPI

from services.metrics import handlers
from services.metrics.settings import MetricsSettings
from shared import topics
from shared.service import build_app, consume, new_context


def create_app(settings: MetricsSettings) -> FastAPI:
    ctx = new_context("metrics", settings)
    consume(
        ctx,
        topic_names=[topics.TICKETS, topics.ROUTING, topics.NOTIFY, topics.SURVEY],
        handlers=handlers.EVENT_HANDLERS,
    )
    return build_app(ctx, background=(handlers.refresh_gauges,), title="careloop metrics")
