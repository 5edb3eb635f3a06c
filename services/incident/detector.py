"""The early warning's statistics (R11.1), pure: is this many tickets in the last few minutes
more than the learned baseline for this hour of the week can explain?

The baseline of a key (a category, a course, a channel) is its hourly ticket count at the same
hour of the week in each past week held (zeros included), pooled with a weak prior at the key's
mean over every hour. Under a Gamma prior on the hourly rate, the count expected in a window of
`window_minutes` is negative binomial (Poisson counts whose rate is itself uncertain): a key
with few weeks of history gets a wide predictive and needs a larger excess to fire. A window
fires only when its upper tail probability is below `alpha` AND the count is at least
`min_count` and `min_ratio` times the expected count: a significant but tiny excess (9 tickets
where 4 were expected) is not an incident.
"""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scipy.stats import nbinom

# The anomaly score's ceiling (-log10 of the tail probability): past it, "very sure" is enough.
MAX_SCORE = 30.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a window's count fires (see the module docstring)."""

    window_minutes: int = 5
    alpha: float = 1e-6
    min_count: int = 10
    min_ratio: float = 2.0
    # How many hours of evidence the prior (the key's mean over all hours) is worth.
    prior_hours: float = 1.0


@dataclass(frozen=True, slots=True)
class Assessment:
    observed: int
    expected: float
    p_value: float
    score: float  # -log10(p_value), at most MAX_SCORE: the gauge's value
    fires: bool


def same_hours(hour: datetime, *, weeks: int, zone: ZoneInfo) -> list[datetime]:
    """The start of the same local hour of the week in each of the `weeks` weeks before the
    hour starting at `hour`, in UTC: traffic follows the learners' week, and a week back in
    their calendar is not always 168 hours (daylight saving time)."""
    local = hour.astimezone(zone)
    return [
        (local.replace(tzinfo=None) - timedelta(weeks=k)).replace(tzinfo=zone).astimezone(UTC)
        for k in range(1, weeks + 1)
    ]


def assess(
    observed: int,
    *,
    same_hour: Sequence[int],
    mean_per_hour: float,
    limits: Thresholds,
) -> Assessment:
    """`observed` tickets in the last window against the baseline: `same_hour` is the key's
    count at this hour of the week in each past week held, `mean_per_hour` its mean over all
    hours held (0 for a key never seen)."""
    # The hourly rate's mean: the prior (the key's mean over all hours, worth `prior_hours`,
    # at least a ticket an hour for an unseen key) pooled with each week's count.
    weight = limits.prior_hours + len(same_hour)
    mean = (max(mean_per_hour, 1.0) * limits.prior_hours + sum(same_hour)) / weight
    # Its variance: how uncertain that mean is, plus how much the rate itself differs from
    # week to week beyond Poisson noise (a busy Monday), when the history shows it.
    spread = statistics.variance(same_hour) - mean if len(same_hour) >= 2 else 0.0
    variance = mean / weight + max(spread, 0.0)
    # A Gamma(shape, rate) with that mean and variance; a Poisson count over `share` of an
    # hour at a Gamma rate is negative binomial with n = shape, p = rate / (rate + share).
    shape, rate = mean * mean / variance, mean / variance
    share = limits.window_minutes / 60
    expected = mean * share
    p_value = float(nbinom.sf(observed - 1, shape, rate / (rate + share))) if observed else 1.0
    score = MAX_SCORE if p_value <= 0 else min(MAX_SCORE, -math.log10(p_value))
    fires = (
        p_value < limits.alpha
        and observed >= limits.min_count
        and observed >= limits.min_ratio * expected
    )
    return Assessment(
        observed=observed, expected=expected, p_value=p_value, score=score, fires=fires
    )


def rate_fires(part: int, total: int, *, threshold: float, min_tickets: int) -> bool:
    """A share (complaints, faults) of the recent tickets at or above its threshold, once there
    are enough tickets for a share to mean something."""
    return total >= min_tickets and part >= threshold * total
