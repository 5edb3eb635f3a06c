"""The Prometheus series careloop exports; names and labels are the dashboards' contract."""

from prometheus_client import Counter, Gauge, Histogram

DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)

TICKETS_CREATED = Counter(
    "careloop_tickets_created_total",
    "Tickets created, by channel, category and priority (counted at triage).",
    ["channel", "category", "priority"],
)
FIRST_RESPONSE = Histogram(
    "careloop_ticket_first_response_seconds",
    "Time from creation to the first agent reply.",
    ["priority"],
    buckets=DURATION_BUCKETS,
)
RESOLUTION = Histogram(
    "careloop_ticket_resolution_seconds",
    "Time from creation to resolution.",
    ["priority"],
    buckets=DURATION_BUCKETS,
)
OPEN = Gauge("careloop_tickets_open", "Tickets not closed, by status and team.", ["status", "team"])
FIRST_RESPONSE_OVERDUE = Gauge(
    "careloop_tickets_first_response_overdue",
    "Open tickets past their first-response due time with no reply yet.",
    ["priority"],
)
SLA_BREACHES = Counter(
    "careloop_sla_first_response_breaches_total",
    "First responses sent after their due time.",
    ["priority"],
)
REOPENED = Counter("careloop_tickets_reopened_total", "Tickets reopened.", ["reason"])
CLOSED = Counter("careloop_tickets_closed_total", "Tickets closed.", ["reason"])
SURVEY_SCORE = Histogram(
    "careloop_survey_score",
    "Satisfaction scores, 1 to 5, by dimension.",
    ["dimension"],
    buckets=(1, 2, 3, 4, 5),
)
SURVEY_LOW = Counter("careloop_survey_low_scores_total", "Surveys answered with a low score.")
NOTIFICATIONS = Counter(
    "careloop_notifications_total", "Notifications by kind and outcome.", ["kind", "outcome"]
)
CONSUMER_LAG = Gauge(
    "careloop_consumer_lag",
    "Messages past a consumer group's committed offset, by group, topic and partition "
    "(read from the broker every CARELOOP_METRICS_LAG_SECONDS).",
    ["group", "topic", "partition"],
)
