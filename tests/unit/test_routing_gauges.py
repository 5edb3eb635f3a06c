"""Unit tests for services.routing.gauges: every team and priority is a series, 0 included."""

from services.routing.gauges import Member, agents_online, queue_depths


def test_every_team_and_priority_has_a_depth_zero_unless_tickets_wait() -> None:
    depths = queue_depths(["finance", "tech_support"], {("finance", "high"): 3})

    assert depths[("finance", "high")] == 3
    assert depths[("tech_support", "urgent")] == 0
    assert len(depths) == 2 * 4


def test_a_queue_of_a_team_no_longer_listed_stays_visible() -> None:
    assert queue_depths(["finance"], {("old_team", "low"): 2})[("old_team", "low")] == 2


def test_agents_online_count_available_members_with_capacity_in_each_of_their_teams() -> None:
    members = [
        Member(teams=["finance", "vip_care"], available=True, capacity=4),
        Member(teams=["finance"], available=False, capacity=4),
        Member(teams=["tech_support"], available=True, capacity=0),
    ]

    assert agents_online(["finance", "tech_support", "vip_care", "customer_service"], members) == {
        "finance": 1,
        "tech_support": 0,
        "vip_care": 1,
        "customer_service": 0,
    }
