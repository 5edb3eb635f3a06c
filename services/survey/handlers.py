"""survey's edges: schedule on resolution, send when due, take answers on a small page."""

import secrets
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader
from pydantic import ValidationError
from uuid6 import uuid7

from services.survey import repo
from services.survey.domain import DIMENSIONS, AnswerIn, due_at, is_low
from services.survey.settings import SurveySettings
from shared import outbox
from shared.events import (
    Envelope,
    SurveyAnswered,
    SurveyLowScore,
    SurveyRequested,
    TicketReopened,
    TicketResolved,
    new_event,
)
from shared.inbox import Handler
from shared.service import Context, every

log = structlog.get_logger(__name__)
PRODUCER = "survey"
DUE_BATCH = 500
# HTML pages: escape everything (select_autoescape would not, as the names end in .j2).
_pages = Environment(loader=PackageLoader("services.survey", "templates"), autoescape=True)


class Surveys:
    def __init__(self, ctx: Context[SurveySettings]) -> None:
        self._ctx = ctx
        self._s = ctx.settings

    async def on_resolved(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        rows = []
        for e in events:
            resolved: TicketResolved = e.data
            rows.append(
                {
                    "survey_id": str(uuid7()),
                    "ticket_id": str(resolved.ticket_id),
                    "resolution_event_id": str(e.event_id),
                    "token": secrets.token_urlsafe(24),
                    "due_at": due_at(resolved.resolved_at, self._s.delay_seconds).isoformat(),
                }
            )
        await repo.schedule(conn, rows)

    async def on_reopened(self, conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        await repo.cancel_scheduled(conn, [e.data.ticket_id for e in events])

    def handlers(self) -> dict[str, Handler]:
        return {TicketResolved.TYPE: self.on_resolved, TicketReopened.TYPE: self.on_reopened}

    async def send_due(self, ctx: Context[SurveySettings]) -> None:
        """Durable survey delay: due times live in Postgres, so a restart loses none."""

        async def step() -> bool:
            async with ctx.pool.acquire() as conn, conn.transaction():
                due = await repo.take_due(conn, DUE_BATCH)
                await outbox.add(
                    conn,
                    [
                        new_event(
                            SurveyRequested(
                                survey_id=r["survey_id"],
                                ticket_id=r["ticket_id"],
                                survey_url=f"{self._s.public_url}/s/{r['token']}",
                                requested_at=r["requested_at"],
                            ),
                            producer=PRODUCER,
                        )
                        for r in due
                    ],
                )
            return len(due) == DUE_BATCH

        await every(self._s.poll_seconds, step, what="survey scheduler")

    async def answer(self, token: str, answer: AnswerIn) -> bool:
        """Store the answer once; returns whether it was low (and so reopened the case)."""
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            survey = await repo.lock_by_token(conn, token)
            if survey is None:
                raise HTTPException(404, "no such survey")
            if survey["status"] == "answered":
                raise HTTPException(409, "this survey was already answered")
            if survey["status"] != "requested":
                raise HTTPException(409, f"this survey is {survey['status']}")
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


def http_routes(surveys: Surveys) -> APIRouter:
    api = APIRouter()

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = _pages.get_template(name).render(dimensions=DIMENSIONS, **context)
        return HTMLResponse(html, status_code=status)

    @api.get("/s/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def form(token: str) -> HTMLResponse:
        return page("form.html.j2")

    @api.post("/s/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def submit_form(
        token: str,
        overall: Annotated[str, Form()],
        response_speed: Annotated[str, Form()],
        problem_solving: Annotated[str, Form()],
        attitude: Annotated[str, Form()],
        comment: Annotated[str | None, Form()] = None,
    ) -> HTMLResponse:
        try:
            answer = AnswerIn.model_validate(
                {
                    "overall": overall,
                    "response_speed": response_speed,
                    "problem_solving": problem_solving,
                    "attitude": attitude,
                    "comment": comment,
                }
            )
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            return page("form.html.j2", status=422, error=problems)
        low = await surveys.answer(token, answer)
        return page("thanks.html.j2", low=low)

    @api.post("/v1/surveys/{token}", summary="Answer a survey")
    async def submit_api(token: str, answer: AnswerIn) -> dict[str, Any]:
        return {"low_score": await surveys.answer(token, answer)}

    return api
