"""desk follows the incident service: a linked ticket notes the incident in its history, and
the incident's resolution resolves each linked ticket once, as the incident's (desk in-process,
the real broker and database)."""

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from services.desk.app import create_app
from services.desk.settings import DeskSettings
from shared import topics
from shared.events import (
    IncidentTicketLinked,
    IncidentTicketResolved,
    IncidentTicketUnlinked,
    new_event,
    now,
)
from shared.settings import CommonSettings
from tests.browser.tickets import Tickets
from tests.integration.inprocess import (
    ANA,
    environment,
    find_event,
    groups_from_now,
    publish,
    served,
    service_env,
)
from tests.support import RunningStack, eventually


@pytest.fixture(scope="module")
async def desk(stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    # Only this module's events: a desk replaying the whole session missed the 30 s waits.
    groups = await groups_from_now(stack.bootstrap, "desk")
    with environment({**service_env(stack), **groups}):
        async with served(lambda: create_app(DeskSettings()), "desk") as client:
            yield client


@pytest.fixture(scope="module")
def tickets(desk: httpx.AsyncClient, settings: CommonSettings, stack: RunningStack) -> Tickets:
    return Tickets(desk=desk, settings=settings, dsn=stack.dsn)


async def timeline_events(desk: httpx.AsyncClient, ticket_id: uuid.UUID) -> list[str]:
    """The kinds of the events in the ticket's timeline, in order."""
    answer = await desk.get(f"/v1/tickets/{ticket_id}/timeline", headers=ANA)
    assert answer.status_code == 200, answer.text
    return [str(i["body"]) for i in answer.json() if i["kind"] == "event"]


async def test_a_linked_ticket_is_resolved_once_by_its_incident_and_says_so(
    desk: httpx.AsyncClient, tickets: Tickets, settings: CommonSettings, stack: RunningStack
) -> None:
    made = await tickets.assigned()
    incident_id = uuid.uuid4()
    linked = new_event(
        IncidentTicketLinked(
            ticket_id=made.ticket_id,
            incident_id=incident_id,
            number="INC-0007",
            title="直播课无法进入",
            status_url="http://127.0.0.1:18088/status/INC-0007",
            linked_at=now(),
        ),
        producer="incident",
    )
    resolved = new_event(
        IncidentTicketResolved(
            ticket_id=made.ticket_id,
            incident_id=incident_id,
            resolution="直播服务已恢复，请重新进入直播间",
            by="sue",
            resolved_at=now(),
        ),
        producer="incident",
    )
    await publish(settings, [linked, resolved])
    await publish(settings, [resolved])  # delivered again: nothing more

    t = await tickets.in_state(made.ticket_id, status="resolved")
    assert t["resolution_code"] == "incident"
    event = await find_event(
        stack.bootstrap,
        topics.TICKETS,
        lambda e: e.type == "ticket.resolved" and e.data.ticket_id == made.ticket_id,
    )
    assert (event.data.resolution_code, event.data.agent_id) == ("incident", "sue")
    assert event.data.resolution == "直播服务已恢复，请重新进入直播间"
    kinds = await timeline_events(desk, made.ticket_id)
    assert kinds.count("resolved") == 1 and "incident_linked" in kinds


async def test_an_unlinked_ticket_notes_it_and_a_closed_one_is_left_alone(
    desk: httpx.AsyncClient, tickets: Tickets, settings: CommonSettings
) -> None:
    made = await tickets.resolved()
    incident_id = uuid.uuid4()
    unlinked = new_event(
        IncidentTicketUnlinked(
            ticket_id=made.ticket_id, incident_id=incident_id, by="ana", unlinked_at=now()
        ),
        producer="incident",
    )
    late = new_event(
        IncidentTicketResolved(
            ticket_id=made.ticket_id,
            incident_id=incident_id,
            resolution="recovered",
            by="sue",
            resolved_at=now(),
        ),
        producer="incident",
    )
    await publish(settings, [unlinked, late])

    async def noted() -> list[str] | None:
        kinds = await timeline_events(desk, made.ticket_id)
        return kinds if "incident_unlinked" in kinds else None

    kinds = await eventually(noted)
    assert kinds.count("resolved") == 1  # the agent's resolution stays the only one
    t = await tickets.ticket(made.ticket_id)
    assert t is not None and t["resolution_code"] != "incident"
