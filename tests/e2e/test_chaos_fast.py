"""The fault suite's cheap scenarios, through the same code as `bin/careloop chaos`, against the
end-to-end platform: poison on the inbound topic and hostile HTTP lose and repeat nothing."""

from chaos.scenarios import SCENARIOS, run_scenario
from chaos.target import Target, read_agents
from tests.e2e.conftest import AGENTS, Platform

TICKETS = 40


def target(platform: Platform) -> Target:
    return Target(
        platform.stack,
        platform.services,
        {name: platform.url(name) for name in platform.services},
        read_agents(AGENTS),
    )


async def test_poison_on_the_inbound_topic_neither_loses_nor_repeats_a_submission(
    platform: Platform,
) -> None:
    o = await run_scenario(target(platform), SCENARIOS["poison"], tickets=TICKETS, grace_seconds=7)
    assert o.accepted >= TICKETS // 2  # every Kafka one; the platform may rate-limit the web
    assert (o.lost, o.duplicated, o.stalled, o.unconfirmed) == (0, 0, 0, 0), o.notes


async def test_hostile_http_neither_loses_nor_repeats_a_submission(platform: Platform) -> None:
    o = await run_scenario(
        target(platform), SCENARIOS["fuzz-http"], tickets=TICKETS, grace_seconds=7
    )
    assert o.accepted >= TICKETS
    assert (o.lost, o.duplicated, o.stalled, o.unconfirmed) == (0, 0, 0, 0), o.notes
