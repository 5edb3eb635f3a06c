"""Topic names: one per producing service, versioned, plus the two public inputs."""

INBOUND = "careloop.inbound.v1"
LEARNERS = "careloop.learners.v1"
INTAKE = "careloop.intake.v1"
TICKETS = "careloop.tickets.v1"
ROUTING = "careloop.routing.v1"
NOTIFY = "careloop.notify.v1"
SURVEY = "careloop.survey.v1"
ALERTS = "careloop.alerts.v1"
KNOWLEDGE = "careloop.knowledge.v1"
INCIDENTS = "careloop.incidents.v1"
REMEDIES = "careloop.remedies.v1"
REMEDY_ACKS = "careloop.remedies.acks.v1"
PEOPLE = "careloop.people.v1"
# Course operations' system announces the changes it makes to courses (incident reads them).
COURSE_CHANGES = "careloop.course_changes.v1"

ALL = (
    INBOUND,
    LEARNERS,
    INTAKE,
    TICKETS,
    ROUTING,
    NOTIFY,
    SURVEY,
    ALERTS,
    KNOWLEDGE,
    INCIDENTS,
    REMEDIES,
    REMEDY_ACKS,
    PEOPLE,
    COURSE_CHANGES,
)


def dlq(topic: str) -> str:
    """The dead-letter topic of `topic`."""
    return f"{topic}.dlq"
