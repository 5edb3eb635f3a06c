"""incident's settings on top of the shared ones."""

from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, SecretStr

from services.incident.detector import Thresholds
from shared.emails import EmailAddress
from shared.retention import days_setting, interval_setting
from shared.settings import CommonSettings, own


class Responder(BaseModel):
    """One member of the response group (003 §四): told at once when an incident opens."""

    name: str = Field(min_length=1, max_length=200)
    role: Literal["support_supervisor", "technical_support", "product_manager"]
    email: EmailAddress | None = None


DEMO_GROUP = [
    Responder(
        name="值班主管 Sue", role="support_supervisor", email="oncall-supervisor@example.com"
    ),
    Responder(name="技术支持 Tom", role="technical_support", email="oncall-tech@example.com"),
    Responder(name="产品经理 Pam", role="product_manager", email="oncall-product@example.com"),
]


class IncidentSettings(CommonSettings):
    http_port: int = own("incident", "http_port", 18088, "HTTP port.")
    public_url_override: str | None = own(
        "incident",
        "public_url",
        None,
        "Where learners reach the status page (behind a proxy: https://status.example.com); "
        "unset: CARELOOP_PUBLIC_BASE_URL and the HTTP port.",
    )
    timezone: str = own(
        "incident",
        "timezone",
        "Asia/Shanghai",
        "The learners' time zone: the baseline is learned per hour of their week.",
    )
    watch_seconds: Annotated[float, Field(gt=0)] = own(
        "incident", "watch_seconds", 10.0, "How often the early warning looks at recent tickets."
    )
    window_minutes: Annotated[int, Field(ge=1, le=60)] = own(
        "incident", "window_minutes", 5, "The sliding window whose ticket count is tested."
    )
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = own(
        "incident",
        "alpha",
        1e-5,
        "A window fires when its count is this unlikely under the baseline (upper tail of the "
        "negative binomial), shared among the keys each look tests (each at alpha / keys): "
        "one false alarm in about 100,000 looks across all keys, if the baseline were exact.",
    )
    min_count: Annotated[int, Field(ge=1)] = own(
        "incident", "min_count", 10, "Fewer tickets than this in a window never fire."
    )
    min_ratio: Annotated[float, Field(ge=1)] = own(
        "incident",
        "min_ratio",
        2.0,
        "A window fires only at this many times the expected count (the minimum effect).",
    )
    baseline_weeks: Annotated[int, Field(ge=1, le=52)] = own(
        "incident", "baseline_weeks", 8, "Past weeks the baseline learns from."
    )
    learning_weeks: Annotated[int, Field(ge=0, le=52)] = own(
        "incident",
        "learning_weeks",
        2,
        "Weeks of history (counted, or imported with services.incident.baseline) before the "
        "volume test may alert: until then its peaks are unknown and every busy hour looks "
        "like a burst. The complaint and fault rates alert from the first day.",
    )
    dispersion: Annotated[float, Field(ge=0, le=2)] = own(
        "incident",
        "dispersion",
        0.2,
        "The least week-to-week spread of a key's hourly rate, as a share of it: the baseline "
        "never trusts a few alike weeks more than this.",
    )
    rate_window_minutes: Annotated[int, Field(ge=1, le=1440)] = own(
        "incident", "rate_window_minutes", 30, "The window of the complaint and fault rates."
    )
    rate_min_tickets: Annotated[int, Field(ge=1)] = own(
        "incident", "rate_min_tickets", 30, "A rate is judged only over at least this many tickets."
    )
    complaint_rate: Annotated[float, Field(gt=0, le=1)] = own(
        "incident", "complaint_rate", 0.25, "Complaints' share of recent tickets that alerts."
    )
    fault_rate: Annotated[float, Field(gt=0, le=1)] = own(
        "incident",
        "fault_rate",
        0.5,
        "Technical faults' share of recent tickets that alerts (normally a fifth to a third).",
    )
    cooldown_minutes: Annotated[int, Field(ge=1)] = own(
        "incident",
        "cooldown_minutes",
        60,
        "After an alert, the same key alerts again only this much later (an open incident "
        "covering it silences it until resolved).",
    )
    auto_open: bool = own(
        "incident",
        "auto_open",
        True,
        "Open an incident (severity sev2) from every volume alert, its response group told at "
        "once; off: a supervisor opens one from the alert (POST /v1/incidents with alert_id).",
    )
    link_lookback_minutes: Annotated[int, Field(ge=0)] = own(
        "incident",
        "link_lookback_minutes",
        60,
        "A new incident also links the matching tickets created this long before it.",
    )
    ticket_retention_days: Annotated[int, Field(ge=1)] = own(
        "incident",
        "ticket_retention_days",
        14,
        "Tickets no incident links are forgotten after this (the hourly counts stay).",
    )
    retention_days: float = days_setting("incident")
    retention_interval_seconds: float = interval_setting("incident")
    response_group: list[Responder] = own(
        "incident",
        "response_group",
        DEMO_GROUP,
        "JSON list of {name, role (support_supervisor, technical_support, product_manager), "
        "email}: e-mailed when an incident opens, is updated or resolved.",
    )
    webhook_url: SecretStr | None = own(
        "incident",
        "webhook_url",
        None,
        "The response group's chat robot (WeCom: https://qyapi.weixin.qq.com/cgi-bin/webhook/"
        "send?key=...; DingTalk: https://oapi.dingtalk.com/robot/send?access_token=...).",
    )
    webhook_format: Literal["wecom", "dingtalk"] = own(
        "incident", "webhook_format", "wecom", "The robot's message format."
    )
    webhook_secret: SecretStr | None = own(
        "incident",
        "webhook_secret",
        None,
        "DingTalk's signing secret (SEC...): each call is signed with it when set.",
    )
    smtp_host: str = own("smtp", "host", "127.0.0.1", "SMTP server.")
    smtp_port: int = own("smtp", "port", 11025, "SMTP port.")
    smtp_username: str | None = own("smtp", "username", None, "SMTP login, if it needs one.")
    smtp_password: SecretStr | None = own("smtp", "password", None, "SMTP password.")
    smtp_starttls: bool = own("smtp", "starttls", False, "Upgrade the connection with STARTTLS.")
    mail_from: str = own(
        "incident", "mail_from", "careloop-incident@example.com", "The response group's sender."
    )
    page_attempts: Annotated[int, Field(ge=1)] = own(
        "incident", "page_attempts", 8, "Attempts per e-mail or robot message before giving up."
    )
    notice_rates: dict[str, Annotated[float, Field(gt=0)]] = own(
        "incident",
        "notice_rates",
        {"email": 200.0, "wechat": 100.0, "weibo": 20.0, "sms": 50.0, "other": 100.0},
        "Learner notices released per second per channel (JSON): what each provider allows "
        "(WeChat's customer-service messages, an SMS gateway's rate). Notices for a channel "
        "not listed use `other`.",
    )

    @property
    def public_url(self) -> str:
        return self.public_url_override or f"{self.public_base_url}:{self.http_port}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            window_minutes=self.window_minutes,
            alpha=self.alpha,
            min_count=self.min_count,
            min_ratio=self.min_ratio,
            learning_weeks=self.learning_weeks,
            dispersion=self.dispersion,
        )

    def status_url(self, number: str | None = None, *, lang: str = "zh") -> str:
        path = f"/status/{number}" if number else "/status"
        return f"{self.public_url}{path}?lang={lang}"

    def rate_of(self, channel: str) -> float:
        return self.notice_rates.get(channel, self.notice_rates.get("other", 100.0))
