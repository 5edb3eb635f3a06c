"""Unit tests for services.notify.domain: message texts, retry backoff and e-mail headers."""

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
from jinja2 import UndefinedError

from services.notify.domain import (
    Rendered,
    confirmation_context,
    duration_text,
    email_message,
    message_id,
    render,
    retry_delay,
)

REPLY_CONTEXT: dict[str, Any] = {
    "number": "CL-000123",
    "name": "Alice",
    "subject": "Video will not play",
    "body": "Please clear your browser cache and try again.",
}


# ---- render -------------------------------------------------------------------------------


def test_render_uses_the_chinese_template_for_zh() -> None:
    rendered = render("reply", "zh", {**REPLY_CONTEXT, "name": "张三", "subject": "视频"})

    assert rendered.subject == "[CL-000123] 回复：视频"
    assert rendered.body.startswith("张三，您好：")


def test_render_uses_the_english_template_for_en() -> None:
    rendered = render("reply", "en", REPLY_CONTEXT)

    assert rendered.subject == "[CL-000123] Re: Video will not play"
    assert rendered.body.startswith("Dear Alice,")


def test_render_falls_back_to_english_for_a_language_without_templates() -> None:
    assert render("reply", "fr", REPLY_CONTEXT) == render("reply", "en", REPLY_CONTEXT)


def test_render_takes_the_subject_from_the_first_line_without_its_prefix() -> None:
    rendered = render("survey", "en", {"number": "CL-000123", "name": "Alice", "survey_url": "u"})

    assert rendered.subject == "[CL-000123] How did we do?"


def test_render_leaves_the_subject_line_out_of_the_body() -> None:
    rendered = render("reply", "en", REPLY_CONTEXT)

    assert "Subject:" not in rendered.body
    assert "Re: Video will not play" not in rendered.body


def test_render_puts_the_context_into_the_body() -> None:
    rendered = render("reply", "en", REPLY_CONTEXT)

    assert "Please clear your browser cache and try again." in rendered.body


def test_render_refuses_a_context_that_lacks_a_variable() -> None:
    context = {k: v for k, v in REPLY_CONTEXT.items() if k != "body"}

    with pytest.raises(UndefinedError):
        render("reply", "en", context)


# ---- duration_text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "language", "text"),
    [
        (30, "en", "30 minutes"),
        (30, "zh", "30 分钟"),
        (119.4, "en", "119 minutes"),
        (120, "en", "2 hours"),
        (240, "zh", "4 小时"),
        (1440, "en", "24 hours"),
        (30, "fr", "30 minutes"),
    ],
)
def test_duration_text_says_minutes_under_two_hours_and_hours_above(
    minutes: float, language: str, text: str
) -> None:
    assert duration_text(minutes, language) == text


def test_confirmation_context_states_the_wait_and_the_due_time() -> None:
    created = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)
    recipient = {
        "created_at": created,
        "first_response_due_at": created + timedelta(minutes=30),
        "language": "zh",
    }

    assert confirmation_context(recipient, fallback_minutes=480) == {
        "first_response": "30 分钟",
        "due": "2024-05-17 09:30",
    }


def test_confirmation_context_promises_the_fallback_when_triage_is_unknown() -> None:
    recipient = {"created_at": None, "first_response_due_at": None, "language": "en"}

    assert confirmation_context(recipient, fallback_minutes=480) == {"first_response": "8 hours"}


def test_a_confirmation_without_triage_still_renders_in_both_languages() -> None:
    context = {"number": "CL-000123", "name": "Li", "subject": "Help", "priority": None}
    en = render("confirmation", "en", {**context, "first_response": "8 hours"})
    zh = render("confirmation", "zh", {**context, "first_response": "8 小时"})

    assert "within 8 hours." in en.body and "Priority" not in en.body
    assert "8 小时 内首次回复" in zh.body and "优先级" not in zh.body


# ---- retry_delay --------------------------------------------------------------------------


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 2), (2, 4), (3, 8), (9, 512)])
def test_retry_delay_doubles_with_each_attempt(attempts: int, seconds: int) -> None:
    assert retry_delay(attempts) == timedelta(seconds=seconds)


@pytest.mark.parametrize("attempts", [10, 11, 50])
def test_retry_delay_is_capped_at_ten_minutes(attempts: int) -> None:
    assert retry_delay(attempts) == timedelta(seconds=600)


# ---- message_id ---------------------------------------------------------------------------


def test_message_id_is_the_same_for_the_same_delivery() -> None:
    key = "reply:0190a3b2-7c1d-7e2f-8a3b-1234567890ab"

    assert message_id(key) == message_id(key)


def test_message_id_differs_between_deliveries() -> None:
    assert message_id("reply:0190a3b2-7c1d-7e2f-8a3b-1234567890ab") != message_id(
        "reply:0190a3b2-7c1d-7e2f-8a3b-1234567890ac"
    )


def test_message_id_replaces_characters_outside_letters_digits_dots_and_dashes() -> None:
    assert message_id("confirm_request:a b/c<d>@e") == "<confirm.request.a.b.c.d..e@careloop>"


def test_message_id_keeps_letters_digits_dots_and_dashes() -> None:
    assert (
        message_id("reply:0190a3b2-7c1d-7e2f-8a3b-1234567890ab")
        == "<reply.0190a3b2-7c1d-7e2f-8a3b-1234567890ab@careloop>"
    )


# ---- email_message ------------------------------------------------------------------------


def _message() -> Any:
    """What a receiving mail system reads from the bytes notify sends."""
    wire = email_message(
        sender="support@careloop.example",
        to="alice@example.com",
        rendered=Rendered(subject="[CL-000123] 回复：视频", body="张三，您好：\n\n请清除缓存。\n"),
        delivery_key="reply:42",
        number="CL-000123",
        kind="reply",
    )
    return message_from_bytes(wire, policy=policy.default)


def test_email_message_addresses_the_learner_from_the_sender() -> None:
    message = _message()

    assert (message["From"], message["To"]) == ("support@careloop.example", "alice@example.com")


def test_email_message_carries_the_rendered_subject_and_body() -> None:
    message = _message()

    assert message["Subject"] == "[CL-000123] 回复：视频"
    assert message.get_content() == "张三，您好：\n\n请清除缓存。\n"


def test_email_message_sets_a_stable_message_id() -> None:
    assert _message()["Message-ID"] == "<reply.42@careloop>"


def test_email_message_tags_the_ticket_number_and_kind() -> None:
    message = _message()

    assert (message["X-Careloop-Ticket"], message["X-Careloop-Kind"]) == ("CL-000123", "reply")


def test_email_message_is_plain_text_utf8() -> None:
    message = _message()

    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"


def test_email_message_body_travels_as_readable_8bit_utf8() -> None:
    wire = email_message(
        sender="support@careloop.example",
        to="alice@example.com",
        rendered=Rendered(subject="s", body="请确认：http://x/confirm/abc\n"),
        delivery_key="k",
        number="CL-000123",
        kind="confirm_request",
    )
    assert b"Content-Transfer-Encoding: 8bit" in wire
    assert "请确认：http://x/confirm/abc".encode() in wire
