"""E-mail in: real mailers' messages become the submission the learner meant, noise never does."""

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from services.intake.channels.email import (
    MailSettings,
    Noise,
    NoiseKind,
    Problem,
    Refused,
    bounce,
    careloop_ticket_of,
    decode_text,
    html_to_text,
    read,
    reply_address,
    strip_quoted,
)
from services.intake.domain import message_id_for, ticket_id_for
from shared.events import Attachment, Channel, TicketSubmitted

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
LIMIT = 10 * 1024 * 1024
# The ticket the fixtures' replies answer, as careloop's Message-IDs name it.
REPLIED = UUID("7f3c2a1e-5b6d-4c8e-9f01-2a3b4c5d6e7f")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def ticket(raw: bytes, **options: object) -> TicketSubmitted:
    result = read(raw, max_bytes=LIMIT, received_at=AT, **options)  # type: ignore[arg-type]
    assert isinstance(result, TicketSubmitted), result
    return result


def plain_mail(headers: str = "", body: str = "Lesson 4 will not open.", **fields: str) -> bytes:
    values = {
        "From": "Li Lei <li.lei@example.com>",
        "To": "support@careloop.example",
        "Subject": "Lesson 4",
        "Message-ID": "<abc.123@example.com>",
        **fields,
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in values.items() if v)
    return (head + headers + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def test_a_foxmail_reply_in_gbk_declared_gb2312_reads_as_written_without_its_history() -> None:
    submitted = ticket(fixture("foxmail_reply_gbk.eml"))

    assert submitted.channel is Channel.EMAIL
    assert submitted.learner.name == "王喆"  # 喆 is GBK, not GB2312
    assert submitted.learner.email == "wangzhe@qq.com"
    assert submitted.description == (
        "您好，\n\n我按照你们说的清除了缓存，还是登录不了，提示“账号异常”。\n我是王喆，学号 20231187。"
    )
    assert submitted.language == "zh"


def test_a_reply_to_careloop_names_its_ticket_and_number() -> None:
    submitted = ticket(fixture("foxmail_reply_gbk.eml"))

    assert submitted.ticket_id == REPLIED
    assert submitted.reply_to == "CL-000123"
    assert submitted.message_id == message_id_for(
        Channel.EMAIL, None, "tencent_5E2B9A1C44D7F3A8B6E0C9D1@qq.com"
    )


def test_a_new_mail_is_a_ticket_named_by_its_own_message_id() -> None:
    submitted = ticket(fixture("netease_gb2312_qp.eml"))
    native = "3b5c1a7e.6f21.18c2a9d4e1b.Coremail.lina_study@163.com"

    assert submitted.ticket_id == ticket_id_for(
        channel=Channel.EMAIL, source=None, external_id=native
    )
    assert submitted.message_id == message_id_for(Channel.EMAIL, None, native)
    assert submitted.reply_to is None
    assert submitted.subject == "课程视频无法播放"
    assert submitted.learner.name == "李娜"
    assert "《Python 数据分析》第三周的视频一直加载不出来" in submitted.description


def test_the_same_mail_twice_is_the_same_ticket_and_message() -> None:
    first = ticket(fixture("netease_gb2312_qp.eml"))
    again = ticket(fixture("netease_gb2312_qp.eml"))

    assert (again.ticket_id, again.message_id) == (first.ticket_id, first.message_id)


def test_a_mail_without_a_message_id_is_named_by_its_bytes_on_every_read() -> None:
    raw = plain_mail(**{"Message-ID": ""})

    assert ticket(raw).ticket_id == ticket(raw).ticket_id
    assert ticket(raw).ticket_id != ticket(raw + b" more").ticket_id


def test_outlooks_chinese_header_block_ends_the_new_text() -> None:
    submitted = ticket(fixture("outlook_gb18030.eml"))

    assert submitted.description == (
        "你好：\n\n退款申请已经提交一周了，订单号 ORD-88213，请问什么时候能到账？\n\n此致\n赵雪"
    )
    assert submitted.attachments == ()  # the HTML rendering is not an attachment


def test_an_html_only_mail_in_big5_becomes_readable_text_without_scripts_or_styles() -> None:
    submitted = ticket(fixture("big5_html_only.eml"))

    assert submitted.description == (
        "您好：\n\n我想把「資料結構」課程改到週末班，請問還有名額嗎？\n\n謝謝 陳怡君"
    )
    assert submitted.subject == "想改到週末班"


def test_a_gmail_reply_loses_its_wrapped_attribution_and_quoted_lines() -> None:
    submitted = ticket(fixture("gmail_reply_utf8.eml"))

    assert submitted.description == (
        "Thanks, but the certificate still shows my old name (Zhang Wei instead of Wei Zhang)."
        "\nCould you re-issue it?"
    )
    assert submitted.ticket_id == REPLIED
    assert submitted.reply_to == "CL-000124"
    assert submitted.language == "en"


def test_attachments_are_metadata_only_with_their_decoded_size_and_rfc2231_names() -> None:
    submitted = ticket(fixture("apple_mixed_attachments.eml"))

    assert submitted.attachments == (
        Attachment(name="screenshot.png", content_type="image/png", size=8 + 1024),
        Attachment(name="银行回单.pdf", content_type="application/pdf", size=9 + 3000 + 7),
    )
    assert all(a.url is None for a in submitted.attachments)
    assert submitted.subject == "支付失败但扣了款"


def test_outlooks_original_message_separator_ends_the_text_and_control_characters_go() -> None:
    submitted = ticket(fixture("outlook_original_message.eml"))

    assert submitted.description == (
        "I still cannot pick a date for the final exam the calendar is empty."
    )
    assert submitted.learner.name == "Wu, David"


def test_unknown_charsets_are_read_as_well_as_they_can_be_never_a_crash() -> None:
    submitted = ticket(fixture("unknown_charset.eml"))

    assert submitted.description == "I cannot open lesson 4. 第四课打不开。"
    assert "你好" in submitted.subject


@pytest.mark.parametrize(
    ("name", "noise"),
    [
        (
            "auto_reply_out_of_office.eml",
            Noise(NoiseKind.AUTO_REPLY, "Auto-Submitted: auto-replied"),
        ),
        ("bounce_dsn.eml", Noise(NoiseKind.BOUNCE, "Return-Path: <> (a bounce)")),
    ],
)
def test_auto_replies_and_bounces_are_noise(name: str, noise: Noise) -> None:
    assert read(fixture(name), max_bytes=LIMIT, received_at=AT) == noise


@pytest.mark.parametrize(
    "headers",
    [
        "Auto-Submitted: auto-generated\r\n",
        "X-Autoreply: yes\r\n",
        "X-Autorespond: Out of office\r\n",
        "Precedence: bulk\r\n",
        "Precedence: list\r\n",
        "Precedence: auto_reply\r\n",
    ],
)
def test_automatic_mail_headers_make_noise(headers: str) -> None:
    assert isinstance(read(plain_mail(headers), max_bytes=LIMIT, received_at=AT), Noise)


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.com", "postmaster@example.com"])
def test_mail_from_the_mail_system_is_noise(sender: str) -> None:
    assert isinstance(read(plain_mail(From=sender), max_bytes=LIMIT, received_at=AT), Noise)


def test_a_null_envelope_sender_is_a_bounce() -> None:
    result = read(plain_mail(), max_bytes=LIMIT, received_at=AT, envelope_sender="")

    assert result == Noise(NoiseKind.BOUNCE, "null envelope sender (a bounce)")


def test_a_person_saying_auto_submitted_no_and_asking_for_no_auto_responses_is_a_ticket() -> None:
    raw = plain_mail("Auto-Submitted: no\r\nX-Auto-Response-Suppress: All\r\n")

    assert ticket(raw).description == "Lesson 4 will not open."


def test_a_mail_over_the_limit_is_refused_naming_both_sizes() -> None:
    raw = plain_mail(body="x" * 5000)

    with pytest.raises(Refused) as refused:
        read(raw, max_bytes=4096, received_at=AT)

    assert refused.value.problem is Problem.TOO_LARGE
    assert f"{len(raw):,} bytes" in refused.value.reason and "4,096" in refused.value.reason


def test_an_oversized_bounce_is_dropped_not_bounced_back() -> None:
    raw = plain_mail("Auto-Submitted: auto-replied\r\n", body="x" * 5000)

    assert isinstance(read(raw, max_bytes=4096, received_at=AT), Noise)


@pytest.mark.parametrize(
    "sender", ["", "undisclosed-recipients:;", "li.lei@", "Li <not an address>"]
)
def test_a_mail_without_a_valid_from_address_is_refused(sender: str) -> None:
    with pytest.raises(Refused) as refused:
        read(plain_mail(From=sender), max_bytes=LIMIT, received_at=AT)

    assert refused.value.problem is Problem.NO_SENDER


def test_bytes_that_are_no_mail_at_all_are_refused_not_a_crash() -> None:
    with pytest.raises(Refused):
        read(b"\x00\xff\xfe garbage \r\n\r\n\x00", max_bytes=LIMIT, received_at=AT)


def test_an_empty_body_takes_the_subject_and_an_empty_subject_the_first_line() -> None:
    assert ticket(plain_mail(body="")).description == "Lesson 4"
    no_subject = ticket(plain_mail(body="Lesson 4 will not open.\nSince Monday.", Subject=""))
    assert no_subject.subject == "Lesson 4 will not open."


def test_a_mail_with_neither_subject_nor_text_is_refused() -> None:
    with pytest.raises(Refused) as refused:
        read(plain_mail(body="\r\n> only a quote\r\n", Subject=""), max_bytes=LIMIT, received_at=AT)

    assert refused.value.problem is Problem.EMPTY


def test_a_name_with_control_characters_and_a_subject_with_line_breaks_become_one_line() -> None:
    submitted = ticket(
        plain_mail(
            From="=?utf-8?Q?Li=07_Lei?= <li.lei@example.com>", Subject="=?utf-8?Q?Lesson=0A4?="
        )
    )

    assert submitted.learner.name == "Li Lei"
    assert submitted.subject == "Lesson 4"


def test_a_display_name_missing_falls_back_to_the_local_part() -> None:
    assert (
        ticket(plain_mail(From="li.lei@Example.COM")).learner
        == ticket(plain_mail(From="li.lei@example.com")).learner
    )
    assert ticket(plain_mail(From="li.lei@example.com")).learner.name == "li.lei"


@pytest.mark.parametrize(
    ("message_id", "expected"),
    [
        (f"<confirmation.d1.{REPLIED}@careloop>", REPLIED),
        (f"<{REPLIED}@careloop>", REPLIED),
        (f"<confirmation.{REPLIED}.{REPLIED}@careloop>", REPLIED),  # notify's thread root
        (f"reply.r7.{REPLIED}@careloop", REPLIED),
        (f"<confirmation.d1.{REPLIED}@careloop.example>", None),
        (f"<confirmation.d1.{REPLIED}@elsewhere>", None),
        ("<confirmation.d1.not-a-uuid@careloop>", None),
        ("<CAJ8kT3x@mail.gmail.com>", None),
    ],
)
def test_careloop_ticket_of_reads_only_careloop_message_ids(
    message_id: str, expected: UUID | None
) -> None:
    assert careloop_ticket_of(message_id) == expected


def test_a_reply_naming_only_a_foreign_message_id_is_a_new_ticket_with_its_number() -> None:
    raw = plain_mail("In-Reply-To: <CAJ8kT3x@mail.gmail.com>\r\n", Subject="Re: [cl-000777] refund")

    submitted = ticket(raw)

    assert submitted.ticket_id == ticket_id_for(
        channel=Channel.EMAIL, source=None, external_id="abc.123@example.com"
    )
    assert submitted.reply_to == "CL-000777"


@pytest.mark.parametrize(
    "history",
    [
        "在 2026年11月29日 21:12，careloop<support@careloop.example> 写道：",
        "careloop <support@careloop.example> 于2026年11月29日周日 21:12写道：",
        "On Sun, Nov 29, 2026 at 9:12 PM careloop <support@careloop.example> wrote:",
        "-----Original Message-----",
        "------------------ 原始邮件 ------------------",
        "------------------ Original ------------------",
        "-----原始邮件-----",
        "From: careloop\nSent: Sunday, November 29, 2026 9:00 PM",
        "发件人: careloop\n发送时间: 2026年11月29日 21:00",
        "________________________________\nFrom: careloop",
    ],
)
def test_quoted_history_is_cut_where_it_begins(history: str) -> None:
    text = f"Still broken.\n\n{history}\n\nWe received your request."

    assert strip_quoted(text) == "Still broken."


def test_quoted_lines_go_and_the_answers_between_them_stay() -> None:
    text = "> Which lesson?\nLesson 4.\n> Which browser?\nChrome.\n"

    assert strip_quoted(text) == "Lesson 4.\nChrome."


def test_a_line_that_only_mentions_from_is_kept() -> None:
    assert strip_quoted("From: Monday on it fails.\nEvery time.") == (
        "From: Monday on it fails.\nEvery time."
    )


def test_html_to_text_keeps_blocks_and_entities_and_drops_quotes() -> None:
    html = (
        "<p>Hello&nbsp;team,</p><div>line&amp;one<br>line two</div>"
        "<blockquote><p>old</p></blockquote><style>p{}</style><ul><li>a</li><li>b</li></ul>"
    )

    assert html_to_text(html) == "Hello team,\n\nline&one\nline two\n\na\nb"


def test_decode_text_widens_gb2312_and_never_raises() -> None:
    assert decode_text("王喆".encode("gbk"), "gb2312") == "王喆"
    assert decode_text("課程".encode("big5"), "big5") == "課程"
    assert decode_text("课程".encode(), "us-ascii") == "课程"
    assert "\ufffd" in decode_text(b"ok \xff\xfe\xfa", "no-such-charset")


def test_the_gateway_accepts_listed_domains_and_addresses_only() -> None:
    settings = MailSettings(recipients="careloop.example, Help@Other.example")

    assert settings.accepts_recipient("support@careloop.example")
    assert settings.accepts_recipient("help@other.example")
    assert not settings.accepts_recipient("sales@other.example")
    assert not settings.accepts_recipient("someone@elsewhere.example")


def test_a_refusal_goes_to_the_return_path_else_the_from_address() -> None:
    assert reply_address(plain_mail("Return-Path: <Bounces@Example.com>\r\n")) == (
        "bounces@example.com"
    )
    assert reply_address(plain_mail()) == "li.lei@example.com"
    assert reply_address(plain_mail("Return-Path: <>\r\n", From="nobody")) is None


def test_the_bounce_is_an_automatic_reply_saying_why_in_both_languages() -> None:
    raw = fixture("netease_gb2312_qp.eml")
    refused = Refused(Problem.TOO_LARGE, "the message is 20,000 bytes; the limit is 8,192 bytes")

    reply = bounce(
        raw,
        refused,
        to="lina_study@163.com",
        bounce_from="careloop <support@careloop.example>",
        hostname="careloop.test",
    )

    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["To"] == "lina_study@163.com"
    assert reply["In-Reply-To"] == "<3b5c1a7e.6f21.18c2a9d4e1b.Coremail.lina_study@163.com>"
    assert reply["Subject"].endswith("课程视频无法播放")
    text = reply.get_content()
    assert "超过了大小上限" in text and "the limit is 8,192 bytes" in text


def test_a_bounce_to_a_mail_with_an_unknown_charset_subject_still_goes() -> None:
    reply = bounce(
        fixture("unknown_charset.eml"),
        Refused(Problem.MALFORMED, "the message cannot be read"),
        to="sun.li@example.net",
        bounce_from="support@careloop.example",
        hostname="careloop.test",
    )

    assert reply["Subject"].startswith("无法受理您的邮件")


def test_raw_utf8_headers_as_swaks_and_smtputf8_mailers_send_them_are_read_as_text() -> None:
    raw = (
        "From: 李雷 <li.lei@example.com>\r\nTo: support@careloop.example\r\n"
        "Subject: 无法登录课程\r\nMessage-ID: <raw8bit@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n登录后一直转圈。\r\n"
    ).encode()

    submitted = ticket(raw)

    assert (submitted.learner.name, submitted.subject) == ("李雷", "无法登录课程")
    assert submitted.description == "登录后一直转圈。"
