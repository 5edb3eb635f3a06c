"""Which closed tickets get a call-back, and what a call-back's outcome may say."""

import uuid

import pytest
from pydantic import ValidationError

from services.desk.callbacks import sampled
from services.desk.cases.api import CallbackIn

TICKETS = [uuid.UUID(int=n * 0x9E3779B97F4A7C15 % 2**128) for n in range(1, 20_001)]


def test_the_sample_is_the_same_for_a_ticket_every_time() -> None:
    ticket_id = uuid.UUID("0190f3c4-5a6b-7c8d-9e0f-a1b2c3d4e5f6")
    assert len({sampled(ticket_id, 0.3) for _ in range(5)}) == 1


@pytest.mark.parametrize("rate", [0.05, 0.5])
def test_the_sample_takes_about_its_share_of_tickets(rate: float) -> None:
    share = sum(sampled(t, rate) for t in TICKETS) / len(TICKETS)
    assert abs(share - rate) < 0.01


def test_no_sample_takes_none_and_a_full_one_takes_all() -> None:
    assert not any(sampled(t, 0) for t in TICKETS)
    assert all(sampled(t, 1) for t in TICKETS)


def test_a_larger_sample_keeps_the_tickets_of_a_smaller_one() -> None:
    """Raising the rate adds tickets; it never drops one that was already being called."""
    assert all(sampled(t, 0.2) for t in TICKETS if sampled(t, 0.05))


def test_a_score_comes_only_from_a_learner_reached() -> None:
    with pytest.raises(ValidationError, match="reached"):
        CallbackIn(reached=False, score=3, outcome="无人接听")
    assert CallbackIn(reached=False, outcome="无人接听").score is None
    assert CallbackIn(score=5, outcome="学员很满意").reached


@pytest.mark.parametrize("score", [0, 6])
def test_a_score_is_one_to_five(score: int) -> None:
    with pytest.raises(ValidationError, match="score"):
        CallbackIn(reached=True, score=score, outcome="学员说还可以")
