"""The workspace's decisions without a browser: views per role, SLA countdowns, how the
conversation reads to an agent, and whom a live event is for."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from services.desk.web.live import Push, Who, concerns, push_of
from services.desk.web.text import TEXT, language_of
from services.desk.web.views import (
    DueState,
    View,
    conversation,
    countdown,
    event_text,
    next_due,
    views_for,
)
from shared.agents import Role

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TICKET = uuid.UUID("0190f1e2-7a1b-7c3d-8e4f-5a6b7c8d9e0f")


def open_ticket(**fields: object) -> dict[str, object]:
    return {
        "status": "assigned",
        "first_responded_at": None,
        "first_response_due_at": AT + timedelta(hours=4),
        "resolution_due_at": AT + timedelta(hours=48),
    } | fields


def test_supervisors_have_the_all_view_and_agents_do_not() -> None:
    assert View.ALL in views_for(Role.SUPERVISOR)
    assert View.ALL in views_for(Role.ADMIN)
    assert views_for(Role.AGENT) == (View.MINE, View.TEAM, View.REVIEW, View.RISK)


def test_the_first_response_is_due_until_answered_then_the_resolution() -> None:
    due = next_due(open_ticket(), AT)
    assert due is not None and due.target == "first_response" and due.state is DueState.OK
    assert due.seconds_left == 4 * 3600

    answered = next_due(open_ticket(first_responded_at=AT), AT)
    assert answered is not None and answered.target == "resolution"


def test_a_target_within_the_hour_is_soon_past_it_breached_and_pending_paused() -> None:
    soon = next_due(open_ticket(first_response_due_at=AT + timedelta(minutes=59)), AT)
    late = next_due(open_ticket(first_response_due_at=AT - timedelta(minutes=5)), AT)
    paused = next_due(open_ticket(status="pending_learner"), AT)
    assert soon is not None and soon.state is DueState.SOON
    assert late is not None and late.state is DueState.BREACHED and late.seconds_left == -300
    assert paused is not None and paused.state is DueState.PAUSED


def test_a_resolved_or_untriaged_ticket_has_nothing_due() -> None:
    assert next_due(open_ticket(status="resolved"), AT) is None
    assert next_due(open_ticket(first_response_due_at=None, resolution_due_at=None), AT) is None


def test_countdowns_read_short_and_signed() -> None:
    assert countdown(2 * 86_400 + 3 * 3600 + 5) == "2d 3h"
    assert countdown(3 * 3600 + 5 * 60) == "3h 05m"
    assert countdown(12 * 60 + 30) == "12m"
    assert countdown(45) == "45s"
    assert countdown(-(90 * 60)) == "-1h 30m"


def test_the_conversation_is_in_time_order_without_events_that_repeat_a_message() -> None:
    rows = [
        {"kind": "reply", "at": AT + timedelta(minutes=5), "body": "请清除缓存", "author": "Ana"},
        {
            "kind": "description",
            "at": AT,
            "body": "<b>视频</b>打不开",
            "author": "李雷",
            "channel": "email",
            "detail": {"attachments": [{"name": "录屏.mp4", "url": "https://pan.example.com/1"}]},
        },
        {"kind": "event", "at": AT + timedelta(minutes=1), "body": "note_added", "detail": {}},
        {
            "kind": "event",
            "at": AT + timedelta(minutes=1),
            "body": "assigned",
            "detail": {"agent_id": "ana"},
        },
        {"kind": "note", "at": AT + timedelta(minutes=6), "body": "@cai 看一下", "author": "Ana"},
    ]
    items = conversation(rows)
    assert [i.kind for i in items] == ["description", "event", "reply", "note"]
    assert items[0].body == "<b>视频</b>打不开"  # text: the template escapes it
    assert items[0].attachments[0]["name"] == "录屏.mp4"
    assert event_text(items[1], TEXT["zh"]) == "已分配给 ana"


def test_a_retriage_reads_with_its_new_category_and_priority_in_the_users_language() -> None:
    [item] = conversation(
        [
            {
                "kind": "event",
                "at": AT,
                "body": "retriaged",
                "detail": {
                    "from": {"category": "technical", "priority": "low"},
                    "to": {"category": "payment_refund", "priority": "high"},
                },
            }
        ]
    )
    assert event_text(item, TEXT["en"]) == "Changed to Payment & refund / High"
    assert event_text(item, TEXT["zh"]) == "分类修改为 支付退款 / 高"


def test_both_languages_have_every_label() -> None:
    def keys(d: dict[str, object], prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, f"{prefix}{k}.")
        return out

    assert keys(TEXT["zh"]) == keys(TEXT["en"])
    assert language_of("en") == "en" and language_of("fr") == "zh" and language_of(None) == "zh"


def event(kind: str, **data: object) -> bytes:
    return json.dumps(
        {"type": kind, "version": 1, "data": {"ticket_id": str(TICKET)} | data}
    ).encode()


def test_an_assignment_is_addressed_to_the_agent_and_waits_for_desk_to_show_it() -> None:
    made = push_of(event("ticket.routed", agent_id="ana", team="tech_support"))
    assert made is not None
    push, agent, team = made
    assert push.kind == "assigned" and push.direct == {"ana"}
    assert (agent, team) == ("ana", "tech_support")


def test_sla_warnings_go_to_the_assignee_and_the_recipients_and_mentions_to_the_mentioned() -> None:
    made = push_of(
        event("sla.warning", assignee_id="ana", recipients=[{"agent_id": "sue", "role": "x"}])
    )
    assert made is not None and made[0].direct == {"ana", "sue"} and made[0].kind == "sla"
    noted = push_of(event("ticket.note_added", agent_id="ana", mentions=[{"agent_id": "cai"}]))
    assert noted is not None and noted[0].direct == {"cai"} and noted[0].kind == "mention"


def test_events_about_no_ticket_or_not_json_make_no_push() -> None:
    assert push_of(b'{"type": "person.changed", "data": {"agent_id": "ana"}}') is None
    assert push_of(b"not json") is None


def test_a_push_reaches_whoever_may_see_the_ticket() -> None:
    push = Push(
        ticket_id=TICKET, kind="changed", direct=frozenset(), team="finance", assignee_id="chen"
    )
    assert concerns(push, Who("chen", Role.AGENT, ("finance",)))
    assert concerns(push, Who("dana", Role.AGENT, ("finance", "course_ops")))
    assert concerns(push, Who("sam", Role.SUPERVISOR, ()))
    assert not concerns(push, Who("ana", Role.AGENT, ("tech_support",)))
    mention = Push(ticket_id=TICKET, kind="mention", direct=frozenset({"ana"}), team="finance")
    assert concerns(mention, Who("ana", Role.AGENT, ("tech_support",)))
