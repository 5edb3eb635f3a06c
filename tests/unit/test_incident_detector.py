"""The early warning's statistics on generated traffic: learned from four weeks with a daily
and weekly rhythm, a fifth such week replayed minute by minute raises nothing, and a spike
injected into it is flagged within two minutes; the rates and the naming of the problem."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from services.incident.baseline import BadLine, hourly
from services.incident.detector import (
    Assessment,
    Thresholds,
    assess,
    rate_fires,
    same_hours,
)
from services.incident.naming import name_problem

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOURS_PER_WEEK = 7 * 24
LIMITS = Thresholds()
WEEKS_LEARNED = 4


def rate_per_minute(how: int, level: float) -> float:
    """A learner help desk's rhythm: quiet at night, peaks at 10:00 and 20:00 (evening classes),
    weekends at 70 %; `level` tickets a minute at the evening peak."""
    day, hour = divmod(how, 24)
    daily = 0.05 + 0.6 * np.exp(-((hour - 10) ** 2) / 8) + np.exp(-((hour - 20) ** 2) / 6)
    return float(level * daily * (0.7 if day >= 5 else 1.0))


def minute_counts(rng: np.random.Generator, weeks: int, level: float) -> np.ndarray:
    """Tickets per minute over `weeks`, starting Monday 00:00 local time, each day's level
    drawn ±25 % (some days are busier than others, beyond Poisson noise)."""
    counts: list[int] = []
    for _ in range(weeks * 7):
        busy = rng.uniform(0.75, 1.25)
        day_start = len(counts) // 60 % HOURS_PER_WEEK
        for hour in range(24):
            lam = rate_per_minute(day_start + hour, level) * busy
            counts.extend(rng.poisson(lam, 60))
    return np.asarray(counts)


def replay(history: np.ndarray, week: np.ndarray) -> Iterator[tuple[int, Assessment]]:
    """Each minute of `week` assessed on the last window's count against `history` (whole
    weeks of minutes), as the service assesses each key as tickets arrive."""
    hourly = history.reshape(-1, 60).sum(axis=1).reshape(-1, HOURS_PER_WEEK)
    mean_per_hour = float(hourly.mean())
    cumulative = np.concatenate([[0], np.cumsum(week)])
    for minute in range(LIMITS.window_minutes, len(week) + 1):
        observed = int(cumulative[minute] - cumulative[minute - LIMITS.window_minutes])
        how = (minute - 1) // 60 % HOURS_PER_WEEK
        yield (
            minute,
            assess(
                observed,
                same_hour=[int(c) for c in hourly[:, how]],
                mean_per_hour=mean_per_hour,
                limits=LIMITS,
            ),
        )


@pytest.mark.parametrize(("level", "seed"), [(0.5, 1), (2.0, 2), (8.0, 3)])
def test_a_week_of_normal_traffic_with_a_daily_rhythm_raises_nothing(
    level: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    history = minute_counts(rng, WEEKS_LEARNED, level)
    week = minute_counts(rng, 1, level)
    fired = [minute for minute, a in replay(history, week) if a.fires]
    assert fired == []


@pytest.mark.parametrize(
    ("level", "spike_per_minute", "at_hour"),
    [(0.5, 6, 3), (2.0, 16, 20), (8.0, 30, 10)],  # night, evening peak, morning peak
)
def test_a_spike_injected_into_steady_traffic_is_flagged_within_two_minutes(
    level: float, spike_per_minute: int, at_hour: int
) -> None:
    """A burst of about six times the hour's usual rate (a broken live class), for half an
    hour; a burst half that size takes three to four minutes."""
    rng = np.random.default_rng(7)
    history = minute_counts(rng, WEEKS_LEARNED, level)
    week = minute_counts(rng, 1, level)
    start = (2 * 24 + at_hour) * 60 + 17  # Wednesday
    week[start : start + 30] += spike_per_minute
    fired = [m for m, a in replay(history, week) if a.fires]
    assert fired, "the spike was not flagged"
    assert start < fired[0] <= start + 2  # counted through the spike's second minute
    assert all(start < m <= start + 30 + LIMITS.window_minutes for m in fired)


def test_a_significant_excess_too_small_to_matter_does_not_fire() -> None:
    """At night one ticket a week at this hour: six in five minutes is wildly unlikely under
    the baseline, but six is below the minimum count."""
    a = assess(6, same_hour=[1, 0, 1, 0], mean_per_hour=2.0, limits=LIMITS)
    assert a.p_value < LIMITS.alpha
    assert not a.fires


def test_a_key_never_seen_before_needs_a_real_burst() -> None:
    """A new course has no history: its prior is a ticket an hour, so 12 in five minutes fire
    and 4 do not."""
    assert assess(12, same_hour=[], mean_per_hour=0.0, limits=LIMITS).fires
    assert not assess(4, same_hour=[], mean_per_hour=0.0, limits=LIMITS).fires


def test_the_score_grows_with_the_excess_and_is_bounded() -> None:
    scores = [
        assess(n, same_hour=[60] * 4, mean_per_hour=30.0, limits=LIMITS).score
        for n in (5, 15, 30, 1000)
    ]
    assert scores == sorted(scores)
    assert scores[0] < 1 and scores[-1] == 30.0


def test_no_tickets_is_no_evidence() -> None:
    a = assess(0, same_hour=[0, 0], mean_per_hour=0.0, limits=LIMITS)
    assert (a.p_value, a.score, a.fires) == (1.0, 0.0, False)


def test_the_same_hour_of_past_weeks_is_the_learners_local_hour() -> None:
    monday_0930_shanghai = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    assert same_hours(monday_0930_shanghai, weeks=2, zone=SHANGHAI) == [
        datetime(2026, 11, 23, 1, 0, tzinfo=UTC),
        datetime(2026, 11, 16, 1, 0, tzinfo=UTC),
    ]


def test_a_week_back_across_daylight_saving_time_is_the_same_local_hour() -> None:
    """Berlin moved its clocks back on 25 October 2026: 09:00 local was 07:00 UTC before and
    08:00 UTC after."""
    after = datetime(2026, 10, 26, 8, 0, tzinfo=UTC)
    assert same_hours(after, weeks=1, zone=ZoneInfo("Europe/Berlin")) == [
        datetime(2026, 10, 19, 7, 0, tzinfo=UTC)
    ]


@pytest.mark.parametrize(
    ("part", "total", "fires"),
    [(30, 100, True), (29, 100, False), (5, 10, False), (20, 20, True)],
)
def test_a_rate_fires_at_its_threshold_with_enough_tickets(
    part: int, total: int, fires: bool
) -> None:
    assert rate_fires(part, total, threshold=0.3, min_tickets=20) is fires


def test_the_problem_is_named_by_the_largest_cluster_of_similar_tickets() -> None:
    tickets = [
        ("直播课进不去", "直播间一直黑屏，进不去，显示加载失败"),
        ("直播黑屏", "今晚的直播课黑屏了，只有声音"),
        ("退款", "我想退款，这门课不想上了"),
        ("直播间进不去", "点进直播间就转圈，进不去"),
        ("发票", "发票什么时候开"),
        ("直播课加载失败", "直播课一直加载失败，黑屏"),
    ]
    naming = name_problem([s for s, _ in tickets], [f"{s} {d}" for s, d in tickets])
    assert set(naming.members) == {0, 1, 3, 5}
    assert "直播" in naming.keywords and "黑屏" in naming.keywords
    assert naming.title in {"直播课进不去", "直播黑屏", "直播间进不去", "直播课加载失败"}


def test_english_tickets_are_named_by_their_words() -> None:
    subjects = ["Video won't play", "Refund please", "Video playback error", "video not playing"]
    texts = [
        "The lesson video won't play, spinning forever",
        "I want a refund for my order",
        "Playback error on every lesson video",
        "lesson video not playing at all",
    ]
    naming = name_problem(subjects, [f"{s} {t}" for s, t in zip(subjects, texts, strict=True)])
    assert set(naming.members) == {0, 2, 3}
    assert naming.keywords[0] == "video"


def test_past_tickets_are_counted_per_key_and_hour_before_the_history_held() -> None:
    lines = [
        '{"created_at": "2026-10-05T09:12:00+08:00", "channel": "app", "course_id": "PY101",'
        ' "category": "technical"}',
        '{"created_at": "2026-10-05T09:59:59+08:00", "channel": "app"}',
        "",
        '{"created_at": "2026-11-30T09:00:00+08:00", "channel": "app"}',  # held already
    ]
    counts = hourly(lines, before=datetime(2026, 11, 1, tzinfo=UTC))
    hour = datetime(2026, 10, 5, 1, tzinfo=UTC)
    assert counts == {
        ("channel", "app", hour): 2,
        ("course", "PY101", hour): 1,
        ("category", "technical", hour): 1,
    }


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"created_at": "2026-10-05T09:12:00", "channel": "app"}', "line 1: created_at has no"),
        (
            '{"created_at": "2026-10-05T09:12:00Z", "channel": "fax"}',
            "line 1: Invalid enum value 'fax' - at `$.channel`",
        ),
        ("created_at,channel", "line 1: not JSON"),
    ],
)
def test_a_bad_history_line_is_refused_naming_it(line: str, reason: str) -> None:
    with pytest.raises(BadLine, match=re.escape(reason)):
        hourly([line], before=None)
