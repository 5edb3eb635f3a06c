"""The portal's pure parts: language, the form token, reading a posted message, and what of a
ticket's conversation a learner is shown (on the page and through the learner API)."""

import uuid
from datetime import UTC, datetime

import pytest

from services.desk.learner_api import learner_conversation
from services.desk.portal import (
    MAX_BODY,
    TEXT,
    MessageProblem,
    beijing_time,
    choose_language,
    conversation_items,
    form_token,
    message_id_of,
    read_message,
)

AT = datetime(2026, 11, 30, 4, 5, tzinfo=UTC)


def row(kind: str, body: str, **more: object) -> dict[str, object]:
    return {
        "kind": kind,
        "at": AT,
        "author": more.pop("author", "李雷"),
        "channel": more.pop("channel", None),
        "body": body,
        "attachments": more.pop("attachments", []),
        "detail": more.pop("detail", None),
    }


CONVERSATION = [
    row("description", "登录页面一直转圈", channel="email"),
    row("event", "triaged", author="routing", detail={"category": "technical"}),
    row("event", "assigned", author="routing", detail={"agent_id": "ana"}),
    row("reply", "请清除浏览器缓存后再试", author="ana"),
    row(
        "message",
        "还是不行，截图在这里",
        channel="wechat",
        attachments=[
            {"name": "s.png", "content_type": "image/png", "size": 0, "url": "https://x/s.png"}
        ],
    ),
    row("event", "escalated", author="survey", detail={"reason": "low_score"}),
    row("event", "resolved", author="ana", detail={"resolution": "已重置您的账号"}),
]


@pytest.mark.parametrize(
    ("asked", "ticket", "chosen"),
    [
        ("en", "zh", "en"),
        ("zh", "en", "zh"),
        (None, "en", "en"),
        ("fr", "zh", "zh"),
        (None, "x", "zh"),
    ],
)
def test_the_page_speaks_the_asked_language_else_the_tickets(
    asked: str | None, ticket: str, chosen: str
) -> None:
    assert choose_language(asked, ticket) == chosen


def test_both_languages_have_every_text() -> None:
    def keys(d: dict[str, object], prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
        return out

    assert keys(TEXT["zh"]) == keys(TEXT["en"])


def test_the_form_token_is_tied_to_the_link_and_the_secret() -> None:
    a = form_token("secret-1", "link-a")
    assert a == form_token("secret-1", "link-a")
    assert a != form_token("secret-1", "link-b")
    assert a != form_token("secret-2", "link-a")


def test_times_are_shown_in_beijing_time() -> None:
    assert beijing_time(AT) == "2026-11-30 12:05"


def test_a_message_with_a_file_link_reads_as_text_and_attachment_metadata() -> None:
    body, files = read_message(
        {
            "body": "  截图见附件  ",
            "attachment_name": "screen shot.png",
            "attachment_url": "https://files.example.com/a.png",
        }
    )
    assert body == "截图见附件"
    [f] = files
    assert (f.name, f.content_type, f.url) == (
        "screen shot.png",
        "image/png",
        "https://files.example.com/a.png",
    )


def test_line_breaks_from_a_browser_form_are_stored_as_line_feeds() -> None:
    assert read_message({"body": "第一行\r\n第二行\r\n"})[0] == "第一行\n第二行"


def test_a_file_alone_is_a_message_too() -> None:
    body, files = read_message({"attachment_name": "a.pdf", "attachment_url": "http://x/a.pdf"})
    assert body == "" and files[0].content_type == "application/pdf"


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"body": "   "}, "empty"),
        ({"body": "x" * (MAX_BODY + 1)}, "too_long"),
        ({"body": "bad\x00byte"}, "text"),
        ({"body": "hi", "attachment_name": "a.png"}, "attachment_pair"),
        ({"body": "hi", "attachment_url": "https://x/a.png"}, "attachment_pair"),
        ({"attachment_name": "a\nb", "attachment_url": "https://x/a"}, "attachment_name"),
        ({"attachment_name": "a", "attachment_url": "javascript:alert(1)"}, "attachment_url"),
        ({"attachment_name": "a", "attachment_url": "https://x/a b"}, "attachment_url"),
    ],
)
def test_a_message_that_cannot_be_stored_is_refused_with_its_reason(
    form: dict[str, str], problem: str
) -> None:
    with pytest.raises(MessageProblem) as refused:
        read_message(form)
    assert refused.value.key == problem
    assert problem in TEXT["zh"]["errors"] and problem in TEXT["en"]["errors"]


def test_the_same_form_sent_twice_is_one_message() -> None:
    ticket = uuid.uuid4()
    form = {"nonce": uuid.uuid4().hex}
    assert message_id_of(ticket, form) == message_id_of(ticket, form)
    assert message_id_of(ticket, form) != message_id_of(uuid.uuid4(), form)
    assert message_id_of(ticket, {}) != message_id_of(ticket, {})


def test_the_page_shows_messages_replies_and_only_the_events_a_learner_cares_about() -> None:
    items = conversation_items(CONVERSATION, "zh")

    assert [i["kind"] for i in items] == [
        "description",
        "event",
        "reply",
        "message",
        "event",
    ]
    first, assigned, reply, message, resolved = items
    assert (first["who"], first["mine"], first["channel"]) == ("您", True, "邮件")
    assert assigned["text"] == "客服已接手您的问题"
    assert (reply["mine"], reply["who"]) == (False, "客服 · ana")
    assert message["channel"] == "微信" and message["attachments"][0]["name"] == "s.png"
    assert resolved["body"] == "已重置您的账号"
    assert first["when"] == "2026-11-30 12:05"


def test_the_english_page_names_channels_in_english() -> None:
    first = conversation_items(CONVERSATION, "en")[0]
    assert (first["who"], first["channel"]) == ("You", "e-mail")


def test_the_api_conversation_keeps_internal_events_out() -> None:
    items = learner_conversation(CONVERSATION)

    assert [(i.kind, i.author, i.event) for i in items] == [
        ("description", "learner", None),
        ("event", "careloop", "assigned"),
        ("reply", "agent", None),
        ("message", "learner", None),
        ("event", "careloop", "resolved"),
    ]
    assert items[2].agent == "ana" and items[3].attachments[0].url == "https://x/s.png"
    assert items[4].body == "已重置您的账号"
