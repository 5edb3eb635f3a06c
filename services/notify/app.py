"""notify's wiring: the event consumer (tickets, routing, surveys, knowledge's articles and
incident notices), the SMTP senders and the HTTP channels' senders."""

from fastapi import FastAPI

from services.notify import handlers, retention
from services.notify.http_senders import HttpSenders
from services.notify.senders import Senders, Wakeup
from services.notify.settings import NotifySettings
from shared import topics
from shared.retention import scheduled
from shared.service import build_app, consume, new_context


def create_app(settings: NotifySettings) -> FastAPI:
    ctx = new_context("notify", settings)
    consume(
        ctx,
        topic_names=[
            topics.TICKETS,
            topics.ROUTING,
            topics.SURVEY,
            topics.KNOWLEDGE,
            topics.INCIDENTS,
        ],
        handlers=handlers.event_handlers(settings),
        idempotent=handlers.IDEMPOTENT,
    )
    wakeup = Wakeup()
    senders = Senders(settings, wakeup)
    http = HttpSenders(settings, wakeup)
    return build_app(
        ctx,
        background=(
            wakeup.run,
            senders.run,
            http.run,
            scheduled(retention.run_once, what="notify"),
        ),
        title="careloop notify",
    )
