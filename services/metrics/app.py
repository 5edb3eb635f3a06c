"""metrics' wiring: the all-topics consumer and the gauge refresher behind /metrics."""

from fastapi import FastAPI

from services.metrics import handlers
from services.metrics.settings import MetricsSettings
from shared.service import build_app, new_context


def create_app(settings: MetricsSettings) -> FastAPI:
    ctx = new_context("metrics", settings)
    ctx.extras["refresh_seconds"] = settings.refresh_seconds
    handlers.subscribe_events(ctx)
    return build_app(ctx, background=(handlers.refresh_gauges,), title="careloop metrics")
