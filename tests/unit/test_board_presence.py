"""The supervisor board's reading of routing's agent.status, and how often desk tells routing
that an agent is at work, without a stack."""

import json
from datetime import UTC, datetime, timedelta

import msgspec

from services.desk.presence import SEEN_EVERY, Seen
from services.desk.web.live import push_of
from services.desk.web.text import TEXT
from services.desk.web.views import STATUS_STALE_AFTER, Presence, presence_of
from shared.events import AgentStatus, decode, new_event

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def status(**fields: object) -> dict[str, object]:
    """An agent's status columns as the board's query gives them: online, on shift, seen,
    2 of 5 capacity used, announced 10 s ago."""
    return {
        "online": True,
        "available": True,
        "on_shift": True,
        "capacity": 5,
        "used": 2.0,
        "load": 2,
        "last_seen_at": AT - timedelta(minutes=3),
        "status_at": AT - timedelta(seconds=10),
        **fields,
    }


def test_an_online_agent_with_room_is_available_and_one_at_capacity_is_full() -> None:
    assert presence_of(status(), AT) is Presence.AVAILABLE
    assert presence_of(status(used=5.0, load=5), AT) is Presence.FULL
    assert presence_of(status(used=5.5, load=4), AT) is Presence.FULL  # a transfer went over


def test_offline_off_shift_and_lapsed_presence_say_why_the_agent_takes_nothing() -> None:
    assert presence_of(status(online=False, available=False), AT) is Presence.OFFLINE
    assert presence_of(status(on_shift=False, available=False), AT) is Presence.OFF_SHIFT
    # Online and on shift but not seen within routing's presence TTL.
    assert presence_of(status(available=False), AT) is Presence.AWAY


def test_a_status_routing_never_sent_or_stopped_sending_is_unknown() -> None:
    never = {k: None for k in status()}
    assert presence_of(never, AT) is Presence.UNKNOWN
    late = AT - STATUS_STALE_AFTER - timedelta(seconds=1)
    assert presence_of(status(status_at=late), AT) is Presence.UNKNOWN
    assert presence_of(status(status_at=AT - STATUS_STALE_AFTER), AT) is Presence.AVAILABLE


def test_every_presence_has_words_in_both_languages() -> None:
    for lang in ("zh", "en"):
        assert set(TEXT[lang]["board_page"]["states"]) == {p.value for p in Presence}


def test_seen_is_due_once_a_minute_per_agent() -> None:
    seen = Seen()
    assert seen.due("amy", AT)
    seen._last["amy"] = AT  # what note() records when it stages agent.seen
    assert not seen.due("amy", AT + SEEN_EVERY - timedelta(seconds=1))
    assert seen.due("amy", AT + SEEN_EVERY)
    assert seen.due("bob", AT)


def test_agent_status_is_keyed_by_agent_and_ignored_by_the_live_feed() -> None:
    data = AgentStatus(
        agent_id="amy",
        online=True,
        available=True,
        on_shift=True,
        capacity=5,
        used=1.5,
        load=2,
        last_seen_at=AT,
        teams=("general",),
        at=AT,
    )
    event = msgspec.structs.replace(new_event(data, producer="routing"), key="amy")
    raw = event.to_json()
    assert decode(raw).data == data
    assert json.loads(raw)["data"]["ticket_id"] is None
    assert push_of(raw) is None  # about no ticket: no page refresh
