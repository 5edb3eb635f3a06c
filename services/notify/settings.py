"""notify's settings on top of the shared ones."""

from pydantic import AliasChoices, Field, SecretStr, field_validator

from services.notify.channels import ALL_CHANNELS
from shared.retention import days_setting, interval_setting
from shared.settings import CommonSettings, own


class NotifySettings(CommonSettings):
    http_port: int = own("notify", "http_port", 18084, "HTTP port.")
    smtp_host: str = own("smtp", "host", "127.0.0.1", "SMTP server.")
    smtp_port: int = own("smtp", "port", 11025, "SMTP port.")
    smtp_username: str | None = own("smtp", "username", None, "SMTP login, if it needs one.")
    smtp_password: SecretStr | None = own("smtp", "password", None, "SMTP password.")
    smtp_starttls: bool = own("smtp", "starttls", False, "Upgrade the connection with STARTTLS.")
    smtp_timeout_seconds: float = own(
        "smtp",
        "timeout_seconds",
        30,
        "Longest wait for the SMTP server to connect or answer one command.",
    )
    mail_from: str = own(
        "notify", "from", "careloop <support@careloop.example>", "From: of every e-mail."
    )
    reply_to: str | None = own(
        "notify",
        "reply_to",
        None,
        "Reply-To: of every e-mail, the support address intake reads learners' replies at "
        "(its SMTP gateway or IMAP mailbox); empty: the From: address.",
    )
    answer_channels: str = own(
        "notify",
        "channels",
        ",".join(ALL_CHANNELS),
        "The channels careloop answers learners on, comma-separated, of "
        f"{', '.join(ALL_CHANNELS)}: leave out one whose provider is not set up, and its "
        "learners are answered on the next channel that reaches them.",
    )
    http_batch: int = own(
        "notify",
        "http_batch",
        20,
        "SMS, WeChat and Weibo deliveries leased and sent at once (each its own HTTP call).",
    )
    progress_merge_seconds: float = own(
        "notify",
        "progress_merge_seconds",
        60,
        "An assignment or queueing within this long of the confirmation sends no message of "
        "its own: the confirmation already says who has the ticket or the expected wait.",
    )
    triage_grace_seconds: float = own(
        "notify",
        "triage_grace_seconds",
        30,
        "A confirmation waits this long for routing's triage (priority, due time), then goes "
        "with the general promise: an outage of routing never delays the acknowledgement more.",
    )
    articles_grace_seconds: float = own(
        "notify",
        "articles_grace_seconds",
        5,
        "A confirmation waits this long (at most) for knowledge's suggested articles, which it "
        "offers the learner; knowledge answers every new ticket within a second or so, and an "
        "outage of knowledge delays no acknowledgement more. 0: confirmations never wait.",
    )
    fallback_first_response_minutes: float = own(
        "notify",
        "fallback_first_response_minutes",
        480,
        "The first-response time promised when triage is not known in time.",
    )
    desk_url_override: str | None = Field(
        None,
        validation_alias=AliasChoices("CARELOOP_NOTIFY_DESK_URL", "CARELOOP_DESK_PUBLIC_URL"),
        description="Where agents reach desk's workspace: a mention e-mail links the ticket "
        "there (<desk_url>/tickets/<number>); unset: desk's own CARELOOP_DESK_PUBLIC_URL when "
        "notify is given it, else CARELOOP_PUBLIC_BASE_URL on desk's port 18082.",
    )
    senders: int = own("notify", "senders", 4, "Concurrent SMTP connections per process.")
    send_batch: int = own("notify", "send_batch", 100, "Deliveries a sender leases at once.")
    max_attempts: int = own(
        "notify", "max_attempts", 8, "Attempts before a delivery is given up as failed."
    )
    claim_seconds: int = own(
        "notify",
        "claim_seconds",
        60,
        "A leased delivery whose sender died is retried after this long (and, after a "
        "PostgreSQL restart, no sooner than this long after the restart).",
    )
    retention_days: float = days_setting("notify")
    retention_interval_seconds: float = interval_setting("notify")

    @field_validator("answer_channels")
    @classmethod
    def _known_channels(cls, value: str) -> str:
        unknown = {c.strip() for c in value.split(",") if c.strip()} - set(ALL_CHANNELS)
        if unknown:
            raise ValueError(f"unknown channels {sorted(unknown)}; known: {list(ALL_CHANNELS)}")
        return value

    @property
    def desk_url(self) -> str:
        return self.desk_url_override or f"{self.public_base_url}:18082"

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.answer_channels.split(",") if c.strip())
