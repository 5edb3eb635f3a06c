"""notify's settings on top of the shared ones."""

from pydantic import AliasChoices, Field, SecretStr

from shared.settings import CommonSettings


class NotifySettings(CommonSettings):
    http_port: int = Field(
        18084, validation_alias=AliasChoices("CARELOOP_NOTIFY_HTTP_PORT"), description="HTTP port."
    )
    smtp_host: str = Field(
        "127.0.0.1", validation_alias=AliasChoices("CARELOOP_SMTP_HOST"), description="SMTP server."
    )
    smtp_port: int = Field(
        11025, validation_alias=AliasChoices("CARELOOP_SMTP_PORT"), description="SMTP port."
    )
    smtp_username: str | None = Field(
        None, validation_alias=AliasChoices("CARELOOP_SMTP_USERNAME"), description="SMTP login."
    )
    smtp_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CARELOOP_SMTP_PASSWORD"), description="SMTP password."
    )
    smtp_starttls: bool = Field(
        False, validation_alias=AliasChoices("CARELOOP_SMTP_STARTTLS"), description="Use STARTTLS."
    )
    mail_from: str = Field(
        "careloop <support@careloop.example>",
        validation_alias=AliasChoices("CARELOOP_NOTIFY_FROM"),
        description="From: of every e-mail.",
    )
    senders: int = Field(
        4,
        validation_alias=AliasChoices("CARELOOP_NOTIFY_SENDERS"),
        description="Concurrent SMTP connections per process.",
    )
    send_batch: int = Field(
        100,
        validation_alias=AliasChoices("CARELOOP_NOTIFY_SEND_BATCH"),
        description="Deliveries a sender claims at once.",
    )
    max_attempts: int = Field(
        8,
        validation_alias=AliasChoices("CARELOOP_NOTIFY_MAX_ATTEMPTS"),
        description="Attempts before a delivery is given up as failed.",
    )
    claim_seconds: int = Field(
        60,
        validation_alias=AliasChoices("CARELOOP_NOTIFY_CLAIM_SECONDS"),
        description="A claimed delivery whose sender died is retried after this long.",
    )
