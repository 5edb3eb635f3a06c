"""survey's edges: schedule on resolution, send when due, take answers on a small page."""

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import asyncpg
import msgspec
import structlog
from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader
from prometheus_client import Counter
from pydantic import ValidationError
from uuid6 import uuid7

from services.survey import repo
from services.survey.domain import (
    COURSE_DIMENSIONS,
    DIMENSIONS,
    TEACHING_DIMENSIONS,
    AnswerIn,
    NotOpen,
    PeriodicAnswerIn,
    UnknownSurvey,
    WrongCourses,
    check_courses,
    check_open,
    due_at,
    is_low,
    learner_key,
    low_periodic_follow_up,
    outside_quiet_period,
    period_of,
)
from services.survey.settings import SurveySettings
from shared import outbox, tokens
from shared.events import (
    CourseScores,
    Envelope,
    Learner,
    SurveyAnswered,
    SurveyLowScore,
    SurveyPeriodicAnswered,
    SurveyPeriodicRequested,
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
PERIODIC = "periodic"
PERIODIC_NEEDS = (
    "this is a periodic survey: answer it at POST /v1/periodic-surveys/{token} with the four "
    "service scores, teacher_level, teaching_method, teaching_attitude and courses"
)
PERIODIC_FIELD = "teacher_level"  # a field only the periodic form has
PERIODIC_SCHEDULED = Counter(
    "careloop_survey_periodic_scheduled",
    "Periodic surveys the follow-up programme scheduled for active learners (R9.3).",
)
SNAPSHOTS = Counter(
    "careloop_survey_learner_snapshots",
    "Learner snapshots survey read from careloop.learners.v1 (for the periodic programme), "
    "by outcome: stored, stale (not newer than the one held), rejected (dead-lettered).",
    ["outcome"],
)
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
                rows = {r["survey_id"]: r for r in due}
                await outbox.add(
                    conn,
                    [
                        self._requested(
                            rows[r["survey_id"]],
                            f"{self._s.public_url}/s/{raw[r['survey_id']]}",
                            r["requested_at"],
                        )
                        for r in sent
                    ],
                )
            QUIET.inc(len(quiet))
            return len(due) == DUE_BATCH

        await every(self._s.poll_seconds, step, what="survey scheduler")

    def _requested(
        self, due: asyncpg.Record, url: str, at: datetime
    ) -> Envelope[SurveyRequested] | Envelope[SurveyPeriodicRequested]:
        if due["kind"] == PERIODIC:
            return by_learner(
                SurveyPeriodicRequested(
                    survey_id=due["survey_id"],
                    learner=Learner(
                        name=due["name"] or due["learner_id"],
                        email=due["email"],
                        learner_id=due["learner_id"],
                    ),
                    locale=due["locale"] or "zh",
                    period=due["period"],
                    survey_url=url,
                    requested_at=at,
                ),
            )
        return new_event(
            SurveyRequested(
                survey_id=due["survey_id"],
                ticket_id=due["ticket_id"],
                survey_url=url,
                requested_at=at,
            ),
            producer=PRODUCER,
        )

    async def run_programme(self, ctx: Context[SurveySettings]) -> None:
        """The periodic programme (R9.3): each round, every active learner without a survey this
        period and outside the quiet period gets one, due at once (`send_due` sends it). One
        statement for all learners; a (learner, period) pair is surveyed once however often
        this runs."""

        async def step() -> bool:
            at = now()
            async with ctx.pool.acquire() as conn:
                added = await repo.schedule_periodic(
                    conn,
                    period_of(at, self._s.periodic_months),
                    active_since=at - timedelta(days=30.44 * self._s.active_months),
                    quiet_since=at - timedelta(days=self._s.quiet_days),
                )
            PERIODIC_SCHEDULED.inc(added)
            return False

        await every(self._s.programme_seconds, step, what="periodic survey programme")

    async def check(self, token: str) -> asyncpg.Record:
        """The survey behind `token`; UnknownSurvey or NotOpen unless it takes an answer."""
        async with self._ctx.pool.acquire() as conn:
            survey = await repo.by_token(conn, tokens.digest(token))
        if survey is None:
            raise UnknownSurvey("no such survey")
        check_open(survey["status"])
        return survey

    async def answer(self, token: str, answer: AnswerIn) -> bool:
        """Store the answer once; returns whether it was low (and so went to a supervisor).
        A periodic survey takes a PeriodicAnswerIn rating exactly its courses."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            survey = await repo.lock_by_token(conn, tokens.digest(token))
            if survey is None:
                raise UnknownSurvey("no such survey")
            check_open(survey["status"])
            if survey["kind"] == PERIODIC:
                if not isinstance(answer, PeriodicAnswerIn):
                    raise WrongCourses(PERIODIC_NEEDS)
                check_courses(answer, course_ids(survey))
                return await self._answer_periodic(conn, survey, answer)
            if isinstance(answer, PeriodicAnswerIn):
                raise WrongCourses(
                    "this survey is about a ticket: answer it at POST /v1/surveys/{token} "
                    "with the four scores only"
                )
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

    async def _answer_periodic(
        self, conn: asyncpg.Connection, survey: asyncpg.Record, answer: PeriodicAnswerIn
    ) -> bool:
        """Store it and announce it; a low one also opens a follow-up ticket for a supervisor
        (R9.2). Returns whether it was low."""
        row = await repo.record_periodic_answer(conn, survey["survey_id"], answer)
        scores = answer.model_dump(exclude={"courses"})
        event = SurveyPeriodicAnswered(
            survey_id=survey["survey_id"],
            learner_id=survey["learner_id"],
            period=survey["period"],
            courses=tuple(CourseScores(**c.model_dump()) for c in answer.courses),
            answered_at=row["answered_at"],
            **scores,
        )
        events: list[Envelope[Any]] = [by_learner(event)]
        low = is_low(answer, self._s.low_score)
        if low:
            who = await repo.learner(conn, survey["learner_id"])
            follow_up = low_periodic_follow_up(
                survey["survey_id"],
                learner=Learner(
                    learner_id=survey["learner_id"],
                    name=(who and who["name"]) or survey["learner_id"],
                    email=who and who["email"],
                ),
                locale=(who and who["locale"]) or "zh",
                period=survey["period"],
                answer=answer,
                at=row["answered_at"],
            )
            events.append(new_event(follow_up, producer=PRODUCER, cause=events[0]))
        await outbox.add(conn, events)
        return low


P = TypeVar("P", SurveyPeriodicRequested, SurveyPeriodicAnswered)


def by_learner(data: P) -> Envelope[P]:
    """A periodic survey's event is about a learner, not a ticket: the learner id is its key."""
    learner_id = (
        data.learner.learner_id if isinstance(data, SurveyPeriodicRequested) else data.learner_id
    )
    return msgspec.structs.replace(new_event(data, producer=PRODUCER), key=str(learner_id))


def course_ids(survey: asyncpg.Record) -> list[str]:
    return [c["course_id"] for c in survey["courses"]]


def is_token(token: str) -> bool:
    """Whether `token` could be one careloop sent; anything else is answered 404 unread."""
    return re.fullmatch(TOKEN_PATTERN, token) is not None


def form_answer(form: dict[str, str]) -> AnswerIn | str:
    """The answer on a posted form, or what is wrong with it, naming each field."""
    try:
        return AnswerIn.from_form({k: v for k, v in form.items() if k in FORM_FIELDS})
    except ValidationError as exc:
        return "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())


def periodic_form_answer(form: dict[str, str], courses: list[str]) -> PeriodicAnswerIn | str:
    """A periodic survey's answer on its posted form, or what is wrong, naming each field
    (a course's as `courses <n> <dimension>`)."""
    try:
        return PeriodicAnswerIn.from_periodic_form(form, courses)
    except ValidationError as exc:
        return "; ".join(
            f"{' '.join(str(part) for part in e['loc'])}: {e['msg']}" for e in exc.errors()
        )


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
        html = _pages.get_template(name).render(
            dimensions=DIMENSIONS,
            course_dimensions=COURSE_DIMENSIONS,
            teaching_dimensions=TEACHING_DIMENSIONS,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def survey_form(
        survey: asyncpg.Record, status: int = 200, error: str | None = None
    ) -> HTMLResponse:
        if survey is not None and survey["kind"] == PERIODIC:
            return page("periodic_form.html.j2", status, courses=survey["courses"], error=error)
        return page("form.html.j2", status, error=error)

    def refusal(exc: Exception) -> HTMLResponse:
        if isinstance(exc, NotOpen):
            return page("message.html.j2", status=409, already_answered=True)
        return page("message.html.j2", status=404, already_answered=False)

    @web.get(
        "/s/{token}",
        response_class=HTMLResponse,
        summary="The survey page the e-mailed link opens (a ticket's, or a periodic one)",
        responses={**pages(404, 409), **problems(503)},
    )
    async def form(token: TokenInPath) -> HTMLResponse:
        if not is_token(token):
            return refusal(UnknownSurvey(token))
        try:
            survey = await surveys.check(token)
        except (UnknownSurvey, NotOpen) as exc:
            return refusal(exc)
        return survey_form(survey)

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
            fields = await read_form(request)
        except FormRefused as exc:
            return page("form.html.j2", status=exc.status, error=exc.reason)
        survey = None
        if PERIODIC_FIELD in fields:  # the periodic form: its courses are the survey's
            try:
                survey = await surveys.check(token)
            except (UnknownSurvey, NotOpen) as exc:
                return refusal(exc)
        answer = (
            periodic_form_answer(fields, course_ids(survey))
            if survey is not None and survey["kind"] == PERIODIC
            else form_answer(fields)
        )
        if isinstance(answer, str):
            return survey_form(survey, 422, answer)
        try:
            low = await surveys.answer(token, answer)
        except WrongCourses as exc:
            return page("form.html.j2", 422, error=str(exc))
        except (UnknownSurvey, NotOpen) as exc:
            return refusal(exc)
        return page("thanks.html.j2", low=low)

    @api.post(
        "/v1/surveys/{token}",
        summary="Answer a ticket's survey",
        responses=problems(400, 404, 409, 413, 422, 503),
    )
    async def submit_api(token: TokenInPath, answer: AnswerIn) -> dict[str, Any]:
        return await api_answer(token, answer)

    @api.post(
        "/v1/periodic-surveys/{token}",
        summary="Answer a periodic survey: the service, the teaching and each of its courses",
        responses=problems(400, 404, 409, 413, 422, 503),
    )
    async def submit_periodic_api(token: TokenInPath, answer: PeriodicAnswerIn) -> dict[str, Any]:
        return await api_answer(token, answer)

    async def api_answer(token: str, answer: AnswerIn) -> dict[str, Any]:
        if not is_token(token):
            raise HTTPException(404, "no such survey")
        try:
            return {"low_score": await surveys.answer(token, answer)}
        except UnknownSurvey as exc:
            raise HTTPException(404, "no such survey") from exc
        except NotOpen as exc:
            raise HTTPException(409, str(exc)) from exc
        except WrongCourses as exc:
            raise HTTPException(422, str(exc)) from exc

    web.include_router(api)
    return web
