"""What the hotline, learner API and suggestion box publish, decided without I/O."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.intake.channels.hotline import HotlineCall, call_ticket, first_line
from services.intake.channels.learner_api import (
    ChatMessage,
    NewMessage,
    NewTicket,
    chat_ticket,
    opened_ticket,
    posted_message,
    ticket_ref,
)
from services.intake.channels.partner import partner_ticket
from services.intake.channels.suggestion import (
    Suggestion,
    page_language,
    suggestion_ticket,
)
from services.intake.domain import message_id_for, ticket_id_for
from shared.events import Channel, InboundSubmission
from shared.signing import LearnerClaims

AT = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
CLAIMS = LearnerClaims(
    source="app",
    learner_id="L-1001",
    name="王  芳",
    email="WangFang@Example.com",
    phone="138 0013 8000",
    expires_at=2_000_000_000,
)


def _call(**changes: object) -> HotlineCall:
    return HotlineCall.model_validate(
        {
            "call_id": "CC-20261130-0042",
            "caller_number": "138-0013-8000",
            "agent": "agent-07",
            "started_at": "2026-11-30T11:58:00+08:00",
            "ended_at": "2026-11-30T12:04:30+08:00",
            "ivr_choice": "2-refunds",
            "recording_url": "https://calls.example.com/rec/0042.mp3",
            "summary": "学员要求退还《Python 入门》课程费用\n已告知三个工作日内处理",
            **changes,
        }
    )


def test_a_call_is_a_hotline_ticket_named_by_its_call_id_with_its_metadata() -> None:
    ticket = call_ticket(_call(), source="callcentre", received_at=AT)

    assert ticket.ticket_id == ticket_id_for(
        channel=Channel.HOTLINE, source="callcentre", external_id="CC-20261130-0042"
    )
    assert ticket.channel is Channel.HOTLINE
    assert ticket.learner.phone == "+8613800138000"
    assert ticket.learner.name == "+8613800138000"  # no name given: the number
    assert ticket.subject == "学员要求退还《Python 入门》课程费用"
    assert ticket.language == "zh"
    assert ticket.call is not None
    assert (ticket.call.caller, ticket.call.agent, ticket.call.ivr_choice) == (
        "+8613800138000",
        "agent-07",
        "2-refunds",
    )
    assert ticket.call.ended_at is not None
    assert ticket.call.ended_at - ticket.call.started_at == timedelta(minutes=6, seconds=30)


def test_a_call_about_a_named_ticket_is_a_message_on_it() -> None:
    ticket = call_ticket(_call(ticket_number="CL-000123"), source="callcentre", received_at=AT)
    plain = call_ticket(_call(), source="callcentre", received_at=AT)

    assert ticket.reply_to == "CL-000123"
    assert ticket.message_id == message_id_for(Channel.HOTLINE, "callcentre", "CC-20261130-0042")
    assert (plain.reply_to, plain.message_id) == (None, None)


def test_a_call_keeps_the_summary_and_the_transcript_and_the_callers_name() -> None:
    ticket = call_ticket(
        _call(caller_name="Li Lei", summary="Refund", transcript="Caller: I want my money back"),
        source="callcentre",
        received_at=AT,
    )
    assert ticket.description == "Refund\n\nCaller: I want my money back"
    assert ticket.learner.name == "Li Lei"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"summary": None}, "summary or a transcript"),
        ({"ended_at": "2026-11-30T11:00:00+08:00"}, "before started_at"),
        ({"started_at": "2026-11-30T11:58:00"}, "timezone"),
        ({"caller_number": "call me"}, "pattern"),
        ({"recording_url": "file:///etc/passwd"}, "pattern"),
        ({"summary": "a\x00b"}, "NUL"),
    ],
)
def test_an_incomplete_or_malformed_call_is_refused(
    changes: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        _call(**changes)


def test_a_subject_is_the_first_line_cut_with_an_ellipsis() -> None:
    assert first_line("\n\n  hello   world \nmore", limit=50) == "hello world"
    assert first_line("x" * 60, limit=50) == "x" * 49 + "…"


def test_a_new_app_ticket_is_named_by_the_learners_own_key() -> None:
    body = NewTicket(subject="无法播放视频", description="第三课的视频一直在加载")
    mine = opened_ticket(
        CLAIMS, body, channel=Channel.APP, key="k1", derived_window=None, received_at=AT
    )
    other_learner = CLAIMS.model_copy(update={"learner_id": "L-2002"})
    theirs = opened_ticket(
        other_learner, body, channel=Channel.APP, key="k1", derived_window=None, received_at=AT
    )

    assert mine.ticket_id != theirs.ticket_id
    assert (mine.channel, mine.source, mine.external_id) == (Channel.APP, "app", "k1")
    assert mine.learner.name == "王 芳"
    assert mine.learner.email == "wangfang@example.com"
    assert mine.learner.learner_id == "L-1001"
    assert mine.message_id is None


def test_a_new_app_ticket_without_a_key_is_named_by_its_content_and_window() -> None:
    body = NewTicket(subject="Video", description="Lesson 3 does not play")
    first = opened_ticket(
        CLAIMS, body, channel=Channel.APP, key=None, derived_window=7, received_at=AT
    )
    again = opened_ticket(
        CLAIMS,
        body,
        channel=Channel.APP,
        key=None,
        derived_window=7,
        received_at=AT + timedelta(seconds=5),
    )
    assert first.ticket_id == again.ticket_id


def test_a_message_on_a_ticket_id_continues_that_ticket_with_its_own_message_id() -> None:
    ticket_id = UUID("0193a9a8-0000-7000-8000-000000000001")
    message = posted_message(
        CLAIMS,
        NewMessage(text="还是不行\n截图见附件"),
        ticket=ticket_id,
        channel=Channel.APP,
        native_id="m-1",
        received_at=AT,
    )
    assert message.ticket_id == ticket_id
    assert message.reply_to is None
    assert message.message_id == message_id_for(Channel.APP, "app", "L-1001/m-1")
    assert message.subject == "还是不行"


def test_a_message_on_a_number_names_it_in_reply_to() -> None:
    message = posted_message(
        CLAIMS,
        NewMessage(text="any news?"),
        ticket="CL-000123",
        channel=Channel.APP,
        native_id="m-2",
        received_at=AT,
    )
    assert message.reply_to == "CL-000123"
    assert message.ticket_id.version == 5


@pytest.mark.parametrize("ref", ["CL-12", "cl-000123", "not-a-ticket", "123"])
def test_a_ticket_ref_must_be_an_id_or_a_number(ref: str) -> None:
    with pytest.raises(RequestValidationError):
        ticket_ref(ref)


def test_chat_messages_of_one_conversation_share_the_ticket_and_keep_their_own_ids() -> None:
    chat = CLAIMS.model_copy(update={"source": "chat"})
    sent = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    first, second = (
        chat_ticket(
            chat,
            ChatMessage(conversation_id="conv-9", message_id=m, text="你好", sent_at=sent),
            received_at=sent + timedelta(seconds=1),
        )
        for m in ("msg-1", "msg-2")
    )
    assert (
        first.ticket_id
        == second.ticket_id
        == ticket_id_for(channel=Channel.CHAT, source="chat", external_id="conv-9")
    )
    assert first.message_id != second.message_id
    assert first.submitted_at == sent


def test_a_chat_message_from_a_fast_clock_is_dated_when_it_arrived() -> None:
    message = chat_ticket(
        CLAIMS,
        ChatMessage(
            conversation_id="c", message_id="m", text="hi", sent_at=AT + timedelta(hours=1)
        ),
        received_at=AT,
    )
    assert message.submitted_at == AT


def test_a_partner_call_makes_the_ticket_the_inbound_topic_would() -> None:
    submission = InboundSubmission.model_validate(
        {
            "source": "lms",
            "external_id": "lms-77",
            "name": "Zhang San",
            "phone": "+86 139 0000 0000",
            "subject": "Certificate missing",
            "description": "My certificate did not arrive",
            "channel": "app",
            "received_at": "2026-11-30T09:00:00+08:00",
        }
    )
    ticket = partner_ticket(submission)
    assert ticket.channel is Channel.APP
    assert ticket.learner.email is None
    assert ticket.submitted_at == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def test_an_anonymous_suggestion_has_no_contact_and_an_anonymous_name() -> None:
    zh = suggestion_ticket(Suggestion(text="食堂的饭太咸了"), key=None, window=3, received_at=AT)
    en = suggestion_ticket(
        Suggestion(text="More evening classes"), key=None, window=3, received_at=AT
    )
    assert (zh.learner.name, zh.learner.email, zh.learner.phone) == ("匿名", None, None)
    assert en.learner.name == "anonymous"
    assert zh.channel is Channel.SUGGESTION_BOX


def test_a_suggestion_with_a_contact_is_named_after_it() -> None:
    ticket = suggestion_ticket(
        Suggestion(text="Nice", email="Learner.7@Example.com"),
        key="f1",
        window=None,
        received_at=AT,
    )
    assert ticket.learner.name == "Learner.7"
    assert ticket.learner.email == "learner.7@example.com"


def test_one_suggestion_key_with_other_text_is_another_ticket() -> None:
    one = suggestion_ticket(Suggestion(text="A"), key="k", window=None, received_at=AT)
    other = suggestion_ticket(Suggestion(text="B"), key="k", window=None, received_at=AT)
    again = suggestion_ticket(Suggestion(text="A"), key="k", window=None, received_at=AT)
    assert one.ticket_id != other.ticket_id
    assert one.ticket_id == again.ticket_id


@pytest.mark.parametrize(
    ("lang", "accept", "expected"),
    [
        ("en", "zh-CN", "en"),
        (None, "en-US,en;q=0.9,zh;q=0.8", "en"),
        (None, "fr-FR, zh-TW;q=0.5, en;q=0.4", "zh"),
        (None, "de", "zh"),
        (None, None, "zh"),
        ("xx", "en;q=bogus, en-GB;q=0.3", "en"),
        (None, "en;q=0", "zh"),
    ],
)
def test_the_page_language_follows_lang_then_accept_language(
    lang: str | None, accept: str | None, expected: str
) -> None:
    assert page_language(lang, accept) == expected
