"""survey's wiring: the resolution and learner-snapshot consumers, the due-survey clock, the
periodic programme (unless CARELOOP_SURVEY_PERIODIC_MONTHS is 0), the survey page."""

from fastapi import FastAPI

from services.survey import handlers, repo, retention
from services.survey.settings import SurveySettings
from shared import http, learners, topics
from shared.retention import scheduled
from shared.service import build_app, consume, new_context


def create_app(settings: SurveySettings) -> FastAPI:
    ctx = new_context("survey", settings)
    surveys = handlers.Surveys(ctx)
    consume(ctx, topic_names=[topics.TICKETS], handlers=surveys.handlers())
    learners.consume_snapshots(ctx, upsert=repo.upsert_learners, counted=handlers.SNAPSHOTS)
    background = [surveys.send_due, scheduled(retention.run_once, what="survey")]
    if settings.periodic_months > 0:
        background.append(surveys.run_programme)
    app = build_app(ctx, background=tuple(background), title="careloop survey")
    app.include_router(handlers.http_routes(surveys, max_body_bytes=settings.http_max_body_bytes))
    http.install(app, max_body_bytes=settings.http_max_body_bytes)
    return app
