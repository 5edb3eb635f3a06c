"""Service overview: how much comes in, how much waits, and whether learners are served well."""

from grafana_foundation_sdk.builders.dashboard import Dashboard

from deploy.grafana.panels import (
    AMBER,
    GREEN,
    RED,
    Query,
    board,
    graph,
    label_variable,
    single,
)

CREATED = 'careloop_tickets_created_total{channel=~"$channel"}'
# Every metrics replica reads the same tables into its gauges: `max` them, never `sum`.
OPEN = 'max by (team, status) (careloop_tickets_open{team=~"$team"})'


def overview() -> Dashboard:
    return board(
        uid="careloop-overview",
        title="careloop / Service overview",
        description="Ticket volume by channel and category, the backlog, SLA attainment, "
        "resolution and satisfaction: the page a service manager opens first.",
        variables=[
            label_variable(
                "channel",
                label="Channel",
                selector="careloop_tickets_created_total",
                description="Channels whose new tickets the volume panels count.",
            ),
            label_variable(
                "team",
                label="Team",
                selector="careloop_tickets_open",
                description="Teams whose open tickets the backlog panels count.",
            ),
        ],
        rows=[
            (
                "Now",
                [
                    single(
                        "Open tickets",
                        unit="short",
                        description="Tickets not yet closed in the chosen teams. There is no "
                        "fixed good value: compare with the same hour on other days; a "
                        "number that only grows means intake outpaces the agents.",
                        query=Query(f"sum({OPEN})"),
                        steps=[(None, "blue")],
                        span=4,
                    ),
                    single(
                        "First-response SLA",
                        unit="percentunit",
                        description="Share of first replies sent within their due time over "
                        "the last day. Good: 95 % or more; below 90 % learners wait longer "
                        "than they were promised.",
                        query=Query("careloop:first_response_sla_attainment:ratio1d"),
                        steps=[(None, RED), (0.9, AMBER), (0.95, GREEN)],
                        span=4,
                    ),
                    single(
                        "Resolution rate",
                        unit="percentunit",
                        description="Tickets closed as solved for every ticket created over "
                        "the last day. The target moves from 80 % to 95 %; below 80 % the "
                        "backlog grows.",
                        query=Query("careloop:resolution_rate:ratio1d"),
                        steps=[(None, RED), (0.8, AMBER), (0.95, GREEN)],
                        span=4,
                    ),
                    single(
                        "First-contact resolution",
                        unit="percentunit",
                        description="Closed tickets over the last day that were never "
                        "reopened: solved by the first answer. Higher is better; a fall "
                        "means answers that do not hold.",
                        query=Query("careloop:first_contact_resolution:ratio1d"),
                        steps=[(None, RED), (0.7, AMBER), (0.85, GREEN)],
                        span=4,
                    ),
                    single(
                        "Satisfaction (CSAT)",
                        unit="percentunit",
                        description="Share of overall survey scores of 4 or 5 over the last "
                        "day. The target is above 90 %; below 80 % read the low-score "
                        "comments.",
                        query=Query('dimension:careloop_csat:ratio1d{dimension="overall"}'),
                        steps=[(None, RED), (0.8, AMBER), (0.9, GREEN)],
                        span=4,
                    ),
                    single(
                        "Self-service deflection",
                        unit="percentunit",
                        description="Learners offered knowledge articles who solved the "
                        "problem themselves, over the last day (the knowledge service). At "
                        "peak the aim is most requests answered this way; no data means "
                        "the knowledge service is not running.",
                        query=Query("careloop:deflection_rate:ratio1d"),
                        steps=[(None, AMBER), (0.5, GREEN)],
                        span=4,
                    ),
                ],
            ),
            (
                "Volume",
                [
                    graph(
                        "New tickets by channel",
                        unit="suffix: tickets/h",
                        description="Tickets created per hour on each channel. Read it "
                        "against the usual daily curve: a channel at zero in working "
                        "hours may be broken; a sudden step up is an incident or a "
                        "campaign.",
                        queries=[
                            Query(
                                f"sum by (channel) (rate({CREATED}[$__rate_interval])) * 3600",
                                "{{channel}}",
                            )
                        ],
                        stacked=True,
                    ),
                    graph(
                        "New tickets by category",
                        unit="suffix: tickets/h",
                        description="Tickets created per hour in each triage category. "
                        "Complaints or account-security tickets rising faster than the "
                        "rest point at one problem many learners share.",
                        queries=[
                            Query(
                                f"sum by (category) (rate({CREATED}[$__rate_interval])) * 3600",
                                "{{category}}",
                            )
                        ],
                        stacked=True,
                    ),
                ],
            ),
            (
                "Backlog",
                [
                    graph(
                        "Open tickets by team",
                        unit="short",
                        description="Tickets not yet closed, per team. A team whose line "
                        "climbs while the others stay flat needs agents moved to it.",
                        queries=[Query(f"sum by (team) ({OPEN})", "{{team}}")],
                        stacked=True,
                    ),
                    graph(
                        "Oldest open ticket by team",
                        unit="s",
                        description="Age of the oldest ticket each team has not resolved. "
                        "Good: within the resolution target of its priority; a line that "
                        "only rises is a ticket everyone has forgotten.",
                        queries=[
                            Query('team:careloop_backlog_oldest:seconds{team=~"$team"}', "{{team}}")
                        ],
                    ),
                ],
            ),
            (
                "Outcomes",
                [
                    graph(
                        "Resolution, first contact and reopens",
                        unit="percentunit",
                        description="Over the day before each point: tickets closed per "
                        "ticket created (resolution rate, target 95 %), closed tickets never "
                        "reopened (first-contact resolution) and reopens per resolution "
                        "(lower is better).",
                        queries=[
                            Query("careloop:resolution_rate:ratio1d", "resolution rate"),
                            Query("careloop:first_contact_resolution:ratio1d", "first contact"),
                            Query("careloop:reopen_rate:ratio1d", "reopen rate"),
                        ],
                        span=8,
                    ),
                    graph(
                        "CSAT by dimension",
                        unit="percentunit",
                        description="Share of survey scores of 4 or 5 over the day before "
                        "each point, for the overall score and each dimension (speed, "
                        "ability, attitude). Good: above 90 %; the lowest dimension is "
                        "where to improve first.",
                        queries=[Query("dimension:careloop_csat:ratio1d", "{{dimension}}")],
                        steps=[(None, RED), (0.8, AMBER), (0.9, GREEN)],
                        span=8,
                    ),
                    graph(
                        "Low scores",
                        unit="suffix: surveys/h",
                        description="Surveys answered with a low score, per hour. Each one "
                        "reopens the ticket or opens a follow-up; a rise after a change "
                        "says the change hurt.",
                        queries=[
                            Query(
                                "sum(rate(careloop_survey_low_scores_total[$__rate_interval]))"
                                " * 3600",
                                "low scores",
                            )
                        ],
                        span=8,
                    ),
                ],
            ),
        ],
    )
