"""survey's edges: schedule on resolution, send when due, take answers on a small page."""

import re
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader
from prometheus_client import Counter
from pydantic import ValidationError
from uuid6 import uuid7

from services.survey import repo
from services.survey.domain import (
    DIMENSIONS,
    AnswerIn,
    NotOpen,
    UnknownSurvey,
    check_open,
    due_at,
    is_low,
    learner_key,
    outside_quiet_period,
)
from services.survey.settings import SurveySettings
from shared import outbox, tokens
from shared.events import (
    Envelope,
    SurveyAnswered,
    SurveyLowScore,
    SurveyRequested,
    TicketCreated,
    TicketReopened,
    TicketResolved,
    new_event,
    now,
)
from shared.forms import FormRefused, read_form
from shared.http import Utf8JsonRoute
from shared.inbox import Handler
from shared.problems import pages, problems
from shared.service import Context, every
from shared.text import TOKEN_PATTERN

log = structlog.get_logger(__name__)
PRODUCER = "survey"
DUE_BATCH = 500
# HTML pages: escape everything (select_autoescape would not, as the names end in .j2).
_pages = Environment(loader=PackageLoader("services.survey", "templates"), autoescape=True)
FORM_FIELDS = (*(name for name, _ in DIMENSIONS), "comment")
# A ticket resolved with its incident is not surveyed: the learner's one message about it is
# the incident's resolution notice, and an agent's service is not what they would rate.
BY_INCIDENT = "incident"
QUIET = Counter(
    "careloop_survey_quiet",
    "Surveys not sent because their learner was sent one within the quiet period (R9.3).",
)


class Surveys:
    def __init__(self, ctx: Context[SurveySettings]) -> None:
        self._ctx = ctx
        self._s = ctx.settings

    async def on_resolved(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        rows = []
        for e in events:
            resolved: TicketResolved = e.data
            if resolved.resolution_code == BY_INCIDENT:
                continue
            rows.append(
                {
                    "survey_id": str(uuid7()),
                    "ticket_id": str(resolved.ticket_id),
                    "resolution_event_id": str(e.event_id),
                    "due_at": due_at(resolved.resolved_at, self._s.delay_seconds).isoformat(),
                }
            )
        await repo.schedule(conn, rows)

    async def on_created(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """Remember each ticket's learner: the quiet period follows learners, not tickets."""
        created: list[TicketCreated] = [e.data for e in events]
        await repo.record_learners(
            conn,
            [(c.ticket_id, key) for c in created if (key := learner_key(c.learner)) is not None],
        )

    async def on_reopened(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        await repo.cancel_scheduled(conn, [e.data.ticket_id for e in events])

    def handlers(self) -> dict[str, Handler]:
        return {
            TicketCreated.TYPE: self.on_created,
            TicketResolved.TYPE: self.on_resolved,
            TicketReopened.TYPE: self.on_reopened,
        }

    async def send_due(self, ctx: Context[SurveySettings]) -> None:
        """Durable survey delay: due times live in Postgres, so a restart loses none.

        Each survey's token is made here: only its digest is stored, the raw token travels
        in `survey.requested`'s link and nowhere else. A survey whose learner was sent one
        within the quiet period is not sent: it is kept as 'quiet' and counted.
        """

        async def step() -> bool:
            async with ctx.pool.acquire() as conn, conn.transaction():
                due = await repo.lock_due(conn, DUE_BATCH)
                if not due:
                    return False
                keys = {r["survey_id"]: r["learner_key"] for r in due}
                send, quiet = outside_quiet_period(
                    list(keys.items()),
                    await repo.last_sent(conn, [k for k in keys.values() if k is not None]),
                    now(),
                    self._s.quiet_days,
                )
                await repo.mark_quiet(conn, quiet)
                raw = {survey_id: tokens.new_token() for survey_id in send}
                sent = await repo.mark_requested(
                    conn,
                    [
                        (survey_id, tokens.digest(t), keys[survey_id])
                        for survey_id, t in raw.items()
                    ],
                )
                await outbox.add(
                    conn,
                    [
                        new_event(
                            SurveyRequested(
                                survey_id=r["survey_id"],
                                ticket_id=r["ticket_id"],
                                survey_url=f"{self._s.public_url}/s/{raw[r['survey_id']]}",
                                requested_at=r["requested_at"],
                            ),
                            producer=PRODUCER,
                        )
                        for r in sent
                    ],
                )
            QUIET.inc(len(quiet))
            return len(due) == DUE_BATCH

        await every(self._s.poll_seconds, step, what="survey scheduler")

    async def check(self, token: str) -> None:
        """Raise UnknownSurvey or NotOpen unless the survey behind `token` takes an answer."""
        async with self._ctx.pool.acquire() as conn:
            survey = await repo.by_token(conn, tokens.digest(token))
        if survey is None:
            raise UnknownSurvey("no such survey")
        check_open(survey["status"])

    async def answer(self, token: str, answer: AnswerIn) -> bool:
        """Store the answer once; returns whether it was low (and so went to a supervisor)."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            survey = await repo.lock_by_token(conn, tokens.digest(token))
            if survey is None:
                raise UnknownSurvey("no such survey")
            check_open(survey["status"])
            row = await repo.record_answer(conn, survey["survey_id"], answer)
            events: list[Envelope[Any]] = [
                new_event(
                    SurveyAnswered(
                        survey_id=survey["survey_id"],
                        ticket_id=survey["ticket_id"],
                        answered_at=row["answered_at"],
                        **answer.model_dump(),
                    ),
                    producer=PRODUCER,
                )
            ]
            low = is_low(answer, self._s.low_score)
            if low:
                events.append(
                    new_event(
                        SurveyLowScore(
                            survey_id=survey["survey_id"],
                            ticket_id=survey["ticket_id"],
                            overall=answer.overall,
                            answered_at=row["answered_at"],
                        ),
                        producer=PRODUCER,
                        cause=events[0],
                    )
                )
            await outbox.add(conn, events)
        return low


def is_token(token: str) -> bool:
    """Whether `token` could be one careloop sent; anything else is answered 404 unread."""
    return re.fullmatch(TOKEN_PATTERN, token) is not None


def form_answer(form: dict[str, str]) -> AnswerIn | str:
    """The answer on a posted form, or what is wrong with it, naming each field."""
    try:
        return AnswerIn.from_form({k: v for k, v in form.items() if k in FORM_FIELDS})
    except ValidationError as exc:
        return "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())


TokenInPath = Annotated[
    str,
    Path(
        description="The token from the e-mailed link; one that careloop did not send is 404.",
        json_schema_extra={"pattern": TOKEN_PATTERN},
    ),
]


# The form's fields, documented by hand: the route reads the form itself so that every
# problem, a missing field too, is answered with the page rather than JSON.
FORM_BODY = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": [name for name, _ in DIMENSIONS],
                "properties": {
                    **{
                        name: {"type": "string", "enum": ["1", "2", "3", "4", "5"]}
                        for name, _ in DIMENSIONS
                    },
                    "comment": {"type": "string", "maxLength": 2000},
                },
            }
        }
    },
}


def http_routes(surveys: Surveys, *, max_body_bytes: int) -> APIRouter:
    """The survey page (HTML, its refusals too) and its JSON API."""
    web = APIRouter(tags=["pages"], max_body_size=max_body_bytes)
    api = APIRouter(route_class=Utf8JsonRoute, max_body_size=max_body_bytes)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = _pages.get_template(name).render(dimensions=DIMENSIONS, **context)
        return HTMLResponse(html, status_code=status)

    def refusal(exc: Exception) -> HTMLResponse:
        if isinstance(exc, NotOpen):
            return page("message.html.j2", status=409, already_answered=True)
        return page("message.html.j2", status=404, already_answered=False)

    @web.get(
        "/s/{token}",
        response_class=HTMLResponse,
        summary="The survey page the e-mailed link opens",
        responses={**pages(404, 409), **problems(503)},
    )
    async def form(token: TokenInPath) -> HTMLResponse:
        if not is_token(token):
            return refusal(UnknownSurvey(token))
        try:
            await surveys.check(token)
        except (UnknownSurvey, NotOpen) as exc:
            return refusal(exc)
        return page("form.html.j2")

    @web.post(
        "/s/{token}",
        response_class=HTMLResponse,
        summary="The survey page's form: scores as strings '1' to '5', an optional comment",
        responses={**pages(400, 404, 409, 415, 422), **problems(413, 503)},
        openapi_extra={"requestBody": FORM_BODY},
    )
    async def submit_form(token: TokenInPath, request: Request) -> HTMLResponse:
        if not is_token(token):
            return refusal(UnknownSurvey(token))
        try:
            answer = form_answer(await read_form(request))
        except FormRefused as exc:
            return page("form.html.j2", status=exc.status, error=exc.reason)
        if isinstance(answer, str):
            return page("form.html.j2", status=422, error=answer)
        try:
            low = await surveys.answer(token, answer)
        except (UnknownSurvey, NotOpen) as exc:
            return refusal(exc)
        return page("thanks.html.j2", low=low)

    @api.post(
        "/v1/surveys/{token}",
        summary="Answer a survey",
        responses=problems(400, 404, 409, 413, 503),
    )
    async def submit_api(token: TokenInPath, answer: AnswerIn) -> dict[str, Any]:
        if not is_token(token):
            raise HTTPException(404, "no such survey")
        try:
            return {"low_score": await surveys.answer(token, answer)}
        except UnknownSurvey as exc:
            raise HTTPException(404, "no such survey") from exc
        except NotOpen as exc:
            raise HTTPException(409, str(exc)) from exc

    web.include_router(api)
    return web
