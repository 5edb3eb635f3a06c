"""Unit tests for services.notify.domain: message texts, retry backoff and e-mail headers."""

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any
from uuid import UUID

import pytest
from jinja2 import Environment, PackageLoader, StrictUndefined, UndefinedError

from services.intake.channels.email import careloop_ticket_of
from services.notify.domain import (
    Address,
    Rendered,
    Undeliverable,
    duration_text,
    email_message,
    from_header,
    gives_up,
    message_context,
    message_id,
    one_line,
    recipient_address,
    record_backoff,
    render,
    retry_delay,
    subject_header,
)

NOW = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)
REPLY_CONTEXT: dict[str, Any] = {
    "number": "CL-000123",
    "name": "Alice",
    "subject": "Video will not play",
    "body": "Please clear your browser cache and try again.",
    "portal_url": "",
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
    rendered = render(
        "survey",
        "en",
        {"number": "CL-000123", "name": "Alice", "survey_url": "u", "portal_url": ""},
    )

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
        (1, "en", "1 minute"),
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


def test_a_confirmation_states_the_wait_from_creation_and_the_due_time_in_beijing_time() -> None:
    created = datetime(2024, 5, 17, 9, 0, tzinfo=UTC)
    recipient = {
        "created_at": created,
        "first_response_due_at": created + timedelta(minutes=30),
        "language": "zh",
        "priority": "urgent",
    }

    context = message_context(
        recipient, kind="confirmation", now=created + timedelta(hours=1), fallback_minutes=480
    )

    assert (context["first_response"], context["due"]) == ("30 分钟", "2024年5月17日 17:30")
    assert context["priority"] == "紧急"


def test_a_confirmation_promises_the_fallback_when_triage_is_unknown() -> None:
    recipient = {"created_at": None, "first_response_due_at": None, "language": "en"}

    context = message_context(recipient, kind="confirmation", now=NOW, fallback_minutes=480)

    assert (context["first_response"], context["due"], context["priority"]) == ("8 hours", "", "")


def test_a_progress_message_counts_the_wait_from_now() -> None:
    recipient = {"first_response_due_at": NOW + timedelta(minutes=45), "language": "en"}

    context = message_context(recipient, kind="queued", now=NOW, fallback_minutes=480)

    assert (context["first_response"], context["due"]) == ("45 minutes", "17 May 2024, 17:45")


def test_a_progress_message_past_the_due_time_promises_no_time() -> None:
    recipient = {"first_response_due_at": NOW - timedelta(minutes=5), "language": "zh"}

    context = message_context(recipient, kind="assigned", now=NOW, fallback_minutes=480)

    assert (context["first_response"], context["due"]) == ("", "")


@pytest.mark.parametrize(
    ("language", "words"),
    [("zh", ["紧急", "高", "中", "低"]), ("en", ["urgent", "high", "medium", "low"])],
)
def test_priorities_are_words_of_the_learners_language(language: str, words: list[str]) -> None:
    said = [
        message_context(
            {"priority": p, "language": language}, kind="queued", now=NOW, fallback_minutes=1
        )["priority"]
        for p in ("urgent", "high", "medium", "low")
    ]

    assert said == words


def test_the_agent_is_named_generically_when_one_has_the_ticket() -> None:
    def agent(values: dict[str, Any]) -> str:
        return message_context(
            {"language": "zh", **values}, kind="assigned", now=NOW, fallback_minutes=1
        )["agent"]

    assert (agent({"agent_id": "agent-7"}), agent({"agent_id": None})) == ("客服专员", "")


def test_a_confirmation_without_triage_still_renders_in_both_languages() -> None:
    context = {
        "number": "CL-000123",
        "name": "Li",
        "subject": "Help",
        "priority": None,
        "agent": "",
        "due": "",
        "portal_url": "",
        "articles": "",
        "article": "",
        "incident_url": "",
    }
    en = render("confirmation", "en", {**context, "first_response": "8 hours"})
    zh = render("confirmation", "zh", {**context, "first_response": "8 小时"})

    assert "within 8 hours." in en.body and "Priority" not in en.body
    assert "8 小时内首次回复" in zh.body and "优先级" not in zh.body


# ---- retry_delay --------------------------------------------------------------------------


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 2), (2, 4), (3, 8), (9, 512)])
def test_retry_delay_doubles_with_each_attempt(attempts: int, seconds: int) -> None:
    assert retry_delay(attempts) == timedelta(seconds=seconds)


@pytest.mark.parametrize("attempts", [10, 11, 50])
def test_retry_delay_is_capped_at_ten_minutes(attempts: int) -> None:
    assert retry_delay(attempts) == timedelta(seconds=600)


# ---- message_id ---------------------------------------------------------------------------


TICKET = UUID("0190a3b2-7c1d-7e2f-8a3b-1234567890ab")


def test_message_id_is_the_same_for_the_same_delivery() -> None:
    assert message_id(f"reply:{TICKET}", TICKET) == message_id(f"reply:{TICKET}", TICKET)


def test_message_id_differs_between_deliveries() -> None:
    assert message_id("reply:1", TICKET) != message_id("reply:2", TICKET)


def test_message_id_replaces_characters_outside_letters_digits_dots_and_dashes() -> None:
    assert message_id("confirm_request:a b/c<d>@e", TICKET) == (
        f"<confirm.request.a.b.c.d..e.{TICKET}@careloop>"
    )


def test_message_id_ends_in_the_ticket_id_as_its_last_dot_separated_part() -> None:
    mid = message_id(f"confirmation:{TICKET}", TICKET)

    assert mid == f"<confirmation.{TICKET}.{TICKET}@careloop>"
    assert UUID(mid.removeprefix("<").removesuffix("@careloop>").rsplit(".", 1)[1]) == TICKET


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
    delivery_key: str = "reply:42",
) -> bytes:
    return email_message(
        sender="support@careloop.example",
        reply_to="careloop <help@careloop.example>",
        to=to,
        rendered=Rendered(subject=subject, body=body),
        delivery_key=delivery_key,
        ticket_id=TICKET,
        number="CL-000123",
        kind=delivery_key.partition(":")[0],
    )


def _subject_lines(wire: bytes) -> list[bytes]:
    """The Subject header's lines (RFC 5322 asks for 78 at most; a Message-ID, which cannot
    be folded, may be longer, within the 998 every line must keep)."""
    lines = wire.split(b"\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(b"Subject:"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(b" "))
    return lines[start:end]


def _body_lines(wire: bytes) -> list[bytes]:
    return wire.partition(b"\n\n")[2].split(b"\n")


def test_every_line_of_an_email_message_is_within_what_smtp_allows() -> None:
    assert max(len(line) for line in _wire().split(b"\n")) <= 998


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
    assert _message()["Message-ID"] == f"<reply.42.{TICKET}@careloop>"


def test_email_message_asks_for_replies_at_the_support_address() -> None:
    assert _message()["Reply-To"] == "careloop <help@careloop.example>"


def test_email_message_after_the_confirmation_refers_to_it() -> None:
    message = _message()
    root = f"<confirmation.{TICKET}.{TICKET}@careloop>"

    assert (message["In-Reply-To"], message["References"]) == (root, root)


def test_an_sla_mail_to_an_agent_is_outside_the_learners_thread() -> None:
    message = _message(delivery_key="sla_warning:7")

    assert message["Message-ID"] == f"<sla.warning.7.{TICKET}@agents.careloop>"
    assert careloop_ticket_of(message["Message-ID"]) is None  # a reply does not reach the ticket
    assert (message["Reply-To"], message["In-Reply-To"], message["References"]) == (None,) * 3


def test_the_confirmation_starts_the_thread() -> None:
    message = _message(delivery_key=f"confirmation:{TICKET}")

    assert message["In-Reply-To"] is None and message["References"] is None


def test_email_message_says_it_was_sent_automatically() -> None:
    """RFC 3834: an out-of-office responder does not answer it, so no loop starts."""
    assert _message()["Auto-Submitted"] == "auto-generated"


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
    assert max(len(line) for line in _body_lines(wire)) <= 78


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
    assert max(len(line) for line in _subject_lines(wire)) <= 78


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
_PORTAL = {"portal_url": "https://desk.example/t/{tok}%"}
_PROGRESS = {
    "number": "CL-1",
    "name": "Li",
    "subject": "Help {me}",
    "agent": "one of our agents",
    "first_response": "45 minutes",
    "due": "17 May 2024, 17:45",
    **_PORTAL,
}
_CONTEXTS: dict[str, dict[str, Any]] = {
    "reply": {**REPLY_CONTEXT, "body": "line {one}\n\n{{two}} 100%", **_PORTAL},
    "survey": {"number": "CL-1", "name": "Li {x}", "survey_url": "http://s/{id}", **_PORTAL},
    "confirm_request": {
        "number": "CL-1",
        "name": "Li",
        "resolution": "done\nreally",
        "confirm_url": "http://c/1",
        **_PORTAL,
    },
    "confirmation": {
        **_PROGRESS,
        "priority": "high",
        "articles": "- Refund {time}: https://kb.example/kb/1\n- Invoices: https://kb.example/kb/2",
        "article": "Refund {time} https://kb.example/kb/1",
        "incident_url": "",
    },
    "assigned": _PROGRESS,
    "queued": {**_PROGRESS, "agent": ""},
    "merged": {"number": "CL-1", "name": "Li", "into_number": "CL-2", **_PORTAL},
    "case_outcome": {
        "number": "CL-1",
        "name": "Li",
        "body": "We checked the {recordings}.\nThe teacher was late.",
        "finding_zh": "投诉属实",
        "finding_en": "your complaint is upheld",
        "remedies_zh": "补课 2 节 (PY101)",
        "remedies_en": "2 supplementary lessons (PY101)",
        **_PORTAL,
    },
}
# The learner-facing kinds whose every message links the learner's portal page.
_PORTAL_KINDS = sorted(_CONTEXTS)
_CONTEXTS["incident_notice"] = {
    "number": "CL-1",
    "name": "Li",
    "title": "Video playback {outage}",
    "body": "Videos of PY101 do not play.\nWe are on it: 50% fixed.",
    "status_url": "https://status.example/INC-0007?lang=en",
}


@pytest.mark.parametrize("channel", ["email", "wechat", "sms"])
@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("kind", sorted(_CONTEXTS))
def test_render_says_what_the_jinja_template_says(kind: str, language: str, channel: str) -> None:
    context = _CONTEXTS[kind]
    template_set = {"email": "email", "wechat": "im", "sms": "sms"}[channel]
    text = _JINJA.get_template(f"{template_set}/{kind}.{language}.j2").render(**context)
    if channel == "email":
        head, _, body = text.partition("\n")
        expected = Rendered(subject=one_line(head.removeprefix("Subject: ")), body=body)
    else:
        expected = Rendered(subject="", body=text)

    assert render(kind, language, context, channel=channel) == Rendered(
        subject=expected.subject, body=expected.body.lstrip("\n")
    )


@pytest.mark.parametrize("channel", ["email", "wechat", "weibo", "sms"])
@pytest.mark.parametrize("kind", _PORTAL_KINDS)
def test_every_message_links_the_learner_portal(kind: str, channel: str) -> None:
    if (kind, channel) == ("survey", "sms"):
        pytest.skip("an SMS survey request carries the survey link alone (room for one link)")
    for language in ("en", "zh"):
        assert (
            "https://desk.example/t/{tok}%"
            in render(kind, language, _CONTEXTS[kind], channel=channel).body
        )


@pytest.mark.parametrize("channel", ["email", "wechat", "sms"])
@pytest.mark.parametrize("kind", sorted(_CONTEXTS))
def test_chinese_messages_have_no_english_words(kind: str, channel: str) -> None:
    context = {
        **_CONTEXTS[kind],
        "name": "李雷",
        "subject": "无法登录",
        "body": "请清除缓存",
        "resolution": "已重置",
        "agent": "客服专员",
        "first_response": "45 分钟",
        "due": "2024年5月17日 17:45",
        "priority": "高" if kind == "confirmation" else "",
        "portal_url": "",
        "survey_url": "",
        "confirm_url": "",
        "articles": "",
        "article": "",
        "title": "视频无法播放",
        "status_url": "",
        "remedies_zh": "补课 2 节",
    }
    rendered = render(kind, "zh", context, channel=channel)
    text = re.sub(r"CL-\d+", "", rendered.subject + rendered.body)

    assert not re.search(r"[A-Za-z]", text), text


def test_a_chinese_confirmation_states_priority_agent_and_beijing_time() -> None:
    created = datetime(2026, 11, 30, 6, 5, tzinfo=UTC)
    values = {
        "number": "CL-000123",
        "name": "李雷",
        "subject": "无法登录",
        "language": "zh",
        "created_at": created,
        "priority": "high",
        "first_response_due_at": created + timedelta(hours=2),
        "agent_id": "agent-7",
        "portal_url": "https://desk.example/t/abc",
    }
    context = message_context(values, kind="confirmation", now=created, fallback_minutes=480)

    body = render("confirmation", "zh", context).body

    assert "优先级：高。您的问题已交由客服专员处理" in body
    assert "我们将在 2 小时内（北京时间 2026年11月30日 16:05 之前）首次回复您" in body
    assert "查看进度或补充信息：https://desk.example/t/abc" in body


def test_a_confirmation_offers_knowledges_articles_on_every_channel() -> None:
    created = datetime(2026, 11, 30, 6, 5, tzinfo=UTC)
    values = {
        "number": "CL-000123",
        "name": "李雷",
        "subject": "退款多久到账",
        "language": "zh",
        "created_at": created,
        "priority": "medium",
        "first_response_due_at": created + timedelta(hours=8),
        "agent_id": None,
        "portal_url": "https://desk.example/t/abc",
        "articles": [
            {"title": "退款到账时间\n说明", "url": "https://kb.example/kb/1?lang=zh"},
            {"title": "如何申请发票", "url": "https://kb.example/kb/2?lang=zh"},
        ],
    }
    context = message_context(values, kind="confirmation", now=created, fallback_minutes=480)

    email = render("confirmation", "zh", context).body
    wechat = render("confirmation", "zh", context, channel="wechat").body
    sms = render("confirmation", "zh", context, channel="sms").body

    for body in (email, wechat):
        assert "- 退款到账时间 说明：https://kb.example/kb/1?lang=zh\n" in body
        assert "- 如何申请发票：https://kb.example/kb/2?lang=zh" in body
    assert "或许有帮助：退款到账时间 说明 https://kb.example/kb/1?lang=zh" in sms
    assert "kb/2" not in sms  # an SMS has room for one
    progress = message_context(values, kind="assigned", now=created, fallback_minutes=480)
    assert "kb.example" not in render("assigned", "zh", progress).body


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
    assert max(len(line) for line in _subject_lines(wire)) <= 78
