"""notify's wiring: the event consumer and the SMTP senders."""

from fastapi import FastAPI

from services.notify import handlers
from services.notify.settings import NotifySettings
from shared.service import build_app, new_context


def create_app(settings: NotifySettings) -> FastAPI:
    ctx = new_context("notify", settings)
    handlers.subscribe_events(ctx)
    senders = handlers.Senders(settings)
    return build_app(ctx, background=(senders.run,), title="careloop notify")
