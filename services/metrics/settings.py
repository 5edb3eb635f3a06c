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
    lag_seconds: float = own(
        "metrics",
        "lag_seconds",
        15,
        "How often every consumer group's lag is read from the broker (one request per group).",
    )
    batch_max_records: int = own(
        "metrics",
        "batch_max_records",
        5000,
        "Most records metrics takes per batch: it is not on any learner's path, so it applies "
        "a burst in few large transactions.",
    )
    batch_wait_ms: int = own(
        "metrics",
        "batch_wait_ms",
        1000,
        "Longest metrics' fetches wait for `batch_min_bytes` to arrive: how far its series may "
        "trail the events, in exchange for one transaction per wait instead of per few events.",
    )
    batch_min_bytes: int = own(
        "metrics",
        "batch_min_bytes",
        1024 * 1024,
        "Bytes a fetch of metrics waits for (at most `batch_wait_ms`) before it answers.",
    )
