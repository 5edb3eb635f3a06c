"""The benchmark's figures as text: percentiles, the per-path tables and issue 6's targets.

Everything here is pure (figures in, strings out), so the arithmetic of a pass or a fail is
unit-tested without a stack.
"""

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

STAGES = ("created", "assigned", "confirmed")
STAGE_NAMES = {
    "created": "ticket.created",
    "assigned": "assigned (ticket.routed to an agent, or ticket.assigned)",
    "confirmed": "confirmation e-mail (notification.sent)",
}
ANCHOR_NAMES = {
    "relay_2hop": "raw relay, 2 hops",
    "relay_2hop_insert": "raw relay, 2 hops + INSERT per hop",
    "relay_3hop": "raw relay, 3 hops",
    "relay_3hop_insert": "raw relay, 3 hops + INSERT per hop",
}
# The burst issue 6 compares with the anchors; the nearest one when a run has no such burst.
REFERENCE_BURST = 20_000
CPU_LIMIT_MS = 0.6
CPU_GROWTH_LIMIT = 1.10
P99_LIMIT_MS = 150.0
P99_RATE = 1000
SMTP_SHARE = 0.8
IDLE_LIMIT_CORES = 0.05
TRIAGE_LIMIT_MS = 0.3  # issue 8: the learned triage per ticket
ROSTER_GROWTH_LIMIT = 1.25  # issue 8: routing cost flat in the number of agents


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and the maximum of `samples` (seconds), in milliseconds."""
    if not samples:
        return {}
    if len(samples) == 1:
        ms = samples[0] * 1000
        return {"p50_ms": ms, "p95_ms": ms, "p99_ms": ms, "max_ms": ms}
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50_ms": qs[49] * 1000,
        "p95_ms": qs[94] * 1000,
        "p99_ms": qs[98] * 1000,
        "max_ms": max(samples) * 1000,
    }


def flow(*, expected: int, latencies: Sequence[float], seconds: float) -> dict[str, Any]:
    """One path's figures: how many of `expected` arrived, at what rate, and their latencies.

    `seconds` runs from the first submission to the last arrival, so the rate is what the
    whole path sustained, queueing included."""
    count = len(latencies)
    return {
        "expected": expected,
        "count": count,
        "complete": count >= expected,
        "seconds": seconds,
        "per_second": count / seconds if seconds > 0 else 0.0,
        **percentiles(latencies),
    }


def reference_burst(bursts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The burst of 20,000 tickets, or the one nearest to it in size."""
    if not bursts:
        return None
    return min(bursts, key=lambda b: (abs(b["tickets"] - REFERENCE_BURST), -b["tickets"]))


@dataclass(frozen=True)
class Target:
    """One of issue 6's targets and where this run stands against it.

    `ratio` is the measured figure over its reference (an anchor, or the limit itself);
    `passed` is None when the run did not measure what the target needs."""

    name: str
    measured: str
    ratio: float | None
    passed: bool | None


def _at_least(name: str, measured: str, ratio: float | None, goal: float) -> Target:
    return Target(name, measured, ratio, None if ratio is None else ratio >= goal)


def _at_most(name: str, measured: str, ratio: float | None, goal: float) -> Target:
    return Target(name, measured, ratio, None if ratio is None else ratio <= goal)


def cpu_to_assigned(burst: dict[str, Any]) -> float | None:
    """CPU milliseconds per ticket over all processes until the last ticket was assigned."""
    per_process = burst["cpu_ms_per_ticket"].get("to_assigned")
    return None if per_process is None else sum(per_process.values())


def targets(figures: dict[str, Any]) -> list[Target]:
    """Issue 6's targets against this run's figures."""
    anchors = figures.get("anchors", {})
    bursts = figures.get("bursts", [])
    ref = reference_burst(bursts)
    rows = []

    def against_anchor(stage: str, anchor: str, goal: float) -> Target:
        name = f"{stage} ≥ {goal} × {ANCHOR_NAMES[anchor]}"
        if ref is None or anchor not in anchors:
            return Target(name, "not measured", None, None)
        mine, theirs = ref["stages"][stage]["per_second"], anchors[anchor]["per_second"]
        return _at_least(
            name,
            f"{mine:,.0f}/s ({ref['tickets']:,} burst) vs {theirs:,.0f}/s",
            mine / theirs if theirs else None,
            goal,
        )

    rows.append(against_anchor("assigned", "relay_3hop_insert", 0.5))
    # careloop's created path writes PostgreSQL (desk stores the ticket), so its anchor is
    # the relay that writes too.
    rows.append(against_anchor("created", "relay_2hop_insert", 0.7))

    name = f"CPU per ticket up to assigned ≤ {CPU_LIMIT_MS} ms"
    cpus = [(b["tickets"], cpu_to_assigned(b)) for b in bursts]
    measured = [(n, ms) for n, ms in cpus if ms is not None]
    if measured:
        n, worst = max(measured, key=lambda c: c[1])
        rows.append(
            _at_most(name, f"{worst:.2f} ms (worst, {n:,} burst)", worst / CPU_LIMIT_MS, 1.0)
        )
    else:
        rows.append(Target(name, "not measured", None, None))

    name = f"CPU per ticket up to assigned, largest burst ≤ {CPU_GROWTH_LIMIT} × smallest"
    if len(measured) >= 2:
        (small_n, small), (large_n, large) = min(measured), max(measured)
        rows.append(
            _at_most(
                name,
                f"{large:.2f} ms ({large_n:,}) vs {small:.2f} ms ({small_n:,})",
                large / small if small else None,
                CPU_GROWTH_LIMIT,
            )
        )
    else:
        rows.append(Target(name, "needs two bursts", None, None))

    name = f"p99 submission → assigned ≤ {P99_LIMIT_MS:.0f} ms at {P99_RATE:,} tickets/s"
    paced = figures.get("paced")
    if paced and "p99_ms" in paced["stages"]["assigned"]:
        p99 = paced["stages"]["assigned"]["p99_ms"]
        at = f"at {paced['rate']:,.0f}/s" + (
            "" if paced["rate"] == P99_RATE else f" (not {P99_RATE:,}/s)"
        )
        rows.append(_at_most(name, f"{p99:,.0f} ms {at}", p99 / P99_LIMIT_MS, 1.0))
    else:
        rows.append(Target(name, "not measured", None, None))

    name = f"confirmation e-mails ≥ {SMTP_SHARE} × the SMTP sink's own rate"
    smtp = figures.get("smtp")
    if ref is not None and smtp:
        mine, theirs = ref["stages"]["confirmed"]["per_second"], smtp["per_second"]
        rows.append(
            _at_least(
                name,
                f"{mine:,.0f}/s ({ref['tickets']:,} burst) vs {theirs:,.0f}/s",
                mine / theirs if theirs else None,
                SMTP_SHARE,
            )
        )
    else:
        rows.append(Target(name, "not measured", None, None))

    name = f"idle CPU of the whole stack ≤ {IDLE_LIMIT_CORES} core"
    idle = figures.get("idle")
    if idle:
        cores = idle["cores"]
        rows.append(_at_most(name, f"{cores:.3f} core", cores / IDLE_LIMIT_CORES, 1.0))
    else:
        rows.append(Target(name, "not measured", None, None))
    return rows


def routing_targets(routing: dict[str, Any] | None) -> list[Target]:
    """Issue 8's targets: triage CPU per ticket, and assignment cost flat in the roster size."""
    name = f"triage CPU per ticket ≤ {TRIAGE_LIMIT_MS} ms"
    if routing is None:
        return [Target(name, "not measured", None, None)]
    ms = routing["triage_cpu_ms_per_ticket"]
    rows = [_at_most(name, f"{ms:.3f} ms", ms / TRIAGE_LIMIT_MS, 1.0)]
    (small, *_, large) = sorted(routing["agents"], key=lambda a: a["agents"])
    name = f"CPU per assignment, largest roster ≤ {ROSTER_GROWTH_LIMIT} × smallest"
    cost = {a["agents"]: a["routing_us"] + a["redis_us"] for a in (small, large)}
    rows.append(
        _at_most(
            name,
            f"{cost[large['agents']]:.0f} µs ({large['agents']:,} agents) vs "
            f"{cost[small['agents']]:.0f} µs ({small['agents']:,})",
            cost[large["agents"]] / cost[small["agents"]],
            ROSTER_GROWTH_LIMIT,
        )
    )
    return rows


def routing_section(routing: dict[str, Any]) -> str:
    lines = [
        "### routing's own cost\n",
        f"Learned triage: {routing['triage_cpu_ms_per_ticket']:.3f} ms CPU per ticket in "
        "batches of 500 (the corpus's tickets).\n",
        "| agents | assignments | routing µs | Redis µs | total µs | assignments/s per core |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for a in routing["agents"]:
        total = a["routing_us"] + a["redis_us"]
        lines.append(
            f"| {a['agents']:,} | {a['assigned']:,} | {a['routing_us']:.1f} | "
            f"{a['redis_us']:.1f} | {total:.1f} | {1e6 / total:,.0f} |"
        )
    lines.append(
        f"\nCPU per assignment, its release included ({routing['tickets']:,} tickets, "
        f"{routing['profiles']} skill profiles); PostgreSQL's share, one row per assignment "
        "whatever the roster, is in the bursts above."
    )
    return "\n".join(lines)


def targets_markdown(rows: Sequence[Target]) -> str:
    """The targets as a Markdown table, ready for the README."""
    lines = ["| target | measured | ratio | result |", "|---|---|---:|---|"]
    for t in rows:
        ratio = "–" if t.ratio is None else f"{t.ratio:.2f}"
        result = {True: "pass", False: "**fail**", None: "–"}[t.passed]
        lines.append(f"| {t.name} | {t.measured} | {ratio} | {result} |")
    return "\n".join(lines)


def _ms(f: dict[str, Any], key: str) -> str:
    return f"{f[key]:,.1f}" if key in f else "–"


def flows_markdown(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Paths as a Markdown table: rate and latency percentiles, incomplete ones marked."""
    lines = [
        "| path | per s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, f in rows:
        if not f["complete"]:
            name += f" (only {f['count']:,} of {f['expected']:,})"
        lines.append(
            f"| {name} | {f['per_second']:,.0f} | {_ms(f, 'p50_ms')} | {_ms(f, 'p95_ms')} "
            f"| {_ms(f, 'p99_ms')} | {_ms(f, 'max_ms')} |"
        )
    return "\n".join(lines)


def cpu_line(per_process: dict[str, float]) -> str:
    """`total ms: biggest first` for CPU milliseconds per ticket by process."""
    ordered = sorted(per_process.items(), key=lambda kv: -kv[1])
    return f"{sum(per_process.values()):.2f} ms: " + ", ".join(f"{k} {v:.2f}" for k, v in ordered)


def anchors_section(anchors: dict[str, Any], smtp: dict[str, Any] | None) -> str:
    where = (
        "each middle hop a process of its own"
        if any(f.get("processes") for f in anchors.values())
        else "all hops in the bench's one process"
    )
    lines = [
        f"### Anchors (plain aiokafka and asyncpg, no careloop code; {where})",
        "",
        flows_markdown([(ANCHOR_NAMES[k], f) for k, f in anchors.items()]),
        "",
    ]
    for key, f in anchors.items():
        wal = f.get("wal_bytes_per_message")
        lines.append(
            f"- {ANCHOR_NAMES[key]}: CPU per message {cpu_line(f['cpu_ms_per_message'])}"
            + ("" if wal is None else f"; WAL {wal:,.0f} bytes per message")
        )
    if smtp:
        lines.append(smtp_line(smtp))
    return "\n".join(lines)


def smtp_line(smtp: dict[str, Any]) -> str:
    return (
        f"- SMTP sink alone: {smtp['per_second']:,.0f} messages/s "
        f"({smtp['messages']:,} over {smtp['connections']} connections)"
    )


def burst_section(burst: dict[str, Any]) -> str:
    n = burst["tickets"]
    stages = burst["stages"]
    lines = [
        f"### Burst of {n:,} tickets (fresh stack)",
        "",
        f"Submitted in {burst['submit_seconds']:.2f} s ({n / burst['submit_seconds']:,.0f}/s).",
        "",
        flows_markdown([(f"submitted → {STAGE_NAMES[s]}", stages[s]) for s in STAGES]),
        "",
        *_cost_lines(burst),
    ]
    return "\n".join(lines)


def _cost_lines(burst: dict[str, Any]) -> list[str]:
    """CPU and WAL per ticket, and the bench's own CPU, as list items."""
    lines = []
    cpu = burst["cpu_ms_per_ticket"]
    if cpu.get("to_assigned") is not None:
        lines.append(f"- CPU per ticket up to assigned, {cpu_line(cpu['to_assigned'])}")
    lines.append(f"- CPU per ticket, whole burst, {cpu_line(cpu['whole'])}")
    wal = burst["wal_bytes_per_ticket"]
    if wal.get("to_assigned") is not None:
        lines.append(f"- WAL per ticket up to assigned: {wal['to_assigned']:,.0f} bytes")
    lines.append(f"- WAL per ticket, whole burst: {wal['whole']:,.0f} bytes")
    lines.append(
        "- the bench itself (submitter and watcher), not counted above: "
        f"{burst['bench_cpu_ms_per_ticket']:.3f} ms CPU per ticket, "
        f"{burst['bench_cpu_cores']:.3f} core on average"
    )
    return lines


def kafka_burst_for(bursts: Sequence[dict[str, Any]], n: int) -> dict[str, Any] | None:
    """The Kafka burst the e-mail phase is compared with: the one of its size, or the
    nearest (the comparison names the size)."""
    if not bursts:
        return None
    return min(bursts, key=lambda b: (abs(b["tickets"] - n), -b["tickets"]))


def _accepted_per_second(burst: dict[str, Any]) -> float | None:
    """E-mail: 250 answers from the gateway per second; Kafka: records the broker
    acknowledged per second."""
    if "accepted" in burst["stages"]:
        rate: float = burst["stages"]["accepted"]["per_second"]
        return rate
    return burst["tickets"] / burst["submit_seconds"] if burst["submit_seconds"] else None


def _stage(stage: str, key: str, burst: dict[str, Any]) -> float | None:
    value: float | None = burst["stages"][stage].get(key)
    return value


def _cpu_total(span: str, burst: dict[str, Any]) -> float | None:
    """CPU ms per ticket of all processes over `span` (to_assigned, whole)."""
    per_process: dict[str, float] | None = burst["cpu_ms_per_ticket"].get(span)
    return None if per_process is None else sum(per_process.values())


def _cpu_of(span: str, process: str, burst: dict[str, Any]) -> float | None:
    """CPU ms per ticket of one process over `span`."""
    per_process: dict[str, float] | None = burst["cpu_ms_per_ticket"].get(span)
    return None if per_process is None else per_process.get(process)


def email_comparison(figures: dict[str, Any]) -> dict[str, Any] | None:
    """The e-mail phase next to the Kafka burst of its size, figure by figure, with the ratio
    e-mail ÷ Kafka (above 1: the e-mail path is faster in a rate, slower in a latency or
    costlier in CPU). None when the run has no e-mail phase or no burst."""
    email = figures.get("email")
    kafka = kafka_burst_for(figures.get("bursts", []), email["tickets"]) if email else None
    if email is None or kafka is None:
        return None

    whole = email["cpu_ms_per_ticket"]["whole"]
    figures_of: list[tuple[str, str, Callable[[dict[str, Any]], float | None]]] = [
        (
            "accepted/s (e-mail: 250 from the gateway; Kafka: acked by the broker)",
            "per_s",
            _accepted_per_second,
        ),
        ("created/s", "per_s", partial(_stage, "created", "per_second")),
        ("assigned/s", "per_s", partial(_stage, "assigned", "per_second")),
        ("confirmations/s", "per_s", partial(_stage, "confirmed", "per_second")),
        ("p50 submission → created", "ms", partial(_stage, "created", "p50_ms")),
        ("p99 submission → created", "ms", partial(_stage, "created", "p99_ms")),
        ("CPU per ticket up to assigned, all processes", "ms", partial(_cpu_total, "to_assigned")),
        ("CPU per ticket, whole burst, all processes", "ms", partial(_cpu_total, "whole")),
    ]
    # By process over the whole run: mails trickle in at the gateway's pace, so their
    # confirmations go out while tickets are still being assigned, and "up to assigned"
    # would hold most of the e-mail path's sending but little of the burst's.
    figures_of += [
        (f"CPU per ticket, whole burst: {name}", "ms", partial(_cpu_of, "whole", name))
        for name in sorted(whole, key=lambda name: -whole[name])
    ]
    rows = []
    for name, unit, get in figures_of:
        mine, theirs = get(email), get(kafka)
        ratio = mine / theirs if mine is not None and theirs else None
        rows.append({"figure": name, "unit": unit, "email": mine, "kafka": theirs, "ratio": ratio})
    return {"email_tickets": email["tickets"], "kafka_tickets": kafka["tickets"], "rows": rows}


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "per_s":
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(ratio: float) -> str:
    """Two decimals, or two significant digits for a ratio under 0.1 (0.0040, not 0.00)."""
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


def comparison_markdown(comparison: dict[str, Any]) -> str:
    """The e-mail path next to the Kafka path as a Markdown table with the ratio."""
    lines = [
        f"| figure | e-mail ({comparison['email_tickets']:,} mails) "
        f"| Kafka ({comparison['kafka_tickets']:,} burst) | e-mail ÷ Kafka |",
        "|---|---:|---:|---:|",
    ]
    for row in comparison["rows"]:
        unit = {"per_s": "", "ms": " (ms)"}[row["unit"]]
        ratio = "–" if row["ratio"] is None else _ratio(row["ratio"])
        lines.append(
            f"| {row['figure']}{unit} | {_value(row['email'], row['unit'])} "
            f"| {_value(row['kafka'], row['unit'])} | {ratio} |"
        )
    return "\n".join(lines)


def email_section(email: dict[str, Any], comparison: dict[str, Any] | None) -> str:
    n = email["tickets"]
    refused = email.get("refused") or {}
    kinds = ", ".join(f"{count:,} {kind}" for kind, count in email["kinds"].items())
    lines = [
        f"### E-mail in: {n:,} mails through intake's SMTP gateway (fresh stack)",
        "",
        f"Sent over {email['connections']} SMTP connections in {email['submit_seconds']:.2f} s "
        f"({kinds}; {email['mail_bytes'] / n / 1024:.1f} KiB a mail on average). "
        + (
            "Answers other than 250: "
            + ", ".join(f"{count:,} × {reply}" for reply, count in refused.items())
            + "."
            if refused
            else "Every mail answered 250."
        ),
        "",
        flows_markdown(
            [("mail sent → 250 from the gateway", email["stages"]["accepted"])]
            + [(f"mail sent → {STAGE_NAMES[s]}", email["stages"][s]) for s in STAGES]
        ),
        "",
        *_cost_lines(email),
    ]
    if comparison is not None:
        size = comparison["kafka_tickets"]
        lines += [
            "",
            f"#### The e-mail path next to the Kafka burst of {size:,} (careloop.inbound.v1)"
            + ("" if size == n else f" — no Kafka burst of {n:,} in this run"),
            "",
            comparison_markdown(comparison),
        ]
    return "\n".join(lines)


def paced_section(paced: dict[str, Any], *, without_email: bool = False) -> str:
    stages = paced["stages"]
    title = f"Paced: {paced['rate']:,.0f} tickets/s for {paced['duration']:.0f} s (fresh stack"
    title += ", notify's senders off: no e-mail on the same cores)" if without_email else ")"
    lines = [
        f"### {title}",
        "",
        f"{paced['tickets']:,} submitted at {paced['achieved_rate']:,.0f}/s; the submitter "
        f"was behind its schedule by {paced['lag']['p99_ms']:.1f} ms at p99, "
        f"{paced['lag']['max_ms']:.1f} ms at most (counted in the latencies below).",
        "",
        flows_markdown([(f"submitted → {STAGE_NAMES[s]}", f) for s, f in stages.items()]),
        "",
        "- until the last ticket was assigned (confirmations still going out): CPU per ticket "
        f"{cpu_line(paced['cpu_ms_per_ticket'])}; WAL per ticket "
        f"{paced['wal_bytes_per_ticket']:,.0f} bytes",
    ]
    return "\n".join(lines)


def idle_section(idle: dict[str, Any]) -> str:
    return (
        f"### Idle\n\nThe whole stack, nothing happening, over {idle['seconds']:.0f} s: "
        f"{idle['cores']:.3f} core ({cpu_line_cores(idle['per_process'])})"
    )


def cpu_line_cores(per_process: dict[str, float]) -> str:
    ordered = sorted(per_process.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:.3f}" for k, v in ordered)


def paced_reach(shares: dict[str, float], rates: dict[str, float]) -> float:
    """Learners a second a release reaches at `rates` per channel when `shares` of the learners
    are on each: the slowest channel's bucket sets the end."""
    return 1 / max(share / rates[channel] for channel, share in shares.items())


def incident_section(
    incident: dict[str, Any], anchors: dict[str, Any] | None, *, paced: float
) -> str:
    """The bulk notice and the compensation batch: reached exactly once or not, the API's
    answer, learners a second to the last one, against the providers' default pace (`paced`
    learners a second) and the raw 2-hop relay of the same run."""
    relay = (anchors or {}).get("relay_2hop", {}).get("per_second")
    n = incident["learners"]
    lines = [
        f"### Incident: a bulk notice and a compensation batch to {n:,} learners",
        "",
        f"incident alone on its stack; {n:,} learner snapshots stored in "
        f"{incident['enrol_seconds']:.1f} s, {n:,} tickets linked on arrival in "
        f"{incident.get('link_seconds', 0):.1f} s. Each step runs from the API call to the last "
        "learner's message on the topic (careloop.incidents.v1, careloop.remedies.v1), the "
        "notices released unpaced.",
        "",
        "| step | reached | exactly once | missing | twice | copies resent | API answer s "
        "| end to end s | learners/s | ÷ providers' pace | ÷ raw 2-hop relay | CPU ms/learner |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, key in (("bulk notice", "notices"), ("compensation batch", "remedies")):
        f = incident.get(key)
        if f is None:
            continue
        vs_relay = "–" if not relay else f"{f['per_second'] / relay:.2f}"
        vs_paced = f"{f['per_second'] / paced:.1f}" if key == "notices" else "–"
        lines.append(
            f"| {name} | {f['reached']:,} of {f['expected']:,} "
            f"| {'yes' if f['exactly_once'] else '**no**'} | {f['missing']:,} | {f['twice']:,} "
            f"| {f['resent']:,} | {f['api_seconds']:.1f} | {f['seconds']:.1f} "
            f"| {f['per_second']:,.0f} | {vs_paced} | {vs_relay} "
            f"| {sum(f['cpu_ms_per_learner'].values()):.2f} |"
        )
    lines += [
        "",
        f"The providers' default pace (CARELOOP_INCIDENT_NOTICE_RATES) reaches {paced:,.0f} "
        f"learners a second with this mix of channels: {n / paced:,.0f} s for {n:,}.",
    ]
    for name, key in (("notice", "notices"), ("compensation", "remedies")):
        if f := incident.get(key):
            lines.append(f"- CPU per learner, {name}: {cpu_line(f['cpu_ms_per_learner'])}")
    return "\n".join(lines)


def full_report(figures: dict[str, Any]) -> str:
    """Every figure of the run, then the targets table."""
    parts = [f"## careloop bench\n\n{figures['note']}"]
    if "idle" in figures:
        parts.append(idle_section(figures["idle"]))
    if figures.get("anchors"):
        parts.append(anchors_section(figures["anchors"], figures.get("smtp")))
    elif figures.get("smtp"):
        parts.append("### Floors\n\n" + smtp_line(figures["smtp"]))
    parts += [burst_section(b) for b in figures.get("bursts", [])]
    if figures.get("email"):
        parts.append(email_section(figures["email"], email_comparison(figures)))
    if figures.get("paced"):
        parts.append(paced_section(figures["paced"]))
    if figures.get("paced_without_email"):
        parts.append(paced_section(figures["paced_without_email"], without_email=True))
    if figures.get("routing"):
        parts.append(routing_section(figures["routing"]))
    if figures.get("incident"):
        parts.append(
            incident_section(
                figures["incident"],
                figures.get("anchors"),
                paced=paced_reach(figures["incident"]["shares"], figures["incident"]["rates"]),
            )
        )
    parts.append("### Targets of issue 6\n\n" + targets_markdown(targets(figures)))
    parts.append(
        "### Targets of issue 8\n\n" + targets_markdown(routing_targets(figures.get("routing")))
    )
    return "\n\n".join(parts)
