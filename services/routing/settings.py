"""routing's settings on top of the shared ones."""

from pathlib import Path

from pydantic import AliasChoices, Field

from shared.agents import DEFAULT_SEED
from shared.settings import CommonSettings


class RoutingSettings(CommonSettings):
    http_port: int = Field(
        18083, validation_alias=AliasChoices("CARELOOP_ROUTING_HTTP_PORT"), description="HTTP port."
    )
    agents_file: Path = Field(
        DEFAULT_SEED,
        validation_alias=AliasChoices("CARELOOP_AGENTS_FILE"),
        description="Seed file of agents, teams, skills and capacity.",
    )
    sweep_interval_seconds: float = Field(
        2.0,
        validation_alias=AliasChoices("CARELOOP_ROUTING_SWEEP_INTERVAL_SECONDS"),
        description="How often routing re-syncs Redis and drains the queues as a safety net.",
    )
    first_response_minutes: dict[str, int] = Field(
        {"urgent": 30, "high": 120, "medium": 480, "low": 1440},
        validation_alias=AliasChoices("CARELOOP_ROUTING_FIRST_RESPONSE_MINUTES"),
        description="First-response target per priority (JSON object), R5.1.",
    )
    resolution_minutes: dict[str, int] = Field(
        {"urgent": 240, "high": 1440, "medium": 4320, "low": 7200},
        validation_alias=AliasChoices("CARELOOP_ROUTING_RESOLUTION_MINUTES"),
        description="Resolution target per priority (JSON object), R5.1.",
    )
