"""The benchmark's arithmetic: percentiles, rates and issue 6's targets table."""

import pytest

from bench.report import (
    flow,
    percentiles,
    reference_burst,
    routing_targets,
    targets,
    targets_markdown,
)


def _stage(per_second: float, p99_ms: float = 10.0) -> dict[str, float]:
    return {"per_second": per_second, "p99_ms": p99_ms}


def _burst(
    tickets: int, *, created: float, assigned: float, confirmed: float, cpu: dict[str, float]
) -> dict[str, object]:
    return {
        "tickets": tickets,
        "stages": {
            "created": _stage(created),
            "assigned": _stage(assigned),
            "confirmed": _stage(confirmed),
        },
        "cpu_ms_per_ticket": {"to_assigned": cpu, "whole": cpu},
    }


def _figures() -> dict[str, object]:
    return {
        "anchors": {
            "relay_2hop_insert": _stage(10_000),
            "relay_3hop_insert": _stage(6_000),
        },
        "smtp": {"per_second": 500.0},
        "idle": {"cores": 0.04},
        "bursts": [
            _burst(2_000, created=9_000, assigned=2_900, confirmed=450, cpu={"a": 0.3, "b": 0.2}),
            _burst(20_000, created=8_000, assigned=3_000, confirmed=350, cpu={"a": 0.4}),
            _burst(100_000, created=7_000, assigned=2_000, confirmed=400, cpu={"a": 0.54}),
        ],
        "paced": {"rate": 1000, "stages": {"assigned": _stage(1000, p99_ms=120.0)}},
    }


def test_percentiles_of_a_hundred_samples_are_in_milliseconds() -> None:
    samples = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms

    got = percentiles(samples)

    assert got["p50_ms"] == pytest.approx(50.5)
    assert got["p95_ms"] == pytest.approx(95.05)
    assert got["p99_ms"] == pytest.approx(99.01)
    assert got["max_ms"] == pytest.approx(100)


def test_percentiles_of_one_sample_are_that_sample_and_of_none_are_absent() -> None:
    assert percentiles([0.2]) == {"p50_ms": 200, "p95_ms": 200, "p99_ms": 200, "max_ms": 200}
    assert percentiles([]) == {}


def test_a_flow_that_did_not_see_every_message_says_so_and_rates_what_arrived() -> None:
    got = flow(expected=4, latencies=[0.1, 0.2, 0.3], seconds=1.5)

    assert (got["count"], got["complete"]) == (3, False)
    assert got["per_second"] == pytest.approx(2.0)


def test_the_reference_burst_is_the_20000_one_or_the_nearest() -> None:
    sizes = [{"tickets": n} for n in (2_000, 20_000, 100_000)]
    assert reference_burst(sizes) == {"tickets": 20_000}
    assert reference_burst([{"tickets": 2_000}, {"tickets": 50_000}]) == {"tickets": 2_000}
    assert reference_burst([]) is None


def test_targets_compare_the_20000_burst_with_its_anchors_and_limits() -> None:
    rows = {t.name.split(" ≥ ")[0].split(" ≤ ")[0]: t for t in targets(_figures())}

    assigned = rows["assigned"]
    assert assigned.ratio == pytest.approx(0.5) and assigned.passed  # 3,000 vs 6,000
    created = rows["created"]
    assert created.ratio == pytest.approx(0.8) and created.passed  # 8,000 vs 10,000
    cpu = rows["CPU per ticket up to assigned"]
    assert cpu.ratio == pytest.approx(0.54 / 0.6) and cpu.passed  # the worst burst counts
    growth = rows["CPU per ticket up to assigned, largest burst"]
    assert growth.ratio == pytest.approx(0.54 / 0.5) and growth.passed  # 100,000 vs 2,000
    p99 = rows["p99 submission → assigned"]
    assert p99.ratio == pytest.approx(0.8) and p99.passed
    mails = rows["confirmation e-mails"]
    assert mails.ratio == pytest.approx(0.7) and mails.passed is False  # 350 of 500
    idle = rows["idle CPU of the whole stack"]
    assert idle.ratio == pytest.approx(0.8) and idle.passed


def test_a_cpu_growth_over_ten_percent_fails() -> None:
    figures = _figures()
    figures["bursts"][2]["cpu_ms_per_ticket"]["to_assigned"] = {"a": 0.56}  # type: ignore[index]

    growth = next(t for t in targets(figures) if "largest burst" in t.name)

    assert growth.ratio == pytest.approx(1.12) and growth.passed is False


def test_what_the_run_did_not_measure_is_neither_passed_nor_failed() -> None:
    rows = targets({"bursts": []})

    assert all(t.passed is None and t.ratio is None for t in rows)
    assert len(rows) == 7


def test_the_markdown_table_has_a_row_per_target_and_marks_failures() -> None:
    table = targets_markdown(targets(_figures()))
    lines = table.splitlines()

    assert lines[0] == "| target | measured | ratio | result |"
    assert len(lines) == 2 + 7
    assert sum("**fail**" in line for line in lines) == 1
    assert "| 0.70 | **fail** |" in table


def _routing(triage_ms: float, costs: dict[int, float]) -> dict[str, object]:
    return {
        "triage_cpu_ms_per_ticket": triage_ms,
        "agents": [
            {"agents": n, "assigned": 5000, "routing_us": us * 0.6, "redis_us": us * 0.4}
            for n, us in costs.items()
        ],
        "tickets": 5000,
        "profiles": 24,
    }


def test_routing_targets_pass_a_cheap_triage_and_a_flat_roster() -> None:
    rows = routing_targets(_routing(0.2, {10: 100.0, 100: 104.0, 1000: 120.0}))
    assert [r.passed for r in rows] == [True, True]
    assert rows[1].ratio == pytest.approx(1.2)


def test_routing_targets_fail_a_slow_triage_and_a_roster_that_costs_more_per_agent() -> None:
    rows = routing_targets(_routing(0.45, {10: 100.0, 1000: 180.0}))
    assert [r.passed for r in rows] == [False, False]
    assert rows[0].ratio == pytest.approx(1.5)


def test_routing_targets_unmeasured_are_neither_passed_nor_failed() -> None:
    assert [r.passed for r in routing_targets(None)] == [None]
