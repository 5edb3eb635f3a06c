"""intake's settings on top of the shared ones."""

from pydantic import AliasChoices, Field

from shared.settings import CommonSettings


class IntakeSettings(CommonSettings):
    http_port: int = Field(
        18081, validation_alias=AliasChoices("CARELOOP_INTAKE_HTTP_PORT"), description="HTTP port."
    )
    dedupe_ttl_seconds: int = Field(
        7 * 24 * 3600,
        validation_alias=AliasChoices("CARELOOP_INTAKE_DEDUPE_TTL_SECONDS"),
        description="How long intake remembers an external id to answer `duplicate` early.",
    )
