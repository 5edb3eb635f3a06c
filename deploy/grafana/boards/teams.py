"""Teams and agents: who is waiting in which queue, who is there to take it, and how agents do."""

from grafana_foundation_sdk.builders.dashboard import Dashboard

from deploy.grafana.panels import GREEN, RED, Query, board, graph, label_variable, listing, single

# Every routing replica reads the same tables into these gauges: `max` them, never `sum`.
QUEUE = 'max by (team, priority) (careloop_routing_queue_depth{team=~"$team"})'
ONLINE = 'max by (team) (careloop_routing_agents_online{team=~"$team"})'


def teams() -> Dashboard:
    return board(
        uid="careloop-teams",
        title="careloop / Teams and agents",
        description="Queues and the agents online per team, open work by status, and each "
        "agent's resolutions and satisfaction scores.",
        variables=[
            label_variable(
                "team",
                label="Team",
                selector="careloop_routing_agents_online",
                description="Teams whose queues and agents the panels show.",
            )
        ],
        rows=[
            (
                "Queues",
                [
                    single(
                        "Waiting in queues",
                        unit="short",
                        description="Tickets waiting for an agent in the chosen teams. "
                        "Good: 0 or a few for minutes; a queue that grows while agents "
                        "are online means capacity is full.",
                        query=Query(f"sum({QUEUE})"),
                        steps=[(None, GREEN), (10, "orange"), (50, RED)],
                    ),
                    single(
                        "Agents online",
                        unit="short",
                        description="Agents available now (online, presence fresh, on shift) "
                        "in the chosen teams; an agent in two teams counts in both. Bad: 0 "
                        "in working hours.",
                        query=Query(f"sum({ONLINE})"),
                        steps=[(None, RED), (1, GREEN)],
                    ),
                    single(
                        "Agents over capacity",
                        unit="short",
                        description="Agents holding more tickets than their capacity at "
                        "routing's last reconciliation. Good: 0; more means the load "
                        "counts drifted and routing corrected them.",
                        query=Query("max(careloop_routing_agents_over_capacity)"),
                        steps=[(None, GREEN), (1, RED)],
                    ),
                    single(
                        "Teams with a queue and no one online",
                        unit="short",
                        description="Teams with tickets waiting and no agent online to take "
                        "them: those tickets will breach (after 5 minutes the alert "
                        "CareloopTeamQueueUnattended fires). Good: 0.",
                        query=Query(
                            'count(team:careloop_routing_queue_depth:max{team=~"$team"} > 0'
                            " and on (team) team:careloop_routing_agents_online:max == 0)"
                            " or vector(0)"
                        ),
                        steps=[(None, GREEN), (1, RED)],
                    ),
                    graph(
                        "Waiting in queue by team and priority",
                        unit="short",
                        description="Tickets waiting in each team's queue by priority. Good: "
                        "near 0; urgent tickets waiting at all deserve a look.",
                        queries=[Query(QUEUE, "{{team}} {{priority}}")],
                        stacked=True,
                    ),
                    graph(
                        "Agents online by team",
                        unit="short",
                        description="Agents available per team. Bad: a team at 0 while its "
                        "queue above holds tickets.",
                        queries=[Query(ONLINE, "{{team}}")],
                    ),
                    graph(
                        "Open tickets by team and status",
                        unit="short",
                        description="Tickets not closed, by team and status (queued, "
                        "assigned, waiting on the learner, resolved awaiting confirmation). "
                        "Many 'assigned' with few replies means agents hold more than they "
                        "work.",
                        queries=[
                            Query(
                                "sum by (team, status) (max by (team, status) "
                                '(careloop_tickets_open{team=~"$team"}))',
                                "{{team}} {{status}}",
                            )
                        ],
                        stacked=True,
                        span=24,
                    ),
                ],
            ),
            (
                "Agents",
                [
                    graph(
                        "Resolutions per agent",
                        unit="suffix: tickets/h",
                        description="Tickets each agent resolved per hour. Compare agents of "
                        "one team; a drop to 0 in working hours is an agent away or stuck.",
                        queries=[
                            Query(
                                "sum by (agent) (rate(careloop_agent_tickets_resolved_total"
                                '{team=~"$team"}[$__rate_interval])) * 3600',
                                "{{agent}}",
                            )
                        ],
                    ),
                    listing(
                        "Resolutions per agent over the range",
                        unit="short",
                        description="Tickets each agent resolved over the dashboard's time "
                        "range, per team: the handled counts for the monthly review.",
                        query=Query(
                            "round(sum by (agent, team) (increase("
                            'careloop_agent_tickets_resolved_total{team=~"$team"}[$__range])))'
                        ),
                        span=12,
                    ),
                    listing(
                        "Agent satisfaction over the range",
                        unit="percentunit",
                        description="Per agent and survey dimension, the share of scores "
                        "above 3 over the dashboard's time range. Good: above 90 %; an agent "
                        "low on one dimension (speed, ability, attitude) shows what to "
                        "coach.",
                        query=Query(
                            "1 - sum by (agent, dimension) (increase("
                            'careloop_agent_survey_score_bucket{le="3.0"}[$__range]))'
                            " / sum by (agent, dimension) (increase("
                            "careloop_agent_survey_score_count[$__range]))"
                        ),
                        span=12,
                    ),
                ],
            ),
        ],
    )
