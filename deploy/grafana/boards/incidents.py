"""Incidents: alerts firing now, the incident service's early warning and response, and the
ticket spikes that announce a problem many learners share.

The incident service (R6.3, R11.1) watches each category's, course's and channel's recent
tickets against their baseline and raises its own alerts (careloop_incident_alerts_total, with
the anomaly score behind them); once an incident is open it pages the response group and
releases notices and remedies to the learners it affects."""

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


def per_hour(counter: str, by: str) -> Query:
    """Counter `counter`'s events per hour, summed over the service's replicas, per `by`."""
    return Query(
        f"sum by ({by}) (rate({counter}[$__rate_interval])) * 3600",
        " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(",")),
    )


def incidents() -> Dashboard:
    return board(
        uid="careloop-incidents",
        title="careloop / Incidents",
        description="Alerts firing now and over time, the incident service's early warning "
        "(its alerts and anomaly scores) and response (pages, learner notices, remedies), and "
        "the ticket spikes (complaints, urgent tickets, one category far above its usual rate) "
        "that mark an incident.",
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
                "Early warning",
                [
                    single(
                        "Early warnings, last 24 h",
                        unit="short",
                        description="Alerts the incident service's early warning raised over "
                        "the last day (a category, course or channel far above its usual "
                        "tickets, or the complaint or fault rate above its threshold). Good: "
                        "0; each one is worth a look at the incident list.",
                        query=Query(
                            "sum(increase(careloop_incident_alerts_total[1d])) or vector(0)"
                        ),
                        steps=[(None, GREEN), (1, AMBER)],
                        span=6,
                    ),
                    graph(
                        "Early warnings by kind",
                        unit="suffix: alerts/h",
                        description="Early-warning alerts raised per hour: volume (one key's "
                        "tickets far above its baseline for this hour of the week), "
                        "complaint_rate and fault_rate (a share of recent tickets above its "
                        "threshold). Good: none; a burst of volume alerts is one incident "
                        "seen on several keys.",
                        queries=[per_hour("careloop_incident_alerts_total", "kind")],
                        stacked=True,
                        span=9,
                    ),
                    graph(
                        "Anomaly score by dimension",
                        unit="short",
                        description="The highest anomaly score among each dimension's keys "
                        "(category, course, channel) at the early warning's last look: "
                        "-log10 of how likely the last window's tickets are under the "
                        "baseline (3: one chance in a thousand, 6: in a million). Below 3 is "
                        "usual. A key alerts when its score passes the threshold "
                        "CARELOOP_INCIDENT_ALPHA sets and it has enough tickets (the panel "
                        "beside counts those alerts).",
                        queries=[
                            Query(
                                "max by (dimension) (careloop_incident_anomaly_score)",
                                "{{dimension}}",
                            )
                        ],
                        steps=[(None, GREEN), (3, AMBER), (6, RED)],
                        span=9,
                    ),
                ],
            ),
            (
                "Response",
                [
                    single(
                        "Pages given up, last 24 h",
                        unit="short",
                        description="Messages to an incident's response group (webhook or "
                        "e-mail) given up after every attempt over the last day. Good: 0; "
                        "otherwise the group was not told: check the webhook or SMTP, and the "
                        "incident's report for the error.",
                        query=Query(
                            'sum(increase(careloop_incident_pages_total{outcome="failed"}[1d]))'
                            " or vector(0)"
                        ),
                        steps=[(None, GREEN), (1, RED)],
                        span=6,
                    ),
                    graph(
                        "Response-group pages by outcome",
                        unit="suffix: pages/h",
                        description="Messages to incidents' response groups per hour, by "
                        "target and outcome. Good: sent only; retried is a webhook or mail "
                        "server failing for now, failed is a page given up.",
                        queries=[per_hour("careloop_incident_pages_total", "target, outcome")],
                        stacked=True,
                        span=6,
                    ),
                    graph(
                        "Learner notices by channel",
                        unit="suffix: notices/h",
                        description="Incident notices (announcements and resolutions) "
                        "released to notify per hour, by channel. Follows the incidents "
                        "announced; flat while an incident is announced means notices wait "
                        "on a channel's rate limit.",
                        queries=[per_hour("careloop_incident_notices_total", "channel")],
                        stacked=True,
                        span=6,
                    ),
                    graph(
                        "Remedies issued",
                        unit="suffix: remedies/h",
                        description="Compensation remedies (one per learner and batch) "
                        "published on careloop.remedies.v1 per hour. Rises only after a "
                        "manager approves an incident's compensation batch, then falls to 0 "
                        "once every learner of it has one.",
                        queries=[
                            Query(
                                "sum(rate(careloop_incident_remedies_total[$__rate_interval]))"
                                " * 3600",
                                "remedies",
                            )
                        ],
                        span=6,
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
