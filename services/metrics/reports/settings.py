"""The reports' settings, CARELOOP_REPORTS_*, and the SMTP server's, CARELOOP_SMTP_* (notify's)."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.metrics.reports.periods import Kind
from shared.emails import email_address
from shared.settings import own

LANGUAGES = ("zh-en", "zh", "en")


class ReportSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    recipients: str = own(
        "reports",
        "recipients",
        "",
        "Comma-separated addresses each scheduled report is e-mailed to (PDF attached); "
        "empty: reports are kept and listed, not e-mailed.",
    )
    schedule: str = own(
        "reports",
        "schedule",
        "daily,weekly,monthly",
        "Which reports are made on their own, comma-separated of daily, weekly, monthly; "
        "empty: none (the command still renders any range).",
    )
    timezone: str = own(
        "reports",
        "timezone",
        "Asia/Shanghai",
        "The calendar of days, ISO weeks (from Monday) and months, and of the charts' hours.",
    )
    language: str = own("reports", "language", "zh-en", "Headings in zh-en (both), zh or en.")
    delay_minutes: float = own(
        "reports",
        "delay_minutes",
        30,
        "How long after a period ends its report is made: the events of its last minutes reach "
        "metrics first.",
    )
    check_seconds: float = own(
        "reports", "check_seconds", 300, "How often a replica looks for a report that is due."
    )
    action_window_days: int = own(
        "reports",
        "action_window_days",
        30,
        "An improvement action's metric is measured over this many days before it started "
        "(before) and from its start (after, to the report's end at most).",
    )
    mail_from: str = own(
        "reports", "from", "careloop reports <reports@careloop.example>", "From: of the e-mails."
    )
    smtp_host: str = own("smtp", "host", "127.0.0.1", "SMTP server.")
    smtp_port: int = own("smtp", "port", 11025, "SMTP port.")
    smtp_username: str | None = own("smtp", "username", None, "SMTP login, if it needs one.")
    smtp_password: SecretStr | None = own("smtp", "password", None, "SMTP password.")
    smtp_starttls: bool = own("smtp", "starttls", False, "Upgrade the connection with STARTTLS.")
    smtp_timeout_seconds: float = own(
        "smtp", "timeout_seconds", 30, "Longest wait for the SMTP server to answer."
    )

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: str) -> str:
        return ",".join(email_address(a.strip()) for a in value.split(",") if a.strip())

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        kinds = [k.strip() for k in value.split(",") if k.strip()]
        allowed = (Kind.DAILY, Kind.WEEKLY, Kind.MONTHLY)
        if unknown := [k for k in kinds if k not in allowed]:
            raise ValueError(
                f"unknown report kinds: {', '.join(unknown)} (known: daily, weekly, monthly)"
            )
        return ",".join(kinds)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone: {value}") from None
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"language: one of {', '.join(LANGUAGES)}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def recipient_list(self) -> list[str]:
        return [a for a in self.recipients.split(",") if a]

    @property
    def kinds(self) -> list[Kind]:
        return [Kind(k) for k in self.schedule.split(",") if k]
