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
RESOLVED = Counter(
    "careloop_tickets_resolved_total",
    "Resolutions (a ticket reopened and resolved again counts again), by category, priority "
    "and the team that held it.",
    ["category", "priority", "team"],
)
RESOLUTION_BREACHES = Counter(
    "careloop_sla_resolution_breaches_total",
    "Resolutions that came after routing raised a resolution breach (level 1) for the ticket "
    "since it was last opened.",
    ["priority"],
)
CLOSED_BY_CATEGORY = Counter(
    "careloop_tickets_closed_by_category_total",
    "Tickets closed, by category and whether they were never reopened (first_contact).",
    ["category", "first_contact"],
)
RESOLUTION_OVERDUE = Gauge(
    "careloop_tickets_resolution_overdue",
    "Open tickets (not resolved or closed) past the resolution due time routing first gave.",
    ["priority"],
)
BACKLOG_OLDEST = Gauge(
    "careloop_backlog_oldest_seconds",
    "Age of the oldest ticket still open (not resolved or closed), by the team holding it.",
    ["team"],
)
AGENT_RESOLVED = Counter(
    "careloop_agent_tickets_resolved_total",
    "Resolutions by the agent who resolved the ticket and the team that held it.",
    ["agent", "team"],
)
AGENT_SURVEY_SCORE = Histogram(
    "careloop_agent_survey_score",
    "Survey scores, 1 to 5, by the agent who last resolved the ticket and dimension; the "
    "le=3 bucket counts the unsatisfied (CSAT is 1 - it / count).",
    ["agent", "dimension"],
    buckets=(3,),
)
