"""Incidents: alerts firing now and the spikes that announce a problem many learners share.

careloop has no incident service yet (R6.3 links many tickets to one incident); until it does,
an incident shows here as alerts in Prometheus' ALERTS series and as complaint, urgent-ticket
or category spikes."""

from grafana_foundation_sdk.builders.dashboard import Dashboard

from deploy.grafana.panels import (
    AMBER,
    GREEN,
    RED,
    Query,
    board,
    graph,
    label_variable,
    listing,
    single,
)

CREATED = 'careloop_tickets_created_total{channel=~"$channel"}'


def incidents() -> Dashboard:
    return board(
        uid="careloop-incidents",
        title="careloop / Incidents",
        description="Alerts firing now and over time, and the ticket spikes (complaints, "
        "urgent tickets, one category far above its usual rate) that mark an incident.",
        variables=[
            label_variable(
                "channel",
                label="Channel",
                selector="careloop_tickets_created_total",
                description="Channels whose new tickets the spike panels count.",
            )
        ],
        rows=[
            (
                "Alerts",
                [
                    single(
                        "Alerts firing",
                        unit="short",
                        description="Alerts firing now. Good: 0; the table beside names them.",
                        query=Query('count(ALERTS{alertstate="firing"}) or vector(0)'),
                        steps=[(None, GREEN), (1, RED)],
                        span=6,
                    ),
                    listing(
                        "Firing alerts",
                        unit="short",
                        description="Every alert firing now with its labels (severity, team, "
                        "service). Empty is good; each alert's runbook is the section of "
                        "docs/runbooks.md named after it (what it means, what to do).",
                        query=Query('ALERTS{alertstate="firing"}'),
                        span=18,
                    ),
                    graph(
                        "Alerts over time",
                        unit="short",
                        description="Alerts pending and firing, by name and severity: when "
                        "an incident began, what fired first, and whether it is over.",
                        queries=[
                            Query(
                                "count by (alertname, severity, alertstate) (ALERTS)",
                                "{{alertname}} {{severity}} {{alertstate}}",
                            )
                        ],
                        stacked=True,
                        span=24,
                    ),
                ],
            ),
            (
                "Spikes",
                [
                    graph(
                        "Complaints by channel",
                        unit="suffix: tickets/h",
                        description="Complaint tickets created per hour. A step up, above "
                        "all on one channel, is the first sign of an incident learners "
                        "feel (a failed class, a billing error).",
                        queries=[
                            Query(
                                "sum by (channel) (rate(careloop_tickets_created_total"
                                '{channel=~"$channel", category="complaint"}[$__rate_interval]))'
                                " * 3600",
                                "{{channel}}",
                            )
                        ],
                        stacked=True,
                    ),
                    graph(
                        "Complaint rate",
                        unit="percentunit",
                        description="Complaints as a share of all tickets over the day before "
                        "each point. Read its trend: rising while volume is flat means "
                        "service got worse.",
                        queries=[Query("careloop:complaint_rate:ratio1d", "complaints")],
                        steps=[(None, GREEN), (0.05, AMBER), (0.1, RED)],
                    ),
                    graph(
                        "Categories against their daily rate",
                        unit="suffix: ×",
                        description="Each category's tickets in the last hour against its "
                        "average hour over the last day. 1× is usual; a category at 3× or "
                        "more is one problem many learners hit at once.",
                        queries=[
                            Query(
                                f"sum by (category) (rate({CREATED}[1h]))"
                                f" / sum by (category) (rate({CREATED}[1d]))",
                                "{{category}}",
                            )
                        ],
                        steps=[(None, GREEN), (2, AMBER), (3, RED)],
                    ),
                    graph(
                        "Urgent tickets by category",
                        unit="suffix: tickets/h",
                        description="Urgent tickets created per hour (account security, a "
                        "class or exam blocked). Several in one category within minutes "
                        "is an incident, not bad luck.",
                        queries=[
                            Query(
                                "sum by (category) (rate(careloop_tickets_created_total"
                                '{channel=~"$channel", priority="urgent"}[$__rate_interval]))'
                                " * 3600",
                                "{{category}}",
                            )
                        ],
                        stacked=True,
                    ),
                ],
            ),
        ],
    )
