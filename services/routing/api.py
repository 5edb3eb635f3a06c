"""routing's admin API: agents' skills, capacity and schedules, teams and channel weights, audited.

People (their name, e-mail, role, teams, whether they may work) are desk's: routing learns them
from careloop.people.v1 (`Router.on_people`). Admins change; supervisors read; agents get 403.
A change commits with its audit row (who, what, before and after), then this replica reloads
its roster at once and the others within CARELOOP_ROUTING_SWEEP_INTERVAL_SECONDS: no restart,
no file.
"""

from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.routing import repo
from services.routing.handlers import AgentView, Router, agent_view
from services.routing.settings import RoutingSettings
from services.routing.skills import Schedule, parse_schedule, team_hours_lost
from shared import people
from shared.agents import AGENT_ID_PATTERN, TEAM_PATTERN, Role, Skills, bearer_auth
from shared.emails import EmailAddress
from shared.events import Channel, now
from shared.http import Utf8JsonRoute
from shared.problems import problems
from shared.service import Context
from shared.text import Line

AgentId = Annotated[str, Path(pattern=AGENT_ID_PATTERN, description="An agent's id.")]
TeamId = Annotated[str, Path(pattern=TEAM_PATTERN, description="A team's id.")]
Team = Annotated[str, Field(pattern=TEAM_PATTERN)]
# What an audit row keeps of an agent: their configuration, not presence or the token.
CONFIG = (
    "name",
    "email",
    "role",
    "teams",
    "capacity",
    "languages",
    "categories",
    "channels",
    "course_lines",
    "priorities",
    "vip",
    "senior",
    "schedule",
)


class AgentSpec(Skills):
    """An agent as the admin API takes it (every skill field is optional: empty means any)."""

    name: Line = Field(min_length=1, max_length=100)
    email: EmailAddress | None = Field(None, description="Where SLA warnings reach the agent.")
    role: Role = Role.AGENT
    teams: tuple[Team, ...] = Field(min_length=1)
    capacity: int = Field(5, ge=0, le=100_000, description="In units of channel weight.")


# What desk owns of a person; routing takes it from careloop.people.v1, never from its API.
DESKS = ("name", "email", "role", "teams")


class AgentChange(BaseModel):
    """The fields to change; the others stay. `schedule: null` means always on shift. A
    person's name, e-mail, role and teams are desk's (PATCH desk /v1/users/{agent_id})."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _not_desks(cls, value: Any) -> Any:
        if isinstance(value, dict) and (given := [f for f in DESKS if f in value]):
            raise ValueError(
                f"{', '.join(given)}: a person's name, e-mail, role and teams are desk's; "
                "change them with PATCH /v1/users/{agent_id} on desk"
            )
        return value

    capacity: int | None = None
    languages: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    course_lines: tuple[str, ...] | None = None
    priorities: tuple[str, ...] | None = None
    vip: bool | None = None
    senior: bool | None = None
    schedule: dict[str, Any] | None = None


class TeamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Line = Field(min_length=1, max_length=100)


class TeamView(BaseModel):
    team: str
    name: str
    agents: int


class Weights(BaseModel):
    """Channel -> the share of capacity one open ticket takes (chat 1, e-mail 0.5)."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, Annotated[float, Field(gt=0, le=100)]]

    @field_validator("weights")
    @classmethod
    def _channels(cls, value: dict[str, float]) -> dict[str, float]:
        if unknown := [c for c in value if c not in tuple(Channel)]:
            raise ValueError(
                f"unknown channels: {', '.join(unknown)} (known: {', '.join(Channel)})"
            )
        return value


class AuditEntry(BaseModel):
    id: int
    at: Any
    actor: str
    action: str
    subject: str
    before: Any
    after: Any


def config(row: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(row[k]) if isinstance(row[k], tuple | list) else row[k] for k in CONFIG}


def changed_config(current: asyncpg.Record, given: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's configuration after `given` (AgentChange's fields that were set), validated
    as a whole (pydantic's ValidationError names what is wrong). Also for the board's change
    (agent.change_requested, services/routing/status.py)."""
    spec = AgentSpec.model_validate({**config(current), **given})
    return config(spec.model_dump(mode="json"))


async def teams_without_hours(
    conn: asyncpg.Connection, agent_id: str, current: asyncpg.Record, after: Mapping[str, Any]
) -> list[str]:
    """The teams the agent was in that the change leaves with nobody on any shift (refused)."""
    members = await repo.team_schedules(conn, current["teams"])

    def schedules(changed: bool) -> dict[str, list[Schedule | None]]:
        out: dict[str, list[Schedule | None]] = {t: [] for t in current["teams"]}
        for m in members:
            teams, raw = m["teams"], m["schedule"]
            if changed and m["agent_id"] == agent_id:
                teams, raw = after["teams"], after["schedule"]
            for t in teams:
                if t in out:
                    out[t].append(parse_schedule(raw))
        return out

    return team_hours_lost(schedules(False), schedules(True))


def no_hours_reason(lost: list[str]) -> str:
    return (
        f"refused: team {', '.join(lost)} would have no working hours at all (no member "
        "on any shift); give someone else hours first"
    )


def admin_routes(ctx: Context[RoutingSettings], router: Router) -> APIRouter:
    api = APIRouter(
        prefix="/v1/admin",
        route_class=Utf8JsonRoute,
        max_body_size=ctx.settings.http_max_body_bytes,
    )
    caller = bearer_auth(lambda: ctx.pool, people.person_by_token)

    def role_at_least(*roles: Role) -> Callable[..., Coroutine[Any, Any, asyncpg.Record]]:
        async def check(who: Annotated[asyncpg.Record, Depends(caller)]) -> asyncpg.Record:
            if Role(who["role"]) not in roles:
                raise HTTPException(403, f"only {' or '.join(roles)} may do this")
            return who

        return check

    Reader = Annotated[asyncpg.Record, Depends(role_at_least(Role.SUPERVISOR, Role.ADMIN))]
    Admin = Annotated[asyncpg.Record, Depends(role_at_least(Role.ADMIN))]

    async def applied() -> None:
        """This replica takes the change at once; queued tickets may now find an agent."""
        await router.sync()
        await router.drain_now()

    async def view(row: asyncpg.Record) -> AgentView:
        loads = await router.load.loads([row["agent_id"]])
        return agent_view(row, available=router.available(row, now()), load=loads[row["agent_id"]])

    @api.post(
        "/agents",
        summary="Not here: people are created in desk",
        description="409 always: create the person with POST /v1/users on desk; routing learns "
        "them from careloop.people.v1 (default skills, offline) and this API then sets their "
        "skills, capacity and schedule.",
        responses=problems(401, 403, 409, 503),
    )
    async def create(_: Admin) -> None:
        raise HTTPException(
            409, "people are created in desk (POST /v1/users on desk); routing learns them from it"
        )

    @api.patch(
        "/agents/{agent_id}",
        summary="Change an agent's teams, skills, capacity or schedule",
        responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def change(agent_id: AgentId, body: AgentChange, who: Admin) -> AgentView:
        given = body.model_dump(exclude_unset=True)
        async with ctx.pool.acquire() as conn, conn.transaction():
            current = await repo.get_agent(conn, agent_id)
            if current is None:
                raise HTTPException(404, "no such agent")
            before = config(current)
            try:
                after = changed_config(current, given)
            except ValidationError as exc:
                raise RequestValidationError(
                    [
                        {**e, "loc": ("body", *e["loc"])}
                        for e in exc.errors(include_url=False, include_context=False)
                    ]
                ) from None
            if lost := await teams_without_hours(conn, agent_id, current, after):
                raise HTTPException(409, no_hours_reason(lost))
            row = current
            if changed := {k: after[k] for k in given if after[k] != before[k]}:
                row = await repo.update_agent(conn, agent_id, changed)
                await repo.audit(
                    conn,
                    actor=who["agent_id"],
                    action="agent.changed",
                    subject=f"agent:{agent_id}",
                    before=before,
                    after=config(row),
                )
        await applied()
        return await view(row)

    @api.get(
        "/teams", summary="Teams and how many agents each has", responses=problems(401, 403, 503)
    )
    async def teams(_: Reader) -> list[TeamView]:
        async with ctx.pool.acquire() as conn:
            return [TeamView(**dict(r)) for r in await repo.list_teams(conn)]

    @api.put(
        "/teams/{team}",
        summary="Add a team or rename it",
        responses=problems(400, 401, 403, 413, 422, 503),
    )
    async def put_team(team: TeamId, body: TeamIn, who: Admin) -> TeamView:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await repo.upsert_team(conn, team, body.name)
            await repo.audit(
                conn,
                actor=who["agent_id"],
                action="team.created" if before is None else "team.changed",
                subject=f"team:{team}",
                before=None if before is None else dict(before),
                after={"team": team, "name": body.name},
            )
            (row,) = [r for r in await repo.list_teams(conn) if r["team"] == team]
        return TeamView(**dict(row))

    @api.get(
        "/channel-weights",
        summary="Capacity each channel's ticket takes",
        responses=problems(401, 403, 503),
    )
    async def weights(_: Reader) -> Weights:
        async with ctx.pool.acquire() as conn:
            return Weights(weights=await repo.channel_weights(conn))

    @api.put(
        "/channel-weights",
        summary="Change channel weights (the channels named; the others stay)",
        description="New assignments take the new weight; open ones keep the one they took.",
        responses=problems(400, 401, 403, 413, 422, 503),
    )
    async def put_weights(body: Weights, who: Admin) -> Weights:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await repo.channel_weights(conn)
            await repo.set_channel_weights(conn, body.weights)
            after = await repo.channel_weights(conn)
            await repo.audit(
                conn,
                actor=who["agent_id"],
                action="weights.changed",
                subject="channel_weights",
                before=before,
                after=after,
            )
        await applied()
        return Weights(weights=after)

    @api.get(
        "/audit", summary="Who changed what, newest first", responses=problems(401, 403, 422, 503)
    )
    async def audit(
        _: Reader,
        subject: Annotated[Line | None, Query(max_length=100, description="e.g. agent:ana")] = None,
        before: Annotated[int | None, Query(ge=1, description="Entries older than this id")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[AuditEntry]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.audit_log(conn, subject=subject, before_id=before, limit=limit)
        return [AuditEntry(**dict(r)) for r in rows]

    return api
