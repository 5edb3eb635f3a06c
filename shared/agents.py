"""The agents seed file (teams, skills, capacity, demo tokens) that desk and routing load."""

import hashlib
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import asyncpg
import yaml
from fastapi import Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class AgentSeed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,49}$")
    name: str
    role: Role = Role.AGENT
    teams: tuple[str, ...]
    languages: tuple[str, ...] = ("zh", "en")
    capacity: int = Field(5, ge=0, le=100_000)
    online: bool = True
    token: str = Field(min_length=8, description="Demo API token; production issues its own.")

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


def load_seed(path: Path | str) -> Seed:
    return Seed.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
