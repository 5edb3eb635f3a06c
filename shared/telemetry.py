"""Plumbing metrics every service exports: consumption, dead letters, outbox relay, e-mail."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter(
    "careloop_events_applied_total",
    "Events a consumer applied (each once; redeliveries it skipped are not counted).",
    ["service", "type"],
)
EVENTS_SKIPPED = Counter(
    "careloop_events_redelivered_total",
    "Events a consumer had already applied and skipped (redeliveries, replays).",
    ["service"],
)
BATCH_SECONDS = Histogram(
    "careloop_consumer_batch_seconds",
    "Time to apply one batch in its transaction.",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEAD_LETTERS = Counter(
    "careloop_dead_letters_total", "Messages sent to a dead-letter topic.", ["service", "topic"]
)
OUTBOX_PUBLISHED = Counter(
    "careloop_outbox_published_total",
    "Events the relay published and Kafka acknowledged.",
    ["service"],
)
OUTBOX_LAG = Gauge(
    "careloop_outbox_lag_seconds",
    "Age of the oldest event in the relay's last batch when Kafka acknowledged it.",
    ["service"],
)
BROKER_RECOVERIES = Counter(
    "careloop_broker_recoveries_total",
    "Times the service found the broker back (after it was unreachable, lost topics or lost "
    "its data) and restarted its consumers.",
    ["service"],
)
