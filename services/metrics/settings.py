"""metrics' settings on top of the shared ones."""

from shared.settings import CommonSettings, own


class MetricsSettings(CommonSettings):
    http_port: int = own("metrics", "http_port", 18086, "HTTP port.")
    refresh_seconds: float = own(
        "metrics",
        "refresh_seconds",
        5,
        "How often the backlog and overdue gauges are recomputed from the view.",
    )
