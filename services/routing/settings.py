"""routing's settings on top of the shared ones."""

from shared.settings import CommonSettings, own


class RoutingSettings(CommonSettings):
    http_port: int = own("routing", "http_port", 18083, "HTTP port.")
    sweep_interval_seconds: float = own(
        "routing",
        "sweep_interval_seconds",
        2.0,
        "How often routing re-syncs Redis and drains the queues as a safety net.",
    )
    reconcile_interval_seconds: float = own(
        "routing",
        "reconcile_interval_seconds",
        5.0,
        "How often routing compares Redis load with committed assignments and corrects drift; "
        "a slot held without an assignment is freed on the second look in a row.",
    )
    reconcile_lock_timeout_seconds: float = own(
        "routing",
        "reconcile_lock_timeout_seconds",
        2.0,
        "Longest a reconciliation or rebuild waits for routing's transactions in flight (new "
        "ones wait behind it meanwhile); past it, that round is skipped.",
    )
    first_response_minutes: dict[str, int] = own(
        "routing",
        "first_response_minutes",
        {"urgent": 30, "high": 120, "medium": 480, "low": 1440},
        "First-response target per priority (a JSON object), R5.1.",
    )
    resolution_minutes: dict[str, int] = own(
        "routing",
        "resolution_minutes",
        {"urgent": 240, "high": 1440, "medium": 4320, "low": 7200},
        "Resolution target per priority (a JSON object), R5.1.",
    )
