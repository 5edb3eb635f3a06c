"""The early warning's statistics (R11.1), pure: is this many tickets in the last few minutes
more than the learned baseline for this hour of the week can explain?

The baseline of a key (a category, a course, a channel) is its hourly ticket count at the same
hour of the week in each past week held (zeros included), pooled with a weak prior. Under a
Gamma prior on the hourly rate, the count expected in a window of `window_minutes` is negative
binomial (Poisson counts whose rate is itself uncertain): a key with few weeks of history gets a
wide predictive and needs a larger excess to fire. A window fires only when its upper tail
probability is below `alpha / keys` AND the count is at least `min_count` and `min_ratio` times
the expected count: a significant but tiny excess (9 tickets where 4 were expected) is not an
incident.

Three guards against false alarms, each against a failure seen on generated normal weeks with a
daily rhythm, looked at every 10 seconds (audit of issue 10: 3 of 10 normal weeks alarmed with 4
weeks learned, and the daily peaks fired all through the first week after deployment):

- Learning: a key fires only once `learning_weeks` of the same hour are held (counted or
  imported with `python -m services.incident.baseline`). With none, the prior (a ticket an hour)
  makes every evening peak a burst; with one, the week-to-week spread cannot be estimated at all.
- A floor under the spread: the hourly rate varies from week to week by at least `dispersion`
  of itself (a busy Monday, the peak rising within the hour, a mean learned from two or three
  weeks), whatever the few weeks held happen to show. Two weeks alike are not proof that the
  third will be, and a sample variance of two or four counts is often far too small.
- Multiplicity: `alpha` is the chance of a false alarm per look across every key tested in it
  (Bonferroni: each of `keys` keys is tested at `alpha / keys`), so adding courses does not add
  alarms. Two consecutive windows was the other choice: at a 10-second cadence consecutive
  windows share nearly all their tickets, so asking for two adds seconds to a real alarm and
  removes almost none of the false ones, which come from the baseline being wrong for a while,
  not from one unlucky window.

The prior (the key's mean over all hours, worth `prior_hours`) only ever raises the expectation:
it gives a quiet or unseen hour some room, and is never allowed to pull a busy hour's mean down
towards the day's average (with two weeks held it took a third off every peak).
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
    alpha: float = 1e-5
    min_count: int = 10
    min_ratio: float = 2.0
    # How many hours of evidence the prior (the key's mean over all hours) is worth.
    prior_hours: float = 1.0
    # Weeks of the same hour held before a key may fire.
    learning_weeks: int = 2
    # The least relative spread of the hourly rate from week to week (coefficient of variation).
    dispersion: float = 0.2


@dataclass(frozen=True, slots=True)
class Assessment:
    observed: int
    expected: float
    p_value: float
    score: float  # -log10(p_value), at most MAX_SCORE: the gauge's value
    fires: bool
    learning: bool  # too few weeks held: never fires, whatever the count


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
    keys: int = 1,
) -> Assessment:
    """`observed` tickets in the last window against the baseline: `same_hour` is the key's
    count at this hour of the week in each past week held, `mean_per_hour` its mean over all
    hours held (0 for a key never seen), `keys` how many keys this look tests."""
    # The hourly rate's mean: each week's count pooled with the prior, worth `prior_hours`, at
    # the key's mean over all hours (at least a ticket an hour for an unseen key) or at this
    # hour's own mean when that is higher.
    own = statistics.fmean(same_hour) if same_hour else 0.0
    prior = max(mean_per_hour, own, 1.0)
    weight = limits.prior_hours + len(same_hour)
    mean = (prior * limits.prior_hours + sum(same_hour)) / weight
    # Its variance: how uncertain that mean is, plus how much the rate itself differs from
    # week to week beyond Poisson noise: what the history shows, but never less than the floor.
    spread = statistics.variance(same_hour) - mean if len(same_hour) >= 2 else 0.0
    variance = mean / weight + max(spread, (limits.dispersion * mean) ** 2)
    # A Gamma(shape, rate) with that mean and variance; a Poisson count over `share` of an
    # hour at a Gamma rate is negative binomial with n = shape, p = rate / (rate + share).
    shape, rate = mean * mean / variance, mean / variance
    share = limits.window_minutes / 60
    expected = mean * share
    p_value = float(nbinom.sf(observed - 1, shape, rate / (rate + share))) if observed else 1.0
    score = MAX_SCORE if p_value <= 0 else min(MAX_SCORE, -math.log10(p_value))
    learning = len(same_hour) < limits.learning_weeks
    fires = (
        not learning
        and p_value < limits.alpha / keys
        and observed >= limits.min_count
        and observed >= limits.min_ratio * expected
    )
    return Assessment(
        observed=observed,
        expected=expected,
        p_value=p_value,
        score=score,
        fires=fires,
        learning=learning,
    )


def rate_fires(part: int, total: int, *, threshold: float, min_tickets: int) -> bool:
    """A share (complaints, faults) of the recent tickets at or above its threshold, once there
    are enough tickets for a share to mean something."""
    return total >= min_tickets and part >= threshold * total
