"""metrics' settings on top of the shared ones."""

from pydantic import AliasChoices, Field

from shared.settings import CommonSettings


class MetricsSettings(CommonSettings):
    http_port: int = Field(
        18086, validation_alias=AliasChoices("CARELOOP_METRICS_HTTP_PORT"), description="HTTP port."
    )
    refresh_seconds: float = Field(
        5,
        validation_alias=AliasChoices("CARELOOP_METRICS_REFRESH_SECONDS"),
        description="How often backlog and overdue gauges are recomputed from the view.",
    )
