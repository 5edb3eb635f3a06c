"""survey's settings on top of the shared ones."""

from pydantic import AliasChoices, Field

from shared.settings import CommonSettings


class SurveySettings(CommonSettings):
    http_port: int = Field(
        18085, validation_alias=AliasChoices("CARELOOP_SURVEY_HTTP_PORT"), description="HTTP port."
    )
    delay_seconds: float = Field(
        5,
        validation_alias=AliasChoices("CARELOOP_SURVEY_DELAY_SECONDS"),
        description="Time from resolution to the survey e-mail (short in dev; hours in production).",
    )
    low_score: int = Field(
        2,
        validation_alias=AliasChoices("CARELOOP_SURVEY_LOW_SCORE"),
        description="An overall score at or below this reopens the ticket for a supervisor.",
    )
    poll_seconds: float = Field(
        1,
        validation_alias=AliasChoices("CARELOOP_SURVEY_POLL_SECONDS"),
        description="How often due surveys are looked for.",
    )

    @property
    def public_url(self) -> str:
        return f"{self.public_base_url}:{self.http_port}"
