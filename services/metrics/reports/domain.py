"""The reports' pure parts: KPIs from counts, what changed since the previous period, the top
problems clustered by subject, and an improvement action's before and after."""

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Better(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"
    NEITHER = "neither"  # volume: more tickets is neither good nor bad by itself


@dataclass(frozen=True, slots=True)
class KpiMeta:
    unit: str  # "%", "min", "h", "n" or "score"
    better: Better
    target: float | None = None  # the seeds' targets: satisfaction > 90 %, resolution 95 %


KPIS: dict[str, KpiMeta] = {
    "tickets": KpiMeta("n", Better.NEITHER),
    "resolution_rate": KpiMeta("%", Better.HIGHER, 95.0),
    "satisfaction": KpiMeta("%", Better.HIGHER, 90.0),
    "csat_overall": KpiMeta("score", Better.HIGHER),
    "first_response_sla": KpiMeta("%", Better.HIGHER),
    "resolution_sla": KpiMeta("%", Better.HIGHER),
    "first_contact_resolution": KpiMeta("%", Better.HIGHER),
    "reopen_rate": KpiMeta("%", Better.LOWER),
    "repeat_rate": KpiMeta("%", Better.LOWER),
    "complaints": KpiMeta("n", Better.LOWER),
    "complaint_rate": KpiMeta("%", Better.LOWER),
    "first_response_median": KpiMeta("min", Better.LOWER),
    "first_response_p90": KpiMeta("min", Better.LOWER),
    "resolution_median": KpiMeta("h", Better.LOWER),
    "resolution_p90": KpiMeta("h", Better.LOWER),
    "open_at_end": KpiMeta("n", Better.LOWER),
    "surveys": KpiMeta("n", Better.NEITHER),
}
# What an improvement action may target: the report's KPIs whose direction is known.
TARGETABLE = tuple(k for k, m in KPIS.items() if m.better is not Better.NEITHER)
# Repeat problems down 30 % (seed 004 §三.3): the share a period's repeat rate should reach
# of the previous period's.
REPEAT_REDUCTION = 0.30


def share(part: float, whole: float) -> float | None:
    """`part` of `whole` in percent; None when there is nothing to divide."""
    return 100.0 * part / whole if whole else None


@dataclass(frozen=True, slots=True)
class Counts:
    """What the SQL counts over one period (see repo.period_counts)."""

    tickets: int
    complaints: int
    resolved: int  # resolved or closed now, not reopened since
    ever_resolved: int
    resolved_first_time: int  # resolved and never reopened
    reopened: int
    first_response_met: int
    first_response_due: int  # answered, or due and not answered
    resolution_met: int
    resolution_due: int
    repeats: int
    open_at_end: int
    first_response_median_s: float | None
    first_response_p90_s: float | None
    resolution_median_s: float | None
    resolution_p90_s: float | None
    surveys: int
    satisfied: int  # overall score 4 or 5
    overall_avg: float | None


def kpis(c: Counts) -> dict[str, float | None]:
    """Every KPI of `KPIS` from one period's counts."""

    def minutes(s: float | None) -> float | None:
        return None if s is None else s / 60

    def hours(s: float | None) -> float | None:
        return None if s is None else s / 3600

    return {
        "tickets": c.tickets,
        "resolution_rate": share(c.resolved, c.tickets),
        "satisfaction": share(c.satisfied, c.surveys),
        "csat_overall": c.overall_avg,
        "first_response_sla": share(c.first_response_met, c.first_response_due),
        "resolution_sla": share(c.resolution_met, c.resolution_due),
        "first_contact_resolution": share(c.resolved_first_time, c.ever_resolved),
        "reopen_rate": share(c.reopened, c.ever_resolved),
        "repeat_rate": share(c.repeats, c.tickets),
        "complaints": c.complaints,
        "complaint_rate": share(c.complaints, c.tickets),
        "first_response_median": minutes(c.first_response_median_s),
        "first_response_p90": minutes(c.first_response_p90_s),
        "resolution_median": hours(c.resolution_median_s),
        "resolution_p90": hours(c.resolution_p90_s),
        "open_at_end": c.open_at_end,
        "surveys": c.surveys,
    }


class Verdict(StrEnum):
    BETTER = "better"
    WORSE = "worse"
    SAME = "same"
    UNKNOWN = "unknown"  # a value is missing, or the direction means nothing


@dataclass(frozen=True, slots=True)
class Change:
    value: float | None
    previous: float | None
    delta: float | None  # percentage points for a percentage
    relative: float | None  # the change as a share of the previous value, in percent
    arrow: str
    verdict: Verdict


def change(key: str, value: float | None, previous: float | None) -> Change:
    """How `key` moved from `previous` to `value`, and whether that is good."""
    if value is None or previous is None:
        return Change(value, previous, None, None, "", Verdict.UNKNOWN)
    delta = value - previous
    relative = 100.0 * delta / previous if previous else None
    if abs(delta) < 1e-9:
        return Change(value, previous, 0.0, 0.0 if previous else None, "→", Verdict.SAME)
    arrow = "▲" if delta > 0 else "▼"
    better = KPIS[key].better
    if better is Better.NEITHER:
        return Change(value, previous, delta, relative, arrow, Verdict.UNKNOWN)
    good = (delta > 0) == (better is Better.HIGHER)
    return Change(
        value, previous, delta, relative, arrow, Verdict.BETTER if good else Verdict.WORSE
    )


def changes(
    current: Mapping[str, float | None], previous: Mapping[str, float | None]
) -> dict[str, Change]:
    return {k: change(k, current.get(k), previous.get(k)) for k in KPIS}


def meets_target(key: str, value: float | None) -> bool | None:
    """Whether `value` reaches the KPI's fixed target; None without a target or a value."""
    target = KPIS[key].target
    if target is None or value is None:
        return None
    return value >= target if KPIS[key].better is Better.HIGHER else value <= target


# ---- top problems --------------------------------------------------------------------------

_TICKET_REF = re.compile(r"\b(?:cl|order|no)[-#:]?\s*\d+\b|\[cl-\d+\]", re.IGNORECASE)
_NOISE = re.compile(r"[\W\d_]+", re.UNICODE)
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "can",
        "cannot",
        "could",
        "do",
        "does",
        "for",
        "from",
        "i",
        "in",
        "is",
        "it",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "please",
        "the",
        "to",
        "was",
        "what",
        "when",
        "why",
        "with",
        "you",
        "your",
        "re",
        "fw",
        "fwd",
        "help",
        "urgent",
    ]
)
_CJK = re.compile(r"[\u3400-\u9fff]")


def problem_key(subject: str) -> str:
    """A subject reduced to what two people describing the same problem share: NFKC, case,
    ticket and order numbers, digits, punctuation and filler words gone; English words
    sorted (word order varies), Chinese kept as written (it has no spaces to split on)."""
    text = unicodedata.normalize("NFKC", subject).lower()
    text = _TICKET_REF.sub(" ", text)
    words = [w for w in _NOISE.sub(" ", text).split() if w not in _STOPWORDS]
    if any(_CJK.search(w) for w in words):
        return "".join(words)
    return " ".join(sorted(set(words)))


@dataclass(frozen=True, slots=True)
class Problem:
    subject: str  # the most frequent wording of the cluster
    category: str  # its most frequent category
    count: int
    previous: int  # the same cluster in the previous period


def top_problems(
    current: Iterable[tuple[str, str]], previous: Iterable[tuple[str, str]], *, limit: int = 10
) -> list[Problem]:
    """The most frequent problems of (subject, category) pairs, clustered by `problem_key`,
    with their count in the previous period; clusters of one ticket are not problems."""
    wording: dict[str, Counter[str]] = {}
    category: dict[str, Counter[str]] = {}
    for subject, cat in current:
        key = problem_key(subject)
        if key:
            wording.setdefault(key, Counter())[subject.strip()] += 1
            category.setdefault(key, Counter())[cat or "other"] += 1
    before = Counter(k for k in (problem_key(s) for s, _ in previous) if k)
    ranked = sorted(wording, key=lambda k: (-sum(wording[k].values()), k))
    return [
        Problem(
            subject=wording[k].most_common(1)[0][0],
            category=category[k].most_common(1)[0][0],
            count=sum(wording[k].values()),
            previous=before[k],
        )
        for k in ranked
        if sum(wording[k].values()) > 1
    ][:limit]


# ---- improvement actions -------------------------------------------------------------------


class ActionStatus(StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


FINISHED = frozenset({ActionStatus.DONE, ActionStatus.CANCELLED})


def overdue(status: str, deadline: date, today: date) -> bool:
    """An action not finished by its deadline."""
    return status not in FINISHED and deadline < today


@dataclass(frozen=True, slots=True)
class Measured:
    before: float | None
    after: float | None
    change: Change
    target_met: bool | None  # the action's own target value, when it has one


def measured(
    metric: str, before: float | None, after: float | None, target_value: float | None
) -> Measured:
    """An action's KPI before it started and since, and whether it reached its target."""
    met: bool | None = None
    if target_value is not None and after is not None:
        higher = KPIS[metric].better is Better.HIGHER
        met = after >= target_value if higher else after <= target_value
    return Measured(before, after, change(metric, after, before), met)
