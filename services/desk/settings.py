"""desk's settings on top of the shared ones."""

from pathlib import Path

from pydantic import AliasChoices, Field

from shared.agents import DEFAULT_SEED
from shared.settings import CommonSettings


class DeskSettings(CommonSettings):
    http_port: int = Field(
        18082, validation_alias=AliasChoices("CARELOOP_DESK_HTTP_PORT"), description="HTTP port."
    )
    agents_file: Path = Field(
        DEFAULT_SEED,
        validation_alias=AliasChoices("CARELOOP_AGENTS_FILE"),
        description="Seed file of agents, teams, skills and demo tokens.",
    )
    auto_close_days: float = Field(
        7,
        validation_alias=AliasChoices("CARELOOP_DESK_AUTO_CLOSE_DAYS"),
        description="A resolved ticket the learner does not answer closes after this many days.",
    )
    auto_close_interval_seconds: float = Field(
        60,
        validation_alias=AliasChoices("CARELOOP_DESK_AUTO_CLOSE_INTERVAL_SECONDS"),
        description="How often desk looks for resolved tickets to auto-close.",
    )

    @property
    def public_url(self) -> str:
        return f"{self.public_base_url}:{self.http_port}"
