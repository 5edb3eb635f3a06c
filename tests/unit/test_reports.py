"""Reports' pure parts: periods on the Shanghai calendar, KPIs and their changes, top problems,
improvement actions, charts as SVG, the facts an event gives, the demo history."""

import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.metrics.reports import charts, facts, render
from services.metrics.reports.demo import stories
from services.metrics.reports.domain import (
    Counts,
    Verdict,
    change,
    kpis,
    measured,
    meets_target,
    overdue,
    problem_key,
    top_problems,
)
from services.metrics.reports.periods import (
    Kind,
    Period,
    custom,
    day_of,
    last_complete,
    month_of,
    week_of,
)
from services.metrics.reports.settings import ReportSettings
from shared.events import (
    Channel,
    Learner,
    LearnerContext,
    LearnerCourse,
    SurveyAnswered,
    TicketCreated,
    TicketReopened,
    TicketResolved,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


# ---- periods -------------------------------------------------------------------------------


def test_just_after_midnight_in_shanghai_the_day_that_ended_is_the_shanghai_one() -> None:
    at = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)  # Tuesday 1 December, 00:30 in Shanghai

    assert last_complete(Kind.DAILY, at, SHANGHAI) == Period(
        Kind.DAILY, date(2026, 11, 30), date(2026, 12, 1)
    )
    assert last_complete(Kind.WEEKLY, at, SHANGHAI) == Period(
        Kind.WEEKLY, date(2026, 11, 23), date(2026, 11, 30)
    )
    assert last_complete(Kind.MONTHLY, at, SHANGHAI) == Period(
        Kind.MONTHLY, date(2026, 11, 1), date(2026, 12, 1)
    )


def test_the_same_instant_is_still_the_previous_day_in_utc_terms() -> None:
    at = datetime(2026, 11, 30, 15, 59, tzinfo=UTC)  # 23:59 on 30 November in Shanghai

    assert last_complete(Kind.DAILY, at, SHANGHAI).start == date(2026, 11, 29)
    assert last_complete(Kind.MONTHLY, at, SHANGHAI).start == date(2026, 10, 1)


def test_a_period_starts_at_shanghai_midnight() -> None:
    start, end = month_of(date(2026, 2, 10)).bounds(SHANGHAI)

    assert start == datetime(2026, 1, 31, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)


def test_weeks_run_from_monday_and_months_cross_the_year() -> None:
    assert week_of(date(2026, 12, 6)) == Period(Kind.WEEKLY, date(2026, 11, 30), date(2026, 12, 7))
    assert month_of(date(2026, 12, 31)).end == date(2027, 1, 1)
    assert month_of(date(2026, 3, 1)).previous() == Period(
        Kind.MONTHLY, date(2026, 2, 1), date(2026, 3, 1)
    )
    assert day_of(date(2027, 1, 1)).previous().start == date(2026, 12, 31)


def test_a_range_is_named_by_what_it_is() -> None:
    assert custom(date(2026, 11, 1), date(2026, 12, 1)).kind is Kind.MONTHLY
    assert custom(date(2026, 11, 30), date(2026, 12, 7)).kind is Kind.WEEKLY
    ranged = custom(date(2026, 11, 3), date(2026, 11, 13))
    assert ranged.kind is Kind.CUSTOM
    assert ranged.previous() == Period(Kind.CUSTOM, date(2026, 10, 24), date(2026, 11, 3))


def test_a_period_that_does_not_end_after_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends after it starts"):
        custom(date(2026, 11, 3), date(2026, 11, 3))


# ---- KPIs and changes ----------------------------------------------------------------------


def counts(**changed: Any) -> Counts:
    base: dict[str, Any] = dict(
        tickets=200,
        complaints=10,
        resolved=180,
        ever_resolved=190,
        resolved_first_time=171,
        reopened=19,
        first_response_met=150,
        first_response_due=160,
        resolution_met=140,
        resolution_due=175,
        repeats=12,
        open_at_end=20,
        first_response_median_s=1800.0,
        first_response_p90_s=7200.0,
        resolution_median_s=18000.0,
        resolution_p90_s=90000.0,
        surveys=80,
        satisfied=74,
        overall_avg=4.4,
    )
    return Counts(**(base | changed))


def test_kpis_are_shares_of_their_own_whole() -> None:
    found = kpis(counts())

    assert found["resolution_rate"] == pytest.approx(90.0)
    assert found["first_contact_resolution"] == pytest.approx(90.0)
    assert found["reopen_rate"] == pytest.approx(10.0)
    assert found["satisfaction"] == pytest.approx(92.5)
    assert found["first_response_sla"] == pytest.approx(93.75)
    assert found["complaint_rate"] == pytest.approx(5.0)
    assert found["repeat_rate"] == pytest.approx(6.0)
    assert found["first_response_median"] == pytest.approx(30.0)  # minutes
    assert found["resolution_median"] == pytest.approx(5.0)  # hours


def test_a_period_without_tickets_or_surveys_has_no_rates_rather_than_zero() -> None:
    found = kpis(counts(tickets=0, surveys=0, ever_resolved=0, first_response_due=0))

    assert found["resolution_rate"] is None
    assert found["satisfaction"] is None
    assert found["first_contact_resolution"] is None
    assert found["first_response_sla"] is None


def test_a_rising_rate_that_should_rise_is_better_in_points() -> None:
    c = change("resolution_rate", 92.0, 80.0)

    assert (c.arrow, c.verdict) == ("▲", Verdict.BETTER)
    assert c.delta == pytest.approx(12.0)
    assert render.delta("resolution_rate", c) == "▲ 12.0 pp"


def test_rising_complaints_are_worse_and_shown_with_their_relative_change() -> None:
    c = change("complaints", 12, 8)

    assert (c.arrow, c.verdict) == ("▲", Verdict.WORSE)
    assert render.delta("complaints", c) == "▲ 4 (+50 %)"


def test_a_falling_response_time_is_better() -> None:
    assert change("first_response_median", 20.0, 35.0).verdict is Verdict.BETTER


def test_volume_moves_without_a_verdict_and_no_previous_value_means_no_change() -> None:
    assert change("tickets", 120, 100).verdict is Verdict.UNKNOWN
    assert change("satisfaction", 91.0, None) == change("satisfaction", 91.0, None)
    assert change("satisfaction", 91.0, None).arrow == ""
    assert change("satisfaction", 91.0, 91.0).verdict is Verdict.SAME


def test_targets_from_the_seeds_are_met_or_missed() -> None:
    assert meets_target("satisfaction", 92.5) is True
    assert meets_target("satisfaction", 89.9) is False
    assert meets_target("resolution_rate", 95.0) is True
    assert meets_target("complaints", 3) is None


def test_numbers_carry_their_unit() -> None:
    assert render.number("satisfaction", 92.456) == "92.5 %"
    assert render.number("first_response_median", 31.6) == "32 min"
    assert render.number("resolution_median", 5.04) == "5.0 h"
    assert render.number("csat_overall", 4.3333) == "4.33"
    assert render.number("tickets", None) == "–"


# ---- top problems --------------------------------------------------------------------------


def test_subjects_worded_alike_are_one_problem() -> None:
    assert problem_key("Video keeps buffering!") == problem_key("video keeps BUFFERING")
    assert problem_key("Re: video keeps buffering (CL-000123)") == problem_key(
        "Video keeps buffering"
    )
    assert problem_key("视频播放卡顿!!") == problem_key("视频播放卡顿")
    assert problem_key("Refund request") != problem_key("Video keeps buffering")


def test_top_problems_rank_clusters_and_count_the_previous_period() -> None:
    current = [
        ("视频播放卡顿", "technical"),
        ("视频播放卡顿!", "technical"),
        ("视频播放卡顿", "technical"),
        ("Refund request", "payment_refund"),
        ("refund request", "payment_refund"),
        ("Something else entirely", "other"),
    ]
    previous = [("视频播放卡顿", "technical"), ("Refund request", "payment_refund")] * 2

    found = top_problems(current, previous)

    assert [(p.subject, p.category, p.count, p.previous) for p in found] == [
        ("视频播放卡顿", "technical", 3, 2),
        ("Refund request", "payment_refund", 2, 2),
    ]


# ---- improvement actions -------------------------------------------------------------------


def test_an_action_past_its_deadline_and_not_done_is_overdue() -> None:
    today = date(2026, 12, 1)
    assert overdue("in_progress", date(2026, 11, 30), today)
    assert not overdue("done", date(2026, 11, 30), today)
    assert not overdue("planned", date(2026, 12, 1), today)


def test_an_action_is_measured_against_its_own_target() -> None:
    m = measured("resolution_rate", 80.0, 96.0, 95.0)
    assert (m.change.verdict, m.target_met) == (Verdict.BETTER, True)
    fewer = measured("complaint_rate", 6.0, 5.0, 3.0)
    assert (fewer.change.verdict, fewer.target_met) == (Verdict.BETTER, False)


# ---- charts --------------------------------------------------------------------------------


def test_a_chart_is_an_svg_with_chinese_labels_drawn_from_a_cjk_font() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of each glyph its font lacks
        svg = charts.bars([("微信 WeChat", 12), ("网页 Web", 30)], title="各渠道工单量", name="t")

    assert svg.startswith("<?xml")
    assert "<svg" in svg and svg.rstrip().endswith("</svg>")
    assert "<text" not in svg  # text as paths: no font needed where it is shown


def test_the_volume_chart_has_a_bar_per_step() -> None:
    steps = [datetime(2026, 11, 1) + timedelta(days=i) for i in range(30)]
    svg = charts.volume(
        steps, [5] * 30, [1] * 30, step="day", title="Tickets", legend=("Tickets", "Complaints")
    )

    assert svg.count('id="patch_') >= 30


# ---- facts from events ---------------------------------------------------------------------


def created(**changed: Any) -> TicketCreated:
    at = datetime(2026, 11, 3, 2, tzinfo=UTC)
    fields: dict[str, Any] = dict(
        ticket_id=uuid4(),
        number="CL-000001",
        channel=Channel.WECHAT,
        learner=Learner(name="Lin", email="Lin@Example.com"),
        subject="视频播放卡顿",
        description="一分钟就卡住",
        language="zh",
        created_at=at,
    )
    return TicketCreated(**(fields | changed))


def test_the_learner_is_kept_as_a_hash_of_their_lms_id_else_their_contact() -> None:
    context = LearnerContext(learner_id="L-42", tier="vip", updated_at=datetime.now(UTC))
    by_id = facts.learner_key(created(learner_context=context))
    by_mail = facts.learner_key(created())

    assert by_id is not None and by_mail is not None
    assert by_id != by_mail and "L-42" not in by_id
    assert by_mail == facts.learner_key(
        created(learner=Learner(name="Lin", email="lin@example.com"))
    )
    assert facts.learner_key(created(learner=Learner(name="Anonymous"))) is None


def test_the_course_line_is_the_course_prefix_of_the_ticket_else_the_learner() -> None:
    assert facts.course_line(created(course_id="py-101")) == "PY"
    context = LearnerContext(
        learner_id="L-1",
        courses=(LearnerCourse(course_id="IELTS-7"),),
        updated_at=datetime.now(UTC),
    )
    assert facts.course_line(created(learner_context=context)) == "IELTS"
    assert facts.course_line(created()) is None


async def test_the_reports_handlers_run_after_metrics_own_on_the_same_batch() -> None:
    calls: list[str] = []

    async def metrics_own(conn: Any, events: list[Any]) -> Any:
        calls.append("metrics")
        return lambda: calls.append("metrics after commit")

    joined = facts.with_facts({TicketResolved.TYPE: metrics_own})
    assert set(joined) >= {TicketResolved.TYPE, TicketReopened.TYPE, SurveyAnswered.TYPE}
    assert next(iter(joined)) == TicketResolved.TYPE  # metrics' order kept

    def only_reports(conn: Any, events: list[Any]) -> Any:
        async def handled(conn: Any, events: list[Any]) -> None:
            calls.append("reports")

        return handled(conn, events)

    both = facts.both(metrics_own, only_reports)
    after = await both(None, [])
    assert calls == ["metrics", "reports"]
    assert after is not None
    await after()  # type: ignore[misc]
    assert calls[-1] == "metrics after commit"


# ---- settings ------------------------------------------------------------------------------


def test_settings_name_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELOOP_REPORTS_RECIPIENTS", "boss@example.com, not-an-address")
    with pytest.raises(ValidationError, match="CARELOOP_REPORTS_RECIPIENTS"):
        ReportSettings()
    monkeypatch.setenv("CARELOOP_REPORTS_RECIPIENTS", "boss@example.com, ops@example.com")
    monkeypatch.setenv("CARELOOP_REPORTS_SCHEDULE", "daily,yearly")
    with pytest.raises(ValidationError, match="unknown report kinds: yearly"):
        ReportSettings()
    monkeypatch.setenv("CARELOOP_REPORTS_SCHEDULE", "monthly")
    found = ReportSettings()
    assert found.recipient_list == ["boss@example.com", "ops@example.com"]
    assert found.kinds == [Kind.MONTHLY]


# ---- demo history --------------------------------------------------------------------------


def test_the_demo_history_is_past_ordered_and_the_same_for_a_seed() -> None:
    until = datetime(2026, 11, 30, 4, tzinfo=UTC)
    history = stories(until=until, days=30, per_day=20, seed=3)
    again = stories(until=until, days=30, per_day=20, seed=3)

    assert 400 < len(history) < 800
    assert [s.created.data.subject for s in history] == [s.created.data.subject for s in again]
    for s in history:
        created_at = s.created.data.created_at
        assert s.created.occurred_at == created_at < until
        times = [at for at, _ in s.later]
        assert times == sorted(times) and all(created_at < t < until for t in times)


def test_the_demo_history_improves_over_its_range() -> None:
    until = datetime(2026, 11, 30, 4, tzinfo=UTC)
    history = stories(until=until, days=60, per_day=30, seed=5)
    third = len(history) // 3

    def reopen_share(part: list[Any]) -> float:
        reopened = [s for s in part if any(isinstance(d, TicketReopened) for _, d in s.later)]
        return len(reopened) / len(part)

    assert reopen_share(history[-third:]) < reopen_share(history[:third])
