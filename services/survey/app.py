"""survey's wiring: the resolution consumer, the due-survey clock, the survey page."""

from fastapi import FastAPI

from services.survey import handlers
from services.survey.settings import SurveySettings
from shared import http, topics
from shared.service import build_app, consume, new_context


def create_app(settings: SurveySettings) -> FastAPI:
    ctx = new_context("survey", settings)
    surveys = handlers.Surveys(ctx)
    consume(ctx, topic_names=[topics.TICKETS], handlers=surveys.handlers())
    app = build_app(ctx, background=(surveys.send_due,), title="careloop survey")
    app.include_router(handlers.http_routes(surveys, max_body_bytes=settings.http_max_body_bytes))
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app
