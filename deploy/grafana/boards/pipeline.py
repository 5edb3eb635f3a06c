"""Pipeline health: are the services up, keeping up with Kafka, and delivering what they owe."""

from grafana_foundation_sdk.builders.dashboard import Dashboard

from deploy.grafana.panels import AMBER, GREEN, RED, Query, board, graph, label_variable, listing

JOB = '{job=~"$job"}'


def per_service(series: str, *, by: str = "service") -> Query:
    """The per-second rate of counter `series`, per `by`, in the chosen services."""
    return Query(f"sum by ({by}) (rate({series}{JOB}[$__rate_interval]))", f"{{{{{by}}}}}")


def pipeline() -> Dashboard:
    return board(
        uid="careloop-pipeline",
        title="careloop / Pipeline health",
        description="Targets up, CPU and memory per service, consumer lag and batch time, "
        "dead letters, the outbox relay, notifications and inbound mail.",
        variables=[
            label_variable(
                "job",
                label="Service",
                selector="up",
                description="Services (Prometheus jobs) the panels show.",
            )
        ],
        rows=[
            (
                "Processes",
                [
                    listing(
                        "Services down",
                        unit="short",
                        description="Scrape targets Prometheus cannot reach now. Good: no "
                        "row; a row is a service down or not answering /metrics.",
                        query=Query(f"up{JOB} == 0"),
                        span=8,
                    ),
                    graph(
                        "CPU per service",
                        unit="percentunit",
                        description="CPU each service process uses (100 % = one core), "
                        "summed over its replicas. A service pinned near 100 % per replica "
                        "is the bottleneck: scale it out.",
                        queries=[
                            Query(
                                f"sum by (job) (rate(process_cpu_seconds_total{JOB}"
                                "[$__rate_interval]))",
                                "{{job}}",
                            )
                        ],
                        span=8,
                    ),
                    graph(
                        "Memory per service",
                        unit="bytes",
                        description="Resident memory of each service, summed over its "
                        "replicas. Steady is good; a line that only climbs is a leak.",
                        queries=[
                            Query(f"sum by (job) (process_resident_memory_bytes{JOB})", "{{job}}")
                        ],
                        span=8,
                    ),
                ],
            ),
            (
                "Consumers",
                [
                    graph(
                        "Consumer lag by group",
                        unit="short",
                        description="Messages each consumer group has not committed yet, "
                        "summed over partitions. Good: near 0 and falling after a burst; a "
                        "line that keeps rising is a consumer that stopped or cannot keep "
                        "up.",
                        queries=[Query("group:careloop_consumer_lag:sum", "{{group}}")],
                        steps=[(None, GREEN), (1000, AMBER), (10000, RED)],
                    ),
                    graph(
                        "Batch time p95 by service",
                        unit="s",
                        description="95th percentile of the time to apply one consumed batch "
                        "in its transaction. Good: well under a second; seconds mean the "
                        "database is slow or batches are huge after a backlog.",
                        queries=[
                            Query(
                                "histogram_quantile(0.95, sum by (service, le) (rate("
                                f"careloop_consumer_batch_seconds_bucket{JOB}[$__rate_interval])))",
                                "{{service}}",
                            )
                        ],
                        steps=[(None, GREEN), (1, AMBER), (5, RED)],
                    ),
                    graph(
                        "Events applied",
                        unit="cps",
                        description="Events each service applied per second. It follows "
                        "intake's volume; a service at 0 while others move has stopped "
                        "consuming.",
                        queries=[per_service("careloop_events_applied_total")],
                        stacked=True,
                    ),
                    graph(
                        "Redeliveries skipped",
                        unit="cps",
                        description="Events a service had already applied and skipped. Some "
                        "after a restart or rebalance are normal; a steady stream means "
                        "offsets are not committed.",
                        queries=[per_service("careloop_events_redelivered_total")],
                    ),
                ],
            ),
            (
                "Dead letters and outbox",
                [
                    graph(
                        "Dead letters",
                        unit="short",
                        description="Messages sent to a dead-letter topic per scrape "
                        "interval, by service and source topic. Good: none; each one is an "
                        "event no retry can apply: read its reason on the .dlq topic.",
                        queries=[
                            Query(
                                "sum by (service, topic) (increase(careloop_dead_letters_total"
                                f"{JOB}[$__rate_interval]))",
                                "{{service}} {{topic}}",
                            )
                        ],
                        steps=[(None, GREEN), (1, RED)],
                    ),
                    graph(
                        "Outbox lag",
                        unit="s",
                        description="Age of the oldest event in each relay's last batch when "
                        "Kafka acknowledged it. Good: under a second; tens of seconds mean "
                        "the broker is slow or unreachable and events wait in Postgres.",
                        queries=[
                            Query(
                                f"max by (service) (careloop_outbox_lag_seconds{JOB})",
                                "{{service}}",
                            )
                        ],
                        steps=[(None, GREEN), (5, AMBER), (30, RED)],
                    ),
                    graph(
                        "Outbox published",
                        unit="cps",
                        description="Events each service's relay published per second. It "
                        "should follow the work done; 0 while tickets arrive means the "
                        "relay is stuck.",
                        queries=[per_service("careloop_outbox_published_total")],
                        stacked=True,
                    ),
                    graph(
                        "Broker recoveries",
                        unit="short",
                        description="Times a service found the broker back after losing it "
                        "and restarted its consumers. Good: none outside broker "
                        "maintenance.",
                        queries=[
                            Query(
                                "sum by (service) (increase(careloop_broker_recoveries_total"
                                f"{JOB}[$__rate_interval]))",
                                "{{service}}",
                            )
                        ],
                    ),
                ],
            ),
            (
                "Notifications and inbound mail",
                [
                    graph(
                        "Notifications by outcome",
                        unit="suffix: /h",
                        description="Notifications sent and failed per hour, by kind. Good: "
                        "no failed line; failures mean learners or agents did not hear "
                        "from us (check the SMTP relay and channel credentials).",
                        queries=[
                            Query(
                                "sum by (kind, outcome) "
                                "(rate(careloop_notifications_total[$__rate_interval])) * 3600",
                                "{{kind}} {{outcome}}",
                            )
                        ],
                        stacked=True,
                    ),
                    graph(
                        "Inbound mail not ticketed",
                        unit="suffix: /h",
                        description="Inbound e-mails dropped as noise (auto-replies, "
                        "bounces, list mail) and refused (too large, malformed, empty), per "
                        "hour. Some noise is normal; many refusals mean learners' mail is "
                        "bounced back.",
                        queries=[
                            Query(
                                "sum by (kind) (rate(careloop_mail_dropped_total"
                                f"{JOB}[$__rate_interval])) * 3600",
                                "dropped {{kind}}",
                            ),
                            Query(
                                "sum by (problem) (rate(careloop_mail_refused_total"
                                f"{JOB}[$__rate_interval])) * 3600",
                                "refused {{problem}}",
                            ),
                        ],
                    ),
                    graph(
                        "Requests refused by rate limits",
                        unit="suffix: /h",
                        description="Requests refused by a rate limit per hour, by scope and "
                        "limit, and those let through unlimited because Redis could not be "
                        "asked. A burst of refusals is a flood or a misbehaving client; "
                        "any 'unlimited' means Redis is down.",
                        queries=[
                            Query(
                                "sum by (scope, limit) (rate(careloop_rate_limited_total"
                                f"{JOB}[$__rate_interval])) * 3600",
                                "refused {{scope}} {{limit}}",
                            ),
                            Query(
                                "sum by (scope) (rate(careloop_rate_limits_unavailable_total"
                                f"{JOB}[$__rate_interval])) * 3600",
                                "unlimited {{scope}}",
                            ),
                        ],
                        span=24,
                    ),
                ],
            ),
        ],
    )
