"""Unit tests for services.notify.domain: message texts, retry backoff and e-mail headers."""

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
from jinja2 import Environment, PackageLoader, StrictUndefined, UndefinedError

from services.notify.domain import (
    Address,
    Rendered,
    Undeliverable,
    confirmation_context,
    duration_text,
    email_message,
    from_header,
    gives_up,
    message_id,
    one_line,
    recipient_address,
    record_backoff,
    render,
    retry_delay,
    subject_header,
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


# ---- gives_up and record_backoff ----------------------------------------------------------


def test_gives_up_at_once_on_a_permanent_failure() -> None:
    assert gives_up(attempts=1, max_attempts=8, permanent=True)


def test_gives_up_on_any_failure_once_the_attempt_limit_is_reached() -> None:
    assert gives_up(attempts=8, max_attempts=8, permanent=False)


def test_retries_a_transient_failure_below_the_attempt_limit() -> None:
    assert not gives_up(attempts=7, max_attempts=8, permanent=False)


@pytest.mark.parametrize(("tries", "seconds"), [(0, 0.2), (1, 0.4), (3, 1.6)])
def test_record_backoff_doubles_from_a_fifth_of_a_second(tries: int, seconds: float) -> None:
    assert record_backoff(tries, cap=5) == pytest.approx(seconds)


@pytest.mark.parametrize("tries", [5, 50, 10_000])
def test_record_backoff_never_exceeds_its_cap(tries: int) -> None:
    assert record_backoff(tries, cap=5) == 5


# ---- one_line and render -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["a\r\nb", "a\nb", "a\rb", "a\u2028b", "a\x85b", "a\x00b", "a\tb", "a\r\n\r\nb"]
)
def test_one_line_turns_every_run_of_breaks_and_controls_into_one_space(text: str) -> None:
    assert one_line(text) == "a b"


def test_one_line_keeps_text_in_any_script() -> None:
    assert one_line("账号被盗了　请帮忙 — ¿qué?") == "账号被盗了　请帮忙 — ¿qué?"


def test_render_keeps_a_crlf_in_the_learners_subject_out_of_the_body() -> None:
    context = {**REPLY_CONTEXT, "subject": "Help\r\nBcc: victim@example.com\r\n\r\nInjected"}
    rendered = render("reply", "en", context)

    assert rendered.subject == "[CL-000123] Re: Help Bcc: victim@example.com Injected"
    assert "Injected" not in rendered.body and rendered.body.startswith("Dear Alice,")


def test_render_makes_the_name_one_line() -> None:
    rendered = render("reply", "en", {**REPLY_CONTEXT, "name": "Alice\nSubject: x"})

    assert rendered.body.startswith("Dear Alice Subject: x,")


def test_render_keeps_the_line_breaks_of_a_reply_body() -> None:
    rendered = render("reply", "en", {**REPLY_CONTEXT, "body": "first\n\nsecond"})

    assert "first\n\nsecond" in rendered.body


# ---- recipient_address ---------------------------------------------------------------------


@pytest.mark.parametrize("smtputf8", [True, False])
def test_recipient_address_takes_a_plain_address_as_it_is(smtputf8: bool) -> None:
    assert recipient_address("Alice.O'Neil+cl@mail.example.com", server_smtputf8=smtputf8) == (
        Address("Alice.O'Neil+cl@mail.example.com", smtputf8=False)
    )


@pytest.mark.parametrize("smtputf8", [True, False])
def test_recipient_address_idna_encodes_a_non_ascii_domain(smtputf8: bool) -> None:
    assert recipient_address("user@bücher.de", server_smtputf8=smtputf8) == Address(
        "user@xn--bcher-kva.de", smtputf8=False
    )


def test_recipient_address_sends_a_non_ascii_local_part_with_smtputf8() -> None:
    assert recipient_address("用户@例子.中国", server_smtputf8=True) == Address(
        "用户@例子.中国", smtputf8=True
    )


def test_recipient_address_refuses_a_non_ascii_local_part_without_smtputf8() -> None:
    with pytest.raises(Undeliverable, match="SMTPUTF8"):
        recipient_address("用户@例子.中国", server_smtputf8=False)


@pytest.mark.parametrize(
    "email", ["a@b.com\r\nRCPT TO:<x@y.com>", "no-at-sign", "a b@c.com", "<a@b.com>"]
)
def test_recipient_address_refuses_what_is_not_an_address(email: str) -> None:
    with pytest.raises(Undeliverable, match="not a deliverable e-mail address"):
        recipient_address(email, server_smtputf8=True)


# ---- from_header ----------------------------------------------------------------------------


def test_from_header_keeps_an_ascii_sender_readable() -> None:
    assert from_header("careloop <support@careloop.example>") == (
        "careloop <support@careloop.example>"
    )


def test_from_header_encodes_a_non_ascii_name_and_drops_line_breaks() -> None:
    header = from_header("客服中心\r\n <support@careloop.example>")

    assert header.isascii() and "\n" not in header and "\r" not in header
    assert header.endswith("<support@careloop.example>")


# ---- email_message ------------------------------------------------------------------------

ALICE = Address("alice@example.com", smtputf8=False)


def _wire(
    *,
    subject: str = "[CL-000123] 回复：视频",
    body: str = "张三，您好：\n\n请清除缓存。\n",
    to: Address = ALICE,
) -> bytes:
    return email_message(
        sender="support@careloop.example",
        to=to,
        rendered=Rendered(subject=subject, body=body),
        delivery_key="reply:42",
        number="CL-000123",
        kind="reply",
    )


def _message(**kwargs: Any) -> Any:
    """What a receiving mail system reads from the bytes notify sends."""
    return message_from_bytes(_wire(**kwargs), policy=policy.default)


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


def test_email_message_sends_a_non_ascii_body_as_base64() -> None:
    assert b"Content-Transfer-Encoding: base64" in _wire()


def test_email_message_keeps_a_short_lined_ascii_body_readable_as_7bit() -> None:
    wire = _wire(body="Please confirm: http://x/confirm/abc\n")

    assert b"Content-Transfer-Encoding: 7bit" in wire
    assert b"Please confirm: http://x/confirm/abc" in wire


def test_email_message_sends_an_ascii_line_longer_than_smtp_allows_as_base64() -> None:
    assert b"Content-Transfer-Encoding: base64" in _wire(body="x" * 999 + "\n")


def test_email_message_has_only_short_ascii_lines_for_a_long_chinese_reply() -> None:
    body = "您好，" + "我们已经为您重置了密码，请重新登录后修改。" * 20  # 340 characters, one line
    wire = _wire(body=body)

    assert wire.isascii()
    assert max(len(line) for line in wire.split(b"\n")) <= 78


def test_email_message_body_decodes_back_to_the_same_text() -> None:
    body = "您好，" + "我们已经为您重置了密码，请重新登录后修改。" * 20 + "\n\n.\n末行"

    assert _message(body=body).get_content() == body


def test_email_message_keeps_a_crlf_in_the_subject_out_of_the_headers_and_body() -> None:
    wire = _wire(subject="Help\r\nBcc: victim@example.com\r\n\r\nInjected")
    message = message_from_bytes(wire, policy=policy.default)

    assert message["Subject"] == "Help Bcc: victim@example.com Injected"
    assert message["Bcc"] is None
    assert "Injected" not in message.get_content()


def test_email_message_encodes_a_long_chinese_subject_in_short_lines() -> None:
    subject = "[CL-000123] 回复：" + "视频播放不了" * 30
    wire = _wire(subject=subject)

    assert message_from_bytes(wire, policy=policy.default)["Subject"] == subject
    assert max(len(line) for line in wire.split(b"\n")) <= 78


def test_email_message_writes_an_smtputf8_recipient_as_raw_utf8() -> None:
    wire = _wire(to=Address("用户@例子.中国", smtputf8=True))

    assert "To: 用户@例子.中国\n".encode() in wire
    assert message_from_bytes(wire, policy=policy.default)["To"] == "用户@例子.中国"


# ---- prepared templates ---------------------------------------------------------------------

_JINJA = Environment(
    loader=PackageLoader("services.notify", "templates"),
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)
_CONTEXTS: dict[str, dict[str, Any]] = {
    "reply": {**REPLY_CONTEXT, "body": "line {one}\n\n{{two}} 100%"},
    "survey": {"number": "CL-1", "name": "Li {x}", "survey_url": "http://s/{id}"},
    "confirm_request": {
        "number": "CL-1",
        "name": "Li",
        "resolution": "done\nreally",
        "confirm_url": "http://c/1",
    },
    "confirmation": {
        "number": "CL-1",
        "name": "Li",
        "subject": "Help {me}",
        "priority": "high",
        "first_response": "30 minutes",
        "due": "2024-05-17 09:30",
    },
}


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("kind", sorted(_CONTEXTS))
def test_render_says_what_the_jinja_template_says(kind: str, language: str) -> None:
    context = _CONTEXTS[kind]
    head, _, body = (
        _JINJA.get_template(f"{kind}.{language}.txt.j2").render(**context).partition("\n")
    )

    assert render(kind, language, context) == Rendered(
        subject=one_line(head.removeprefix("Subject: ")), body=body.lstrip("\n")
    )


def test_render_takes_the_branch_each_message_asks_for() -> None:
    context = {**_CONTEXTS["confirmation"], "first_response": "8 hours"}
    with_triage = render("confirmation", "en", context)
    without = render("confirmation", "en", {**context, "priority": None})

    assert "Priority: high." in with_triage.body
    assert "Priority" not in without.body and "within 8 hours." in without.body
    assert "Priority: high." in render("confirmation", "en", context).body


# ---- subject_header -------------------------------------------------------------------------


def test_subject_header_keeps_a_short_ascii_subject_as_it_is() -> None:
    assert subject_header("[CL-000123] Re: Video will not play") == (
        "[CL-000123] Re: Video will not play"
    )


@pytest.mark.parametrize(
    "subject",
    [
        "[CL-1] =?utf-8?q?looks_encoded?=",
        ("[CL-1] " + "a long English subject " * 5).strip(),
        ("[CL-1] 表情 😀 " * 9).strip(),
    ],
)
def test_subject_header_encodes_what_cannot_go_as_it_is_in_short_lines(subject: str) -> None:
    wire = _wire(subject=subject)

    assert message_from_bytes(wire, policy=policy.default)["Subject"] == subject
    assert max(len(line) for line in wire.split(b"\n")) <= 78
