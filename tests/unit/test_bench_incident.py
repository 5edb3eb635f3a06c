"""The incident bench phase's and bulk fault scenarios' pure parts: the learners they make are
what the LMS and desk would publish, how "reached exactly once" is counted, the pace, and the
report's line."""

import uuid
from collections import Counter

import msgspec
import pytest

from bench.incident import CHANNEL_SHARES, DEFAULT_RATES, Reach, reach, snapshot, ticket
from bench.report import incident_section, paced_reach
from chaos.bulk import RELEASE_SECONDS, outcome, paced_rates
from services.incident.domain import learner_key, notice_channel
from shared.events import TicketCreated, decode, decode_snapshot

RUN = "b1a2b3c"
COURSE = f"LIVE-{RUN}"


def test_the_learners_are_valid_snapshots_on_the_three_channels_in_their_shares() -> None:
    channels: Counter[str] = Counter()
    for i in range(100):
        key, value = snapshot(RUN, i, COURSE)
        s = decode_snapshot(value)
        assert key.decode() == s.learner_id
        assert [c.course_id for c in s.courses] == [COURSE]
        contact = msgspec.to_builtins(s)
        channel = notice_channel(
            contact, s.preferred_channel.value if s.preferred_channel else None
        )
        assert channel is not None
        channels[channel] += 1
    assert {c: n / 100 for c, n in channels.items()} == CHANNEL_SHARES


def test_a_learners_ticket_is_desks_ticket_created_for_the_same_learner() -> None:
    _, value = ticket(RUN, 9, COURSE)
    event = decode(value)
    assert isinstance(event.data, TicketCreated)
    assert event.data.course_id == COURSE
    learner = msgspec.to_builtins(event.data.learner)
    assert learner_key(learner) == f"id:{RUN}-000009"
    assert learner["phone"] == "+8613900000009"  # the SMS learner has only a phone
    assert ticket(RUN, 9, COURSE)[0] == event.key.encode()  # keyed by the ticket


def ids(n: int) -> set[uuid.UUID]:
    return {uuid.uuid4() for _ in range(n)}


def test_each_learner_once_is_exactly_once_and_a_relayed_copy_is_only_counted() -> None:
    a, b = ids(1), ids(1)
    copies = Counter({next(iter(a)): 2, next(iter(b)): 1})
    got = reach({"l1", "l2"}, {"l1": a, "l2": b}, copies)
    assert got == Reach(expected=2, reached=2, missing=0, twice=0, strangers=0, resent=1)
    assert got.exactly_once


@pytest.mark.parametrize(
    ("seen", "wrong"),
    [
        ({"l1": ids(1)}, {"missing": 1}),
        ({"l1": ids(1), "l2": ids(2)}, {"twice": 1}),
        ({"l1": ids(1), "l2": ids(1), "l9": ids(1)}, {"strangers": 1}),
    ],
)
def test_a_learner_missed_reached_twice_or_a_stranger_is_not_exactly_once(
    seen: dict[str, set[uuid.UUID]], wrong: dict[str, int]
) -> None:
    copies = Counter(i for got in seen.values() for i in got)
    got = reach({"l1", "l2"}, seen, copies)
    assert not got.exactly_once
    assert {k: getattr(got, k) for k in wrong} == wrong


def test_the_providers_pace_is_set_by_the_slowest_channel() -> None:
    # 70 % at 200/s, 20 % at 100/s, 10 % at 50/s: e-mail ends last, at 0.7 N / 200.
    assert paced_reach(CHANNEL_SHARES, DEFAULT_RATES) == pytest.approx(200 / 0.7)


def test_the_fault_run_paces_any_size_to_the_same_release_time() -> None:
    for n in (2_000, 100_000):
        assert paced_reach(CHANNEL_SHARES, paced_rates(n)) * RELEASE_SECONDS == pytest.approx(n)


def test_the_summary_counts_a_learner_reached_twice_as_duplicated() -> None:
    o = outcome(
        "bulk-notice",
        reached=Reach(expected=10, reached=10, missing=0, twice=1, strangers=0, resent=3),
        accepted=10,
        released=10,
        recovery=0.4,
        notes=[],
    )
    assert (o.lost, o.duplicated, o.resent, o.stalled, o.failed) == (0, 1, 3, 0, True)


def test_the_report_says_whether_each_learner_was_reached_exactly_once() -> None:
    step = {
        "expected": 1000,
        "reached": 1000,
        "missing": 0,
        "twice": 0,
        "strangers": 0,
        "resent": 0,
        "exactly_once": True,
        "accepted": 1000,
        "api_seconds": 0.2,
        "seconds": 0.5,
        "per_second": 2000.0,
        "cpu_ms_per_learner": {"incident": 0.1, "postgres": 0.05},
    }
    text = incident_section(
        {"learners": 1000, "enrol_seconds": 1.0, "link_seconds": 1.0, "notices": step},
        {"relay_2hop": {"per_second": 4000.0}},
        paced=250.0,
    )
    assert (
        "| bulk notice | 1,000 of 1,000 | yes | 0 | 0 | 0 | 0.2 | 0.5 | 2,000 | 8.0 | 0.50 |"
        in text
    )
