"""The reports' HTTP API, for supervisors and admins: improvement actions (R10.3) with their
before/after measurement, and the kept reports."""

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from services.metrics.reports import repo
from services.metrics.reports.domain import TARGETABLE, ActionStatus
from services.metrics.reports.gather import Figures, measure_action
from services.metrics.reports.periods import Kind
from services.metrics.reports.settings import ReportSettings
from shared import people
from shared.agents import Role, bearer_auth
from shared.http import Utf8JsonRoute
from shared.problems import problems
from shared.service import Context
from shared.text import Line, Text

Metric = Literal[TARGETABLE]  # type: ignore[valid-type]  # the KPIs, from one list
READERS = (Role.SUPERVISOR, Role.ADMIN)


class ActionFields(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    problem: Line = Field(min_length=1, max_length=500, description="What the report showed.")
    department: Line = Field(min_length=1, max_length=100)
    owner: Line = Field(min_length=1, max_length=100, description="Who answers for it.")
    target_metric: Metric = Field(description="The report's KPI the action should move.")
    target_value: float | None = Field(
        None, ge=0, description="The value to reach (percent, minutes, hours, or a count)."
    )
    started_on: date = Field(description="The day it starts: before it is the 'before'.")
    deadline: date
    status: ActionStatus = ActionStatus.PLANNED
    notes: Text | None = Field(None, max_length=5000)


class ActionChanges(BaseModel):
    """The fields to change; those left out keep their value."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    problem: Line | None = Field(None, min_length=1, max_length=500)
    department: Line | None = Field(None, min_length=1, max_length=100)
    owner: Line | None = Field(None, min_length=1, max_length=100)
    target_metric: Metric | None = None
    target_value: float | None = Field(None, ge=0)
    started_on: date | None = None
    deadline: date | None = None
    status: ActionStatus | None = None
    notes: Text | None = Field(None, max_length=5000)


class Measurement(BaseModel):
    before: float | None = Field(description="The metric over the window before it started.")
    after: float | None = Field(description="The metric from its start, to today at most.")
    change: float | None = Field(description="after − before (percentage points for a %).")
    verdict: str = Field(description="better, worse, same or unknown")
    target_met: bool | None
    overdue: bool


class ActionView(ActionFields):
    action_id: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    measurement: Measurement | None = None


class KeptReport(BaseModel):
    kind: Kind
    period_start: date
    period_end: date
    language: str
    created_at: datetime
    emailed_at: datetime | None
    emailed_to: list[str] | None
    html: str = Field(description="Where the HTML is.")
    pdf: str = Field(description="Where the PDF is.")


def _field_error(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def routes(ctx: Context[Any]) -> APIRouter:
    """/v1/improvement-actions and /v1/reports, for supervisors and admins (the people desk
    announces, with the API tokens desk issued them: `shared.people`)."""
    api = APIRouter(
        prefix="/v1", route_class=Utf8JsonRoute, max_body_size=ctx.settings.http_max_body_bytes
    )
    settings = ReportSettings()
    authenticated = bearer_auth(lambda: ctx.pool, people.person_by_token)

    async def supervisor(person: Annotated[asyncpg.Record, Depends(authenticated)]) -> str:
        if Role(person["role"]) not in READERS:
            raise HTTPException(403, "only a supervisor or an admin may do this")
        return str(person["agent_id"])

    Supervisor = Annotated[str, Depends(supervisor)]
    ActionId = Annotated[int, Path(ge=1, le=2**63 - 1)]

    async def view(row: Any, *, measure: bool) -> ActionView:
        found = dict(row)
        measurement = None
        if measure:
            async with ctx.pool.acquire() as conn:
                done = await measure_action(
                    Figures(conn),
                    found,
                    zone=settings.zone,
                    until=datetime.now(UTC),
                    window=timedelta(days=settings.action_window_days),
                )
            m = done.measured
            measurement = Measurement(
                before=m.before,
                after=m.after,
                change=m.change.delta,
                verdict=m.change.verdict,
                target_met=m.target_met,
                overdue=done.overdue,
            )
        return ActionView(**found, measurement=measurement)

    @api.post(
        "/improvement-actions",
        status_code=201,
        summary="Start tracking an improvement action",
        responses=problems(400, 401, 403, 413, 422, 503),
    )
    async def create(body: ActionFields, who: Supervisor) -> ActionView:
        if body.deadline < body.started_on:
            raise _field_error("deadline", "the deadline is before the start")
        async with ctx.pool.acquire() as conn:
            row = await repo.create_action(conn, body.model_dump(), by=who)
        return await view(row, measure=False)

    @api.get(
        "/improvement-actions",
        summary="Every improvement action, with its metric before and after",
        responses=problems(401, 403, 503),
    )
    async def listing(_: Supervisor) -> list[ActionView]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.actions(conn)
        return [await view(r, measure=True) for r in rows]

    @api.get(
        "/improvement-actions/{action_id}",
        summary="One improvement action, with its metric before and after",
        responses=problems(401, 403, 404, 422, 503),
    )
    async def one(action_id: ActionId, _: Supervisor) -> ActionView:
        async with ctx.pool.acquire() as conn:
            row = await repo.action(conn, action_id)
        if row is None:
            raise HTTPException(404, f"no improvement action {action_id}")
        return await view(row, measure=True)

    @api.patch(
        "/improvement-actions/{action_id}",
        summary="Change an improvement action (its status, owner, deadline…)",
        responses=problems(400, 401, 403, 404, 413, 422, 503),
    )
    async def change(action_id: ActionId, body: ActionChanges, _: Supervisor) -> ActionView:
        fields = body.model_dump(exclude_unset=True)
        for name in (
            "problem",
            "department",
            "owner",
            "target_metric",
            "started_on",
            "deadline",
            "status",
        ):
            if name in fields and fields[name] is None:
                raise _field_error(name, "may not be null")
        if not fields:
            raise _field_error("body", "give at least one field to change")
        async with ctx.pool.acquire() as conn, conn.transaction():
            held = await repo.action(conn, action_id)
            if held is None:
                raise HTTPException(404, f"no improvement action {action_id}")
            start = fields.get("started_on", held["started_on"])
            if fields.get("deadline", held["deadline"]) < start:
                raise _field_error("deadline", "the deadline is before the start")
            row = await repo.update_action(conn, action_id, fields)
        return await view(row, measure=True)

    @api.get(
        "/reports",
        summary="The kept reports, newest first",
        responses=problems(401, 403, 422, 503),
    )
    async def reports(_: Supervisor, limit: int = 100) -> list[KeptReport]:
        if not 1 <= limit <= 1000:
            raise HTTPException(422, "limit: between 1 and 1000")
        async with ctx.pool.acquire() as conn:
            rows = await repo.list_reports(conn, limit)
        return [
            KeptReport(
                **dict(r),
                html=f"/v1/reports/{r['kind']}/{r['period_start']}.html",
                pdf=f"/v1/reports/{r['kind']}/{r['period_start']}.pdf",
            )
            for r in rows
        ]

    @api.get(
        "/reports/{kind}/{start}.{fmt}",
        summary="A kept report as HTML or PDF",
        responses={
            **problems(401, 403, 404, 422, 503),
            200: {"content": {"text/html": {}, "application/pdf": {}}},
        },
    )
    async def report(
        kind: Kind, start: date, fmt: Literal["html", "pdf"], _: Supervisor
    ) -> Response:
        async with ctx.pool.acquire() as conn:
            body = await repo.report_file(conn, kind, start, fmt)
        if body is None:
            raise HTTPException(404, f"no {kind} report from {start}")
        if fmt == "pdf":
            return Response(body, media_type="application/pdf")
        return Response(body, media_type="text/html; charset=utf-8")

    return api
