"""survey's settings on top of the shared ones."""

from shared.retention import days_setting, interval_setting
from shared.settings import CommonSettings, own


class SurveySettings(CommonSettings):
    http_port: int = own("survey", "http_port", 18085, "HTTP port.")
    delay_seconds: float = own(
        "survey",
        "delay_seconds",
        5,
        "Time from resolution to the survey e-mail (short in dev; hours in production).",
    )
    low_score: int = own(
        "survey",
        "low_score",
        2,
        "An overall score at or below this reopens the ticket for a supervisor; a periodic "
        "survey's opens a follow-up ticket for one.",
    )
    quiet_days: float = own(
        "survey",
        "quiet_days",
        30,
        "A learner is never sent two surveys of any kind within this many days (R9.3); "
        "a survey that would be is skipped. 0: no quiet period.",
    )
    periodic_months: int = own(
        "survey",
        "periodic_months",
        3,
        "Every this many months each active learner is sent a periodic satisfaction survey "
        "(R9.3); 0: no periodic surveys.",
    )
    active_months: int = own(
        "survey",
        "active_months",
        6,
        "A learner is active, and so surveyed periodically, when enrolled in a course or when "
        "the LMS's snapshot of them changed within this many months.",
    )
    programme_seconds: float = own(
        "survey",
        "programme_seconds",
        3600,
        "How often the periodic programme looks for active learners not yet surveyed this period.",
    )
    poll_seconds: float = own("survey", "poll_seconds", 1, "How often due surveys are sent.")
    retention_days: float = days_setting("survey")
    retention_interval_seconds: float = interval_setting("survey")

    public_url_override: str | None = own(
        "survey",
        "public_url",
        None,
        "Where learners reach the survey page (behind a proxy: https://survey.example.com); "
        "unset: CARELOOP_PUBLIC_BASE_URL and the HTTP port.",
    )

    @property
    def public_url(self) -> str:
        return self.public_url_override or f"{self.public_base_url}:{self.http_port}"
