"""metrics' business series from real events: resolutions by team and agent, resolution-SLA
breaches, first-contact closings, per-agent survey scores, and the overdue and backlog-age
gauges, as /metrics shows them.

The events go through the real broker to metrics' own handlers in its real schema, on a topic
of the test's own; each test names a team and an agent of its own, so its series are its own.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.metrics.handlers import refresh_once
from shared.events import (
    Category,
    Channel,
    CloseReason,
    Envelope,
    Learner,
    Priority,
    ReopenReason,
    SlaBreached,
    SlaTarget,
    SurveyAnswered,
    TicketClosed,
    TicketCreated,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    TicketRouted,
    new_event,
    now,
)
from shared.settings import CommonSettings
from tests.integration.metrics_feed import Publish, metrics_database, metrics_feed
from tests.support import RunningStack


@pytest.fixture
async def metrics_pool(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    async with metrics_database(stack) as pool:
        yield pool


@pytest.fixture
async def deliver(settings: CommonSettings, metrics_pool: asyncpg.Pool) -> AsyncIterator[Publish]:
    async with metrics_feed(settings, metrics_pool) as publish:
        yield publish


def exported() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample /metrics shows, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        for s in family.samples
    }


def value(name: str, **labels: str) -> float:
    return exported().get((name, frozenset(labels.items())), 0)


class Ticket:
    """One ticket of a team and an agent of the test's own, its events made in order."""

    def __init__(self, team: str, agent: str, *, age: timedelta = timedelta(0)) -> None:
        self.id = uuid.uuid4()
        self.team = team
        self.agent = agent
        self.at = now() - age

    def _event(self, data: Any, producer: str = "desk") -> Envelope[Any]:
        return new_event(data, producer=producer)

    def created(self) -> Envelope[Any]:
        return self._event(
            TicketCreated(
                ticket_id=self.id,
                number="CL-1",
                channel=Channel.WEB,
                learner=Learner(name="Lin", email="lin@example.com"),
                subject="Video freezes",
                description="It stops after a minute",
                language="en",
                created_at=self.at,
            )
        )

    def routed(self, *, resolution_due_at: datetime | None = None) -> Envelope[Any]:
        return self._event(
            TicketRouted(
                ticket_id=self.id,
                channel=Channel.WEB,
                category=Category.TECHNICAL,
                priority=Priority.HIGH,
                team=self.team,
                language="en",
                first_response_due_at=self.at + timedelta(hours=2),
                resolution_due_at=resolution_due_at or self.at + timedelta(days=1),
                agent_id=self.agent,
                routed_at=now(),
            ),
            "routing",
        )

    def resolved(self) -> Envelope[Any]:
        return self._event(
            TicketResolved(
                ticket_id=self.id,
                number="CL-1",
                agent_id=self.agent,
                resolution="Cleared the player's cache",
                confirm_url="https://example.com/confirm",
                created_at=self.at,
                resolved_at=now(),
            )
        )

    def reopened(self) -> Envelope[Any]:
        return self._event(
            TicketReopened(
                ticket_id=self.id,
                number="CL-1",
                reason=ReopenReason.NOT_SOLVED,
                previous_agent_id=self.agent,
                needs_supervisor=False,
                reopened_at=now(),
            )
        )

    def closed(self) -> Envelope[Any]:
        return self._event(
            TicketClosed(
                ticket_id=self.id,
                number="CL-1",
                reason=CloseReason.CONFIRMED,
                created_at=self.at,
                closed_at=now(),
            )
        )

    def replied(self, after: timedelta) -> Envelope[Any]:
        return self._event(
            TicketReplied(
                ticket_id=self.id,
                number="CL-1",
                reply_id=uuid.uuid4(),
                agent_id=self.agent,
                body="Please clear the player's cache",
                first_response=True,
                created_at=self.at,
                replied_at=self.at + after,
            )
        )

    def breached(self, target: SlaTarget = SlaTarget.RESOLUTION, level: int = 1) -> Envelope[Any]:
        return self._event(
            SlaBreached(
                ticket_id=self.id,
                target=target,
                level=level,
                due_at=now(),
                priority=Priority.HIGH,
                team=self.team,
                breached_at=now(),
            ),
            "routing",
        )

    def answered(self, overall: int, attitude: int) -> Envelope[Any]:
        return self._event(
            SurveyAnswered(
                survey_id=uuid.uuid4(),
                ticket_id=self.id,
                overall=overall,
                response_speed=5,
                problem_solving=4,
                attitude=attitude,
                answered_at=now(),
            ),
            "survey",
        )


def names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"team_{suffix}", f"agent-{suffix}"


async def test_resolutions_count_by_team_and_agent_and_a_breach_since_the_last_opening(
    deliver: Publish,
) -> None:
    team, agent = names()
    ticket = Ticket(team, agent)
    breaches = value("careloop_sla_resolution_breaches_total", priority="high")
    resolved = {"category": "technical", "priority": "high", "team": team}

    await deliver([ticket.created(), ticket.routed()])
    await deliver([ticket.breached()])  # late, then reopened: the clock starts afresh
    await deliver([ticket.resolved()])
    await deliver([ticket.reopened()])
    await deliver([ticket.resolved()])
    assert value("careloop_tickets_resolved_total", **resolved) == 2
    assert value("careloop_agent_tickets_resolved_total", agent=agent, team=team) == 2
    assert value("careloop_sla_resolution_breaches_total", priority="high") == breaches + 1

    await deliver([ticket.reopened()])
    breach = ticket.breached()
    await deliver([breach, ticket.breached(SlaTarget.FIRST_RESPONSE), ticket.breached(level=2)])
    await deliver([breach])  # a redelivery
    await deliver([ticket.resolved()])
    assert value("careloop_tickets_resolved_total", **resolved) == 3
    assert value("careloop_sla_resolution_breaches_total", priority="high") == breaches + 2


async def test_a_first_response_is_observed_once_under_its_priority_whichever_topic_comes_first(
    deliver: Publish,
) -> None:
    team, agent = names()
    early, late = Ticket(team, agent), Ticket(team, agent)

    def histogram() -> tuple[float, float, float]:
        return (
            value("careloop_ticket_first_response_seconds_count", priority="high"),
            value("careloop_ticket_first_response_seconds_sum", priority="high"),
            value("careloop_ticket_first_response_seconds_count", priority="unknown"),
        )

    count, total, unknown = histogram()
    # desk's topic ran ahead: the reply comes before routing's triage
    reply = early.replied(timedelta(seconds=90))
    await deliver([early.created(), reply])
    assert histogram() == (count, total, unknown)  # no priority yet: kept, not guessed
    await deliver([early.routed()])
    assert histogram() == (count + 1, total + 90, unknown)
    await deliver([reply, early.routed()])  # redelivered: observed once
    assert histogram() == (count + 1, total + 90, unknown)

    await deliver([late.created(), late.routed()])
    await deliver([late.replied(timedelta(seconds=30))])
    assert histogram() == (count + 2, total + 120, unknown)


async def test_a_ticket_closed_without_reopening_is_a_first_contact_resolution(
    deliver: Publish,
) -> None:
    team, agent = names()
    once, twice = Ticket(team, agent), Ticket(team, agent)
    first = {"category": "technical", "first_contact": "true"}
    later = {"category": "technical", "first_contact": "false"}
    before = value("careloop_tickets_closed_by_category_total", **first)
    before_later = value("careloop_tickets_closed_by_category_total", **later)

    await deliver([once.created(), once.routed(), twice.created(), twice.routed()])
    await deliver([once.resolved(), twice.resolved()])
    await deliver([twice.reopened()])
    await deliver([twice.resolved()])
    await deliver([once.closed(), twice.closed()])

    assert value("careloop_tickets_closed_by_category_total", **first) == before + 1
    assert value("careloop_tickets_closed_by_category_total", **later) == before_later + 1


async def test_survey_scores_count_for_the_agent_who_resolved_the_ticket(
    deliver: Publish,
) -> None:
    team, agent = names()
    ticket = Ticket(team, agent)

    await deliver([ticket.created(), ticket.routed()])
    await deliver([ticket.resolved()])
    await deliver([ticket.answered(overall=2, attitude=5), ticket.answered(overall=5, attitude=5)])

    def score(suffix: str, dimension: str, **le: str) -> float:
        return value(
            f"careloop_agent_survey_score_{suffix}", agent=agent, dimension=dimension, **le
        )

    assert score("count", "overall") == 2
    assert score("sum", "overall") == 7
    assert score("bucket", "overall", le="3.0") == 1
    assert score("bucket", "attitude", le="3.0") == 0


async def test_overdue_and_backlog_age_gauges_read_the_view(
    deliver: Publish, metrics_pool: asyncpg.Pool
) -> None:
    team, agent = names()
    late = Ticket(team, agent, age=timedelta(hours=3))
    async with metrics_pool.acquire() as conn:
        await refresh_once(conn)
    overdue = value("careloop_tickets_resolution_overdue", priority="high")

    await deliver([late.created(), late.routed(resolution_due_at=now() - timedelta(hours=1))])
    async with metrics_pool.acquire() as conn:
        await refresh_once(conn)

    assert value("careloop_tickets_resolution_overdue", priority="high") == overdue + 1
    oldest = value("careloop_backlog_oldest_seconds", team=team)
    assert 3 * 3600 <= oldest < 3 * 3600 + 120

    await deliver([late.resolved()])
    async with metrics_pool.acquire() as conn:
        await refresh_once(conn)
    assert value("careloop_tickets_resolution_overdue", priority="high") == overdue
    assert ("careloop_backlog_oldest_seconds", frozenset({("team", team)})) not in exported()
