"""The agents seed file (teams, skills, capacity, demo tokens) that desk and routing load."""

import hashlib
from enum import StrEnum
from pathlib import Path

import yaml
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


def load_seed(path: Path | str) -> Seed:
    return Seed.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
