"""incident's JSON API: alerts, incidents (supervisors and admins open, update, announce and
resolve them; agents read them and link or unlink tickets), and the post-incident report."""

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from services.incident import repo
from services.incident.domain import (
    AnnouncementIn,
    CompensationIn,
    Conflict,
    Forbidden,
    IncidentIn,
    NotFound,
    ResolveIn,
    UpdateIn,
)
from services.incident.handlers import Caller, Incidents
from services.incident.settings import IncidentSettings
from shared import people
from shared.agents import Role, bearer_auth
from shared.http import Utf8JsonRoute
from shared.params import DIGITS, IdempotencyKey
from shared.problems import problems
from shared.service import Context


class AlertOut(BaseModel):
    alert_id: UUID
    kind: str
    dimension: str
    value: str
    observed: float
    expected: float
    p_value: float | None
    title: str
    keywords: list[str]
    sample_ticket_ids: list[UUID]
    raised_at: datetime
    incident_id: UUID | None


class EntryOut(BaseModel):
    """One timeline entry; `public` ones are the status page's progress updates."""

    at: datetime
    kind: str
    status: str | None
    message: str | None
    message_en: str | None
    by: str
    public: bool


class IncidentOut(BaseModel):
    incident_id: UUID
    number: str
    title: str
    title_en: str | None
    severity: str
    status: str
    criteria: dict[str, Any]
    owner_id: str | None
    alert_id: UUID | None
    opened_by: str
    opened_at: datetime
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    status_url: str
    timeline: list[EntryOut] | None = None
    linked: int | None = None


class LinkedTicket(BaseModel):
    ticket_id: UUID
    number: str | None
    subject: str | None
    channel: str | None
    course_id: str | None
    category: str | None
    linked_by: str | None  # None: linked on arrival by the criteria
    linked_at: datetime
    unlinked_by: str | None
    unlinked_at: datetime | None


class Announced(BaseModel):
    """How many learners the notice will reach (each once), released at the providers' pace."""

    learners: int


class NoticeCount(BaseModel):
    kind: str
    channel: str
    requested: int
    released: int


class PageCount(BaseModel):
    target: str
    sent: int
    failed: int
    last_error: str | None


class CompensationOut(BaseModel):
    """A compensation batch: what each learner gets, who asked and approved, how many
    learners it reaches (set at approval), and how far its remedies got."""

    batch_id: UUID
    incident_id: UUID
    kind: str
    amount: str | None
    currency: str | None
    points: int | None
    days: int | None
    course_id: str | None
    reason: str
    requested_by: str
    requested_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    learners: int | None
    issued: int = 0
    acknowledged: int = 0
    rejected: int = 0


class SlaImpact(BaseModel):
    """What the incident did to its tickets' service levels: the due times routing set when
    each was routed, against when it was answered and resolved. A linked ticket is held and its
    clocks stand still, so a due time that passed while it waited is a breach the hold kept
    off the reports; routing's breaches are those before the link or after an unlinking."""

    tickets_with_targets: int = Field(description="Linked tickets routing set due times for")
    first_response_would_have_breached: int = Field(
        description="Their first-response due time passed before the first reply or the "
        "resolution (or by now, still unanswered)"
    )
    first_response_breached: int = Field(description="routing raised sla.breached for these")
    resolution_would_have_breached: int = Field(
        description="Their resolution due time passed before they were resolved (or by now)"
    )
    resolution_breached: int
    minutes_paused: float = Field(
        description="Minutes the linked tickets were held, their clocks paused, summed: from "
        "each link until the unlinking or the ticket's resolution, or now"
    )


class Report(BaseModel):
    """The post-incident report: what happened when, the tickets it held and their SLA, the
    learners told and the response group's messages."""

    incident: IncidentOut
    minutes_open: float
    tickets_linked: int
    tickets_unlinked: int
    linked_on_arrival: int
    sla: SlaImpact
    notices: list[NoticeCount]
    pages: list[PageCount]
    compensations: list[CompensationOut]
    cost: dict[str, float] = Field(
        description="What the approved compensation gives away in total: money per currency, "
        "points, extension days"
    )


def compensation_out(row: asyncpg.Record) -> CompensationOut:
    return CompensationOut(
        **{k: v for k, v in dict(row).items() if k in CompensationOut.model_fields}
    )


def cost(batches: list[asyncpg.Record]) -> dict[str, float]:
    """The approved batches' remedies summed: money per currency, points, extension days."""
    total: dict[str, float] = {}
    for b in batches:
        if b["approved_at"] is None:
            continue
        n = b["learners"] or 0
        if b["kind"] == "coupon":
            total[b["currency"]] = total.get(b["currency"], 0.0) + float(b["amount"]) * n
        elif b["kind"] == "points":
            total["points"] = total.get("points", 0.0) + b["points"] * n
        else:
            total["extension_days"] = total.get("extension_days", 0.0) + b["days"] * n
    return total


@contextlib.contextmanager
def as_http() -> Iterator[None]:
    """incident's refusals as HTTP answers."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except Forbidden as exc:
        raise HTTPException(403, str(exc)) from exc


IncidentId = Annotated[UUID, Path(description="The incident's id.")]
TicketId = Annotated[UUID, Path(description="The ticket's id.")]
BatchId = Annotated[UUID, Path(description="The compensation batch's id.")]
Limit = Annotated[int, Query(ge=1, le=1000), DIGITS]
LINKED_ALREADY: dict[int | str, dict[str, Any]] = {
    200: {"description": "The ticket was linked already", "model": LinkedTicket}
}


def http_routes(ctx: Context[IncidentSettings], incidents: Incidents) -> APIRouter:
    settings = ctx.settings
    router = APIRouter(route_class=Utf8JsonRoute, max_body_size=settings.http_max_body_bytes)
    authenticated = bearer_auth(lambda: ctx.pool, people.person_by_token)

    async def current(row: Annotated[asyncpg.Record, Depends(authenticated)]) -> Caller:
        return Caller(agent_id=row["agent_id"], name=row["name"], role=Role(row["role"]))

    async def manager(caller: Annotated[Caller, Depends(current)]) -> Caller:
        if not caller.manager:
            raise HTTPException(403, "only supervisors and admins run incidents")
        return caller

    Agent = Annotated[Caller, Depends(current)]
    Manager = Annotated[Caller, Depends(manager)]

    def out(row: asyncpg.Record, **extra: Any) -> IncidentOut:
        return IncidentOut(
            **{k: v for k, v in dict(row).items() if k in IncidentOut.model_fields},
            status_url=settings.status_url(row["number"]),
            **extra,
        )

    async def read(conn: asyncpg.Connection, incident_id: UUID) -> IncidentOut:
        row = await repo.incidents.incident(conn, incident_id)
        if row is None:
            raise HTTPException(404, f"no incident {incident_id}")
        entries = await repo.incidents.timeline(conn, [incident_id], public_only=False)
        return out(
            row,
            timeline=[EntryOut(**{k: e[k] for k in EntryOut.model_fields}) for e in entries],
        )

    @router.get("/v1/alerts", responses=problems(401, 422, 503))
    async def list_alerts(_: Agent, limit: Limit = 50) -> list[AlertOut]:
        """The newest alerts the early warning raised."""
        async with ctx.pool.acquire() as conn:
            rows = await repo.incidents.alerts(conn, limit)
        return [AlertOut(**{k: r[k] for k in AlertOut.model_fields}) for r in rows]

    @router.post(
        "/v1/incidents", status_code=201, responses=problems(401, 403, 404, 409, 413, 422, 503)
    )
    async def open_incident(given: IncidentIn, caller: Manager) -> IncidentOut:
        """Open an incident by hand or from an alert: its response group is told at once, and
        the matching tickets of the last hour are linked."""
        with as_http():
            row = await incidents.open(given, by=caller.agent_id)
        async with ctx.pool.acquire() as conn:
            return await read(conn, row["incident_id"])

    @router.get("/v1/incidents", responses=problems(401, 422, 503))
    async def list_incidents(
        _: Agent,
        open_only: Annotated[bool, Query(alias="open", description="Only unresolved ones")] = False,
        limit: Limit = 50,
    ) -> list[IncidentOut]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.incidents.incidents(conn, open_only=open_only, limit=limit)
        return [out(r) for r in rows]

    @router.get("/v1/incidents/{incident_id}", responses=problems(401, 404, 422, 503))
    async def get_incident(incident_id: IncidentId, _: Agent) -> IncidentOut:
        """An incident with its whole timeline."""
        async with ctx.pool.acquire() as conn:
            return await read(conn, incident_id)

    @router.patch(
        "/v1/incidents/{incident_id}", responses=problems(401, 403, 404, 409, 413, 422, 503)
    )
    async def update_incident(
        incident_id: IncidentId, given: UpdateIn, caller: Manager
    ) -> IncidentOut:
        """A progress update: status, severity, owner or criteria, and what to tell (on the
        status page unless `public` is false); the response group hears it too."""
        with as_http():
            await incidents.update(incident_id, given, by=caller.agent_id)
        async with ctx.pool.acquire() as conn:
            return await read(conn, incident_id)

    @router.get("/v1/incidents/{incident_id}/tickets", responses=problems(401, 404, 422, 503))
    async def list_linked(
        incident_id: IncidentId, _: Agent, limit: Limit = 100
    ) -> list[LinkedTicket]:
        async with ctx.pool.acquire() as conn:
            if await repo.incidents.incident(conn, incident_id) is None:
                raise HTTPException(404, f"no incident {incident_id}")
            rows = await repo.incidents.linked(conn, incident_id, limit)
        return [LinkedTicket(**{k: r[k] for k in LinkedTicket.model_fields}) for r in rows]

    @router.put(
        "/v1/incidents/{incident_id}/tickets/{ticket_id}",
        status_code=201,
        responses={**LINKED_ALREADY, **problems(401, 404, 409, 422, 503)},
    )
    async def link_ticket(
        incident_id: IncidentId, ticket_id: TicketId, caller: Agent, response: Response
    ) -> LinkedTicket:
        """Link a ticket the criteria did not (or link again one that was unlinked)."""
        with as_http():
            if not await incidents.link(incident_id, ticket_id, by=caller.agent_id):
                response.status_code = 200
        async with ctx.pool.acquire() as conn:
            rows = await repo.incidents.linked(conn, incident_id, 1_000_000)
        [row] = [r for r in rows if r["ticket_id"] == ticket_id]
        return LinkedTicket(**{k: row[k] for k in LinkedTicket.model_fields})

    @router.delete(
        "/v1/incidents/{incident_id}/tickets/{ticket_id}",
        status_code=204,
        responses=problems(401, 404, 409, 422, 503),
    )
    async def unlink_ticket(incident_id: IncidentId, ticket_id: TicketId, caller: Agent) -> None:
        """The ticket is not part of the incident: it becomes an ordinary ticket again, and
        the criteria never link it to this incident again."""
        with as_http():
            await incidents.unlink(incident_id, ticket_id, by=caller.agent_id)

    @router.post(
        "/v1/incidents/{incident_id}/announcements",
        status_code=202,
        responses=problems(401, 403, 404, 409, 413, 422, 503),
    )
    async def announce(
        incident_id: IncidentId,
        given: AnnouncementIn,
        caller: Manager,
        idempotency_key: Annotated[
            IdempotencyKey | None,
            Header(
                alias="Idempotency-Key",
                description="The same key again (a retry after a lost answer) makes no second "
                "announcement and answers the first one's count.",
            ),
        ] = None,
    ) -> Announced:
        """A progress update on the status page, and a notice to each affected learner (the
        linked tickets' learners, or everyone enrolled in the incident's courses) on their
        channel, once each, at the pace the providers allow."""
        with as_http():
            n = await incidents.announce(
                incident_id, given, by=caller.agent_id, key=idempotency_key
            )
        return Announced(learners=n)

    @router.post(
        "/v1/incidents/{incident_id}/resolve",
        responses=problems(401, 403, 404, 409, 413, 422, 503),
    )
    async def resolve(incident_id: IncidentId, given: ResolveIn, caller: Manager) -> IncidentOut:
        """Resolve the incident and every linked ticket; each of their learners gets one
        message. A resolved incident cannot be resolved again (409)."""
        with as_http():
            await incidents.resolve(incident_id, given, by=caller.agent_id)
        async with ctx.pool.acquire() as conn:
            return await read(conn, incident_id)

    @router.get("/v1/incidents/{incident_id}/report", responses=problems(401, 404, 422, 503))
    async def report(incident_id: IncidentId, _: Agent) -> Report:
        async with ctx.pool.acquire() as conn:
            incident = await read(conn, incident_id)
            links = await repo.incidents.linked(conn, incident_id, 10_000_000)
            notices = await repo.outreach.notice_counts(conn, incident_id)
            pages = await repo.outreach.page_counts(conn, incident_id)
            batches = await repo.outreach.compensations(conn, incident_id)
            at = datetime.now(incident.opened_at.tzinfo)
            sla = await repo.tickets.sla_impact(conn, incident_id, at)
        end = incident.resolved_at or at
        return Report(
            incident=incident,
            minutes_open=round((end - incident.opened_at).total_seconds() / 60, 1),
            tickets_linked=sum(r["unlinked_at"] is None for r in links),
            tickets_unlinked=sum(r["unlinked_at"] is not None for r in links),
            linked_on_arrival=sum(r["linked_by"] is None for r in links),
            sla=SlaImpact(**{**dict(sla), "minutes_paused": round(sla["minutes_paused"], 1)}),
            notices=[NoticeCount(**dict(r)) for r in notices],
            pages=[PageCount(**dict(r)) for r in pages],
            compensations=[compensation_out(b) for b in batches],
            cost=cost(batches),
        )

    @router.post(
        "/v1/incidents/{incident_id}/compensations",
        status_code=201,
        responses=problems(401, 403, 404, 409, 413, 422, 503),
    )
    async def request_compensation(
        incident_id: IncidentId, given: CompensationIn, caller: Manager
    ) -> CompensationOut:
        """Ask for a compensation batch for the learners of the incident's linked tickets; a
        second supervisor or admin approves it (POST /v1/compensations/{batch_id}/approve)."""
        with as_http():
            row = await incidents.request_compensation(incident_id, given, by=caller.agent_id)
        return compensation_out(row)

    @router.get("/v1/incidents/{incident_id}/compensations", responses=problems(401, 404, 422, 503))
    async def list_compensations(incident_id: IncidentId, _: Agent) -> list[CompensationOut]:
        async with ctx.pool.acquire() as conn:
            if await repo.incidents.incident(conn, incident_id) is None:
                raise HTTPException(404, f"no incident {incident_id}")
            return [
                compensation_out(b) for b in await repo.outreach.compensations(conn, incident_id)
            ]

    @router.post(
        "/v1/compensations/{batch_id}/approve", responses=problems(401, 403, 404, 409, 422, 503)
    )
    async def approve_compensation(batch_id: BatchId, caller: Manager) -> CompensationOut:
        """Approve a batch someone else asked for: each learner of the incident's linked
        tickets (not compensated in kind already) gets one remedy on careloop.remedies.v1,
        exactly once. The requester cannot approve it (403), nor can anyone twice (409)."""
        with as_http():
            row = await incidents.approve_compensation(batch_id, by=caller.agent_id)
        return compensation_out(row)

    return router
