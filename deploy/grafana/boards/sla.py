"""SLA and escalations: promises kept, how long learners wait, and what went up the ladder."""

from grafana_foundation_sdk.builders.dashboard import Dashboard

from deploy.grafana.panels import AMBER, GREEN, RED, Query, board, graph, single

ATTAINMENT_STEPS = [(None, RED), (0.9, AMBER), (0.95, GREEN)]
# Every metrics replica reads the same tables into its gauges: `max` them, never `sum`.
FIRST_OVERDUE = "max by (priority) (careloop_tickets_first_response_overdue)"
RESOLUTION_OVERDUE = "max by (priority) (careloop_tickets_resolution_overdue)"


def quantiles(histogram: str) -> list[Query]:
    """The median and the 90th percentile of `histogram` by priority, over the hour before."""
    return [
        Query(
            f"histogram_quantile({q}, sum by (priority, le) (rate({histogram}_bucket[1h])))",
            f"{{{{priority}}}} p{round(q * 100)}",
        )
        for q in (0.5, 0.9)
    ]


def sla() -> Dashboard:
    return board(
        uid="careloop-sla",
        title="careloop / SLA and escalations",
        description="First-response and resolution SLA attainment, response times by "
        "priority, overdue tickets and the warnings, breaches and escalations the SLA "
        "clocks fired.",
        rows=[
            (
                "Attainment",
                [
                    single(
                        "First-response SLA attainment",
                        unit="percentunit",
                        description="Share of first replies sent within their due time over "
                        "the last day. Good: 95 % or more; below 90 % learners wait longer "
                        "than they were promised.",
                        query=Query("careloop:first_response_sla_attainment:ratio1d"),
                        steps=ATTAINMENT_STEPS,
                    ),
                    single(
                        "Resolution SLA attainment",
                        unit="percentunit",
                        description="Share of tickets resolved within their resolution "
                        "target over the last day. Good: 95 % or more; below 90 % see which "
                        "priority falls behind below.",
                        query=Query("careloop:resolution_sla_attainment:ratio1d"),
                        steps=ATTAINMENT_STEPS,
                    ),
                    single(
                        "Waiting past first-response due",
                        unit="short",
                        description="Open tickets past their first-response due time with no "
                        "reply yet. Good: 0; any urgent one is a learner blocked right now.",
                        query=Query(f"sum({FIRST_OVERDUE})"),
                        steps=[(None, GREEN), (1, AMBER), (10, RED)],
                    ),
                    single(
                        "Open past resolution due",
                        unit="short",
                        description="Open tickets past their resolution due time. Good: 0; "
                        "a growing number means tickets are answered but not solved.",
                        query=Query(f"sum({RESOLUTION_OVERDUE})"),
                        steps=[(None, GREEN), (1, AMBER), (10, RED)],
                    ),
                    graph(
                        "First-response SLA attainment by priority",
                        unit="percentunit",
                        description="Share of first replies within their due time, per "
                        "priority, over the hour before each point. Good: every line at 95 % "
                        "or more; urgent below target first is the worst case.",
                        queries=[
                            Query(
                                "priority:careloop_first_response_sla_attainment:ratio1h",
                                "{{priority}}",
                            )
                        ],
                        steps=ATTAINMENT_STEPS,
                    ),
                    graph(
                        "Resolution SLA attainment by priority",
                        unit="percentunit",
                        description="Share of resolutions within their target, per priority, "
                        "over the hour before each point. Good: 95 % or more.",
                        queries=[
                            Query(
                                "priority:careloop_resolution_sla_attainment:ratio1h",
                                "{{priority}}",
                            )
                        ],
                        steps=ATTAINMENT_STEPS,
                    ),
                ],
            ),
            (
                "Response and resolution times",
                [
                    graph(
                        "Time to first response",
                        unit="s",
                        description="Median and 90th percentile from creation to the first "
                        "agent reply, per priority, over the hour before each point. Good: "
                        "p90 under the priority's target (urgent 30 min).",
                        queries=quantiles("careloop_ticket_first_response_seconds"),
                    ),
                    graph(
                        "Time to resolution",
                        unit="s",
                        description="Median and 90th percentile from creation to resolution, "
                        "per priority, over the hour before each point. Good: p90 under the "
                        "priority's resolution target.",
                        queries=quantiles("careloop_ticket_resolution_seconds"),
                    ),
                ],
            ),
            (
                "Overdue and escalations",
                [
                    graph(
                        "Overdue tickets by priority",
                        unit="short",
                        description="Open tickets past their first-response or resolution "
                        "due time. Good: flat at 0; a line that keeps growing is a team "
                        "that cannot keep up.",
                        queries=[
                            Query(
                                FIRST_OVERDUE,
                                "first response {{priority}}",
                            ),
                            Query(
                                RESOLUTION_OVERDUE,
                                "resolution {{priority}}",
                            ),
                        ],
                    ),
                    graph(
                        "SLA warnings, breaches and escalations",
                        unit="suffix: /h",
                        description="What the SLA clocks fired per hour: warning (the "
                        "assignee is told a target is near), breach (a supervisor is told), "
                        "management (escalated to management), at_risk (a queued ticket "
                        "will likely breach). Warnings are normal; breaches and "
                        "management escalations should be rare.",
                        queries=[
                            Query(
                                "sum by (threshold, target) "
                                "(rate(careloop_sla_fired_total[$__rate_interval])) * 3600",
                                "{{threshold}} {{target}}",
                            )
                        ],
                        stacked=True,
                    ),
                    graph(
                        "Reopened tickets by reason",
                        unit="suffix: tickets/h",
                        description="Tickets reopened per hour: the learner said not solved, "
                        "gave a low score or wrote again. Rising reopens mean answers that "
                        "do not solve the problem.",
                        queries=[
                            Query(
                                "sum by (reason) "
                                "(rate(careloop_tickets_reopened_total[$__rate_interval])) * 3600",
                                "{{reason}}",
                            )
                        ],
                        stacked=True,
                    ),
                    graph(
                        "SLA timer lateness",
                        unit="s",
                        description="99th percentile of how late an SLA timer fired after "
                        "its due moment: the health of the SLA clocks. Good: under a "
                        "second; minutes mean warnings and escalations arrive late (a "
                        "routing replica down, the database slow).",
                        queries=[
                            Query(
                                "histogram_quantile(0.99, sum by (le) "
                                "(rate(careloop_sla_timer_lateness_seconds_bucket"
                                "[$__rate_interval])))",
                                "p99",
                            )
                        ],
                        steps=[(None, GREEN), (5, AMBER), (60, RED)],
                    ),
                ],
            ),
        ],
    )
