"""intake's settings on top of the shared ones."""

from shared.settings import CommonSettings, own


class IntakeSettings(CommonSettings):
    http_port: int = own("intake", "http_port", 18081, "HTTP port.")
    dedupe_ttl_seconds: int = own(
        "intake",
        "dedupe_ttl_seconds",
        7 * 24 * 3600,
        "How long intake remembers an external id to answer `duplicate` without publishing.",
    )
