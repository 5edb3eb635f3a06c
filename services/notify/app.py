"""notify's wiring: the event consumer and the SMTP senders."""

from fastapi import FastAPI

from services.notify import handlers
from services.notify.senders import Senders
from services.notify.settings import NotifySettings
from shared import topics
from shared.service import build_app, consume, new_context


def create_app(settings: NotifySettings) -> FastAPI:
    ctx = new_context("notify", settings)
    consume(
        ctx,
        topic_names=[topics.TICKETS, topics.ROUTING, topics.SURVEY],
        handlers=handlers.EVENT_HANDLERS,
        idempotent=handlers.IDEMPOTENT,
    )
    senders = Senders(settings)
    return build_app(ctx, background=(senders.run,), title="careloop notify")
