"""desk's settings on top of the shared ones."""

from shared.settings import CommonSettings, own


class DeskSettings(CommonSettings):
    http_port: int = own("desk", "http_port", 18082, "HTTP port.")
    auto_close_days: float = own(
        "desk",
        "auto_close_days",
        7,
        "A resolved ticket the learner does not answer closes after this many days.",
    )
    auto_close_interval_seconds: float = own(
        "desk", "auto_close_interval_seconds", 60, "How often desk looks for tickets to auto-close."
    )

    public_url_override: str | None = own(
        "desk",
        "public_url",
        None,
        "Where learners reach desk's pages (behind a proxy: https://help.example.com); "
        "unset: CARELOOP_PUBLIC_BASE_URL and the HTTP port.",
    )

    @property
    def public_url(self) -> str:
        return self.public_url_override or f"{self.public_base_url}:{self.http_port}"
