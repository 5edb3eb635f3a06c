"""Unit tests for services.routing.domain: what a reconciliation fixes, what an escalation moves."""

from services.routing.domain import drift, held_by_ordinary_agents, over_capacity
from shared.agents import Role

A, B = ("t1", "ana"), ("t2", "ben")


def test_a_committed_assignment_redis_lost_is_restored_at_once() -> None:
    found = drift(counted=[], indexed={}, claims={}, committed=[A], suspects={}, rebuild=False)

    assert found.restore == [A] and found.free == []


def test_a_slot_redis_counts_but_does_not_index_is_restored() -> None:
    found = drift(counted=[A], indexed={}, claims={}, committed=[A], suspects={}, rebuild=False)

    assert found.restore == [A]


def test_a_slot_held_without_an_assignment_is_only_suspected_the_first_time() -> None:
    found = drift(
        counted=[B],
        indexed={"t2": "ben"},
        claims={"t2": 3},
        committed=[],
        suspects={},
        rebuild=False,
    )

    assert found.free == [] and found.suspects == {B: 3}


def test_a_slot_held_without_an_assignment_twice_with_the_same_claim_is_freed() -> None:
    found = drift(
        counted=[B],
        indexed={"t2": "ben"},
        claims={"t2": 3},
        committed=[],
        suspects={B: 3},
        rebuild=False,
    )

    assert found.free == [B] and found.suspects == {}


def test_a_slot_claimed_again_since_the_last_look_is_not_freed() -> None:
    found = drift(
        counted=[B],
        indexed={"t2": "ben"},
        claims={"t2": 4},
        committed=[],
        suspects={B: 3},
        rebuild=False,
    )

    assert found.free == [] and found.suspects == {B: 4}


def test_a_rebuild_frees_every_slot_postgres_does_not_hold_at_once() -> None:
    found = drift(
        counted=[B],
        indexed={"t2": "ben"},
        claims={"t2": 1},
        committed=[A],
        suspects={},
        rebuild=True,
    )

    assert found.free == [B] and found.restore == [A]


def test_a_ticket_indexed_under_another_agent_is_restored_to_the_committed_one() -> None:
    found = drift(
        counted=[("t1", "ben")],
        indexed={"t1": "ben"},
        claims={"t1": 1},
        committed=[A],
        suspects={},
        rebuild=False,
    )

    assert found.restore == [A] and found.suspects == {("t1", "ben"): 1}


def test_agreeing_redis_and_postgres_need_no_correction() -> None:
    found = drift(
        counted=[A],
        indexed={"t1": "ana"},
        claims={"t1": 1},
        committed=[A],
        suspects={},
        rebuild=False,
    )

    assert (found.free, found.restore, found.suspects) == ([], [], {})


def test_over_capacity_names_only_agents_above_their_capacity() -> None:
    committed = [("t1", "ana"), ("t2", "ana"), ("t3", "ben")]

    assert over_capacity(committed, {"ana": 1, "ben": 1}) == {"ana": 2}


def test_an_escalation_moves_only_tickets_held_by_ordinary_or_unknown_agents() -> None:
    held = {"t1": "ana", "t2": "sue", "t3": "gone"}
    roles = {"ana": Role.AGENT, "sue": Role.SUPERVISOR}

    assert held_by_ordinary_agents(held, roles) == ["t1", "t3"]


def test_over_capacity_weighs_each_ticket_by_its_channel() -> None:
    committed = [("t1", "ana"), ("t2", "ana"), ("t3", "ana"), ("t4", "ben"), ("t5", "ben")]
    weights = {"t1": 500, "t2": 500, "t3": 1000, "t4": 1000, "t5": 1000}

    assert over_capacity(committed, {"ana": 2, "ben": 2}, weights) == {}
    assert over_capacity(committed, {"ana": 1, "ben": 2}, weights) == {"ana": 3}
