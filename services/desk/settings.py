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

    @property
    def public_url(self) -> str:
        return f"{self.public_base_url}:{self.http_port}"
