"""intake's settings on top of the shared ones."""

from shared.settings import CommonSettings, own


class IntakeSettings(CommonSettings):
    http_port: int = own("intake", "http_port", 18081, "HTTP port.")
    publish_timeout_seconds: float = own(
        "intake",
        "publish_timeout_seconds",
        5,
        "Longest a submission waits for Kafka's acknowledgement before it is answered 503.",
    )
    dedupe_ttl_seconds: int = own(
        "intake",
        "dedupe_ttl_seconds",
        7 * 24 * 3600,
        "How long intake remembers an external id to answer `duplicate` without publishing.",
    )
