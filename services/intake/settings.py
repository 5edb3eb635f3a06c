"""intake's settings on top of the shared ones."""

from typing import Annotated

from pydantic import Field

from shared.ratelimit import TrustedProxies
from shared.settings import CommonSettings, own

Positive = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(gt=0)]


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
    derived_key_window_seconds: Positive = own(
        "intake",
        "derived_key_window_seconds",
        600,
        "A web submission without external_id or Idempotency-Key is keyed by its e-mail, subject "
        "and description within this window: a retry inside it is the same ticket.",
    )
    redis_timeout_seconds: Seconds = own(
        "intake",
        "redis_timeout_seconds",
        0.5,
        "Longest intake waits for Redis (rate limits, keys, dedupe) before going on without it.",
    )
    rate_per_address: Count = own(
        "intake", "rate_per_address", 60, "Submissions per client address per window (0: off)."
    )
    rate_address_window_seconds: Positive = own(
        "intake", "rate_address_window_seconds", 60, "Window of the per-address limit."
    )
    rate_per_email: Count = own(
        "intake", "rate_per_email", 10, "Submissions per learner e-mail per window (0: off)."
    )
    rate_email_window_seconds: Positive = own(
        "intake", "rate_email_window_seconds", 600, "Window of the per-e-mail limit."
    )
    rate_per_source: Count = own(
        "intake",
        "rate_per_source",
        1200,
        "Web-form submissions in all per window (the `web` source; 0: off).",
    )
    rate_source_window_seconds: Positive = own(
        "intake", "rate_source_window_seconds", 60, "Window of the per-source limit."
    )
    trusted_proxies: TrustedProxies = own(
        "intake",
        "trusted_proxies",
        (),
        "Proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated); "
        "empty: the peer address is the client.",
    )
