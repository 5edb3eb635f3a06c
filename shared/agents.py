"""The agents seed file (teams, skills, capacity, tokens, first passwords) that desk and
routing load.

The demo agents in deploy/local/agents.yaml load only in a local run (CARELOOP_ENV=local):
their tokens and passwords are in the repository, so anywhere else they would let anyone in.
desk makes a user of each agent it does not have yet (the token becomes their first API token);
after that desk's account API owns the people. routing seeds its tables from the file only
while they are empty; after that its admin API owns skills, capacity and schedules.
"""

import hashlib
from collections.abc import Awaitable, Callable
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import yaml
from fastapi import Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.emails import EmailAddress
from shared.events import Category, Channel, Priority
from shared.settings import DEFAULT_AGENTS_FILE, CommonSettings, Environment


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


AGENT_ID_PATTERN = r"^[a-z][a-z0-9_-]{1,49}$"
TEAM_PATTERN = r"^[a-z][a-z0-9_]{1,49}$"
LANGUAGES = ("zh", "en")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Clock = Annotated[str, Field(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]


def _known(kind: str, given: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    """`given` without repeats, or a ValueError naming every value not in `known`."""
    if unknown := [v for v in dict.fromkeys(given) if v not in known]:
        raise ValueError(f"unknown {kind}: {', '.join(unknown)} (known: {', '.join(known)})")
    return tuple(dict.fromkeys(given))


class WeeklySchedule(BaseModel):
    """When an agent works, per weekday, in local time of `timezone`: [start, end) spans such as
    ["09:00", "18:00"] ("24:00" ends at midnight). A day left out is a day off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "Asia/Shanghai"
    weekly: dict[Day, tuple[tuple[Clock, Clock], ...]]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone: {value}") from None
        return value

    @field_validator("weekly")
    @classmethod
    def _spans(
        cls, value: dict[str, tuple[tuple[str, str], ...]]
    ) -> dict[str, tuple[tuple[str, str], ...]]:
        for day, spans in value.items():
            for start, end in spans:
                if start == "24:00" or (
                    end != "24:00" and time.fromisoformat(end) <= time.fromisoformat(start)
                ):
                    raise ValueError(f"{day}: {start}-{end} does not end after it starts")
        return value


class Skills(BaseModel):
    """What an agent may take, besides their teams. Empty lists mean any; `senior` agents get
    VIP and urgent tickets first; `vip` agents are preferred for VIP learners."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    languages: tuple[str, ...] = LANGUAGES
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    course_lines: tuple[Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9_]{0,31}$")], ...] = Field(
        (), description="Course ids (PY-101) or their prefix before a dash (PY)."
    )
    priorities: tuple[str, ...] = ()
    vip: bool = False
    senior: bool = False
    schedule: WeeklySchedule | None = Field(None, description="None: always on shift.")

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _known("languages", value, LANGUAGES)

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _known("categories", value, tuple(Category))

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _known("channels", value, tuple(Channel))

    @field_validator("priorities")
    @classmethod
    def _priorities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _known("priorities", value, tuple(Priority))


class AgentSeed(Skills):
    id: str = Field(pattern=AGENT_ID_PATTERN)
    name: str
    role: Role = Role.AGENT
    teams: tuple[Annotated[str, Field(pattern=TEAM_PATTERN)], ...]
    capacity: int = Field(5, ge=0, le=100_000)
    online: bool = True
    token: str = Field(min_length=8, description="Demo API token; production issues its own.")
    email: EmailAddress | None = Field(
        None, description="Where SLA warnings and escalations reach the agent."
    )
    password: str | None = Field(
        None,
        min_length=10,
        description="First password for logging into desk's workspace (demo users); "
        "production refuses the demo ones. Without it, an admin sets one.",
    )

    @property
    def token_sha256(self) -> str:
        return token_hash(self.token)


class Seed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agents: tuple[AgentSeed, ...]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TokenLookup = Callable[[asyncpg.Connection, str], Awaitable[asyncpg.Record | None]]


def bearer_auth(
    pool: Callable[[], asyncpg.Pool], find: TokenLookup
) -> Callable[..., Awaitable[asyncpg.Record]]:
    """A FastAPI dependency: the agent whose `Authorization: Bearer` token this is, else 401.

    Only the token's SHA-256 is stored; `find` looks that up in the calling service's schema.
    """

    async def authenticated(
        authorization: Annotated[str | None, Header()] = None,
    ) -> asyncpg.Record:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        async with pool().acquire() as conn:
            row = await find(conn, token_hash(authorization.removeprefix("Bearer ")))
        if row is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        return row

    return authenticated


class DemoCredentialsRefused(RuntimeError):
    """A production start that would let the demo tokens in, or has no agents of its own."""


def load_seed(path: Path | str) -> Seed:
    return Seed.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def load_agents(settings: CommonSettings) -> Seed:
    """The agents this process may seed: any file in a local run; in production only a file
    given in CARELOOP_AGENTS_FILE with none of the demo tokens (a token starting with `demo-`
    or one of deploy/local/agents.yaml's), else `DemoCredentialsRefused`."""
    if settings.env is Environment.LOCAL:
        return load_seed(settings.agents_file)
    if Path(settings.agents_file).resolve() == DEFAULT_AGENTS_FILE:
        raise DemoCredentialsRefused(
            "refusing to start: no agents configured. CARELOOP_ENV is production, where the demo "
            "agents of deploy/local/agents.yaml do not load; set CARELOOP_AGENTS_FILE to your "
            "agents file (or CARELOOP_ENV=local for a local run)"
        )
    seed = load_seed(settings.agents_file)
    known = load_seed(DEFAULT_AGENTS_FILE).agents if DEFAULT_AGENTS_FILE.exists() else ()
    demo_hashes = {a.token_sha256 for a in known}
    demo = [
        a.id for a in seed.agents if a.token.startswith("demo-") or a.token_sha256 in demo_hashes
    ]
    if demo:
        raise DemoCredentialsRefused(
            f"refusing to start: {settings.agents_file} gives demo tokens to {', '.join(demo)}. "
            "CARELOOP_ENV is production: give every agent a token of its own"
        )
    demo_passwords = {a.password for a in known if a.password is not None}
    if demo := [a.id for a in seed.agents if a.password in demo_passwords]:
        raise DemoCredentialsRefused(
            f"refusing to start: {settings.agents_file} gives demo passwords to "
            f"{', '.join(demo)}. CARELOOP_ENV is production: give each a password of its own "
            "(or none, and have an admin set it)"
        )
    return seed
