"""Unit tests for where notify answers a ticket (the channel choice) and what an SMS says
within its length limit."""

import uuid
from typing import Any

import pytest

from services.notify.channels import ALL_CHANNELS, ChannelError
from services.notify.channels.sms import segments
from services.notify.domain import Contacts, Undeliverable, choose_channel, sms_text
from services.notify.handlers import contact
from services.notify.http_senders import classify
from shared.events import (
    LOW_PERIODIC_SCORE,
    Channel,
    Learner,
    LearnerContext,
    TicketCreated,
    now,
)

EVERYWHERE = frozenset(ALL_CHANNELS)
MAIL = "li.lei@example.com"
PHONE = "+8613812345678"
OPENID = "oXyZ-openid-123"
UID = "5829371"


@pytest.mark.parametrize(
    ("ticket_channel", "preferred", "contacts", "chosen"),
    [
        # The learner's preference, when careloop can reach them there.
        ("web", "wechat", Contacts(email=MAIL, wechat_openid=OPENID), "wechat"),
        ("email", "hotline", Contacts(email=MAIL, phone=PHONE), "sms"),
        # A preference careloop cannot reach falls back to the ticket's channel.
        ("email", "wechat", Contacts(email=MAIL), "email"),
        # The ticket's channel, when careloop answers on it.
        ("wechat", None, Contacts(wechat_openid=OPENID, email=MAIL), "wechat"),
        ("weibo", None, Contacts(weibo_uid=UID, phone=PHONE), "weibo"),
        ("hotline", None, Contacts(phone=PHONE, email=MAIL), "sms"),
        ("app", None, Contacts(phone=PHONE, email=MAIL), "sms"),
        ("email", None, Contacts(email=MAIL, phone=PHONE), "email"),
        # Channels careloop does not answer on (web, chat, suggestion box): e-mail, else SMS.
        ("web", None, Contacts(email=MAIL, phone=PHONE), "email"),
        ("chat", None, Contacts(email=MAIL), "email"),
        ("suggestion_box", None, Contacts(phone=PHONE), "sms"),
        ("hotline", None, Contacts(email=MAIL), "email"),
        # Only an openid left: still reachable.
        ("chat", None, Contacts(wechat_openid=OPENID), "wechat"),
        # An anonymous suggestion: nobody to answer.
        ("suggestion_box", None, Contacts(), None),
    ],
)
def test_channel_choice(
    ticket_channel: str, preferred: str | None, contacts: Contacts, chosen: str | None
) -> None:
    assert (
        choose_channel(
            ticket_channel=ticket_channel,
            preferred=preferred,
            contacts=contacts,
            available=EVERYWHERE,
        )
        == chosen
    )


def test_a_channel_careloop_does_not_answer_on_is_skipped() -> None:
    chosen = choose_channel(
        ticket_channel="wechat",
        preferred="wechat",
        contacts=Contacts(wechat_openid=OPENID, phone=PHONE),
        available=frozenset({"email", "sms"}),
    )

    assert chosen == "sms"


def test_an_empty_contact_does_not_reach() -> None:
    chosen = choose_channel(
        ticket_channel="email", preferred=None, contacts=Contacts(email=""), available=EVERYWHERE
    )

    assert chosen is None


# ---- SMS ------------------------------------------------------------------------------------

PORTAL = "https://desk.example/t/eyJ0IjoiMDE5MGEzYjIifQ.aBcDeF"


def _reply(body: str, language: str = "zh") -> dict[str, Any]:
    return {
        "number": "CL-000123",
        "name": "李雷",
        "subject": "无法登录",
        "body": body,
        "portal_url": PORTAL,
        "language": language,
    }


def _fits(segments_allowed: int) -> Any:
    return lambda text: segments(text) <= segments_allowed


def test_a_short_sms_goes_whole() -> None:
    text = sms_text("reply", "zh", _reply("请清除缓存后重试。"), fits=_fits(3))

    assert text == f"工单CL-000123回复：请清除缓存后重试。 全文：{PORTAL}"


@pytest.mark.parametrize("allowed", [2, 3, 5])
def test_a_long_chinese_reply_is_cut_to_the_segment_limit_keeping_the_link(allowed: int) -> None:
    body = "您好，我们已经为您重置了密码，请使用新密码登录后尽快修改。" * 20

    text = sms_text("reply", "zh", _reply(body), fits=_fits(allowed))

    assert segments(text) <= allowed
    assert text.endswith(f"… 全文：{PORTAL}")
    assert text.startswith("工单CL-000123回复：您好")


def test_a_long_english_reply_uses_the_room_of_gsm_segments() -> None:
    body = "Please reset your password from the login page and sign in again. " * 10

    text = sms_text("reply", "en", _reply(body, "en"), fits=_fits(2))

    assert segments(text) == 2
    assert len(text) > 2 * 67  # GSM-7: 153 a part, not UCS-2's 67
    assert text.endswith(f"... Full reply: {PORTAL}")


def test_an_sms_that_cannot_fit_even_cut_is_undeliverable() -> None:
    context = {**_reply("x"), "portal_url": "https://desk.example/t/" + "a" * 400}

    with pytest.raises(Undeliverable, match="does not fit"):
        sms_text("reply", "zh", context, fits=_fits(1))


# ---- HTTP senders' failures -------------------------------------------------------------------


def test_a_permanent_channel_error_gives_the_delivery_up() -> None:
    assert classify(ChannelError("45015 out of the 48-hour window", True)).permanent


def test_a_transient_channel_error_is_retried() -> None:
    assert not classify(ChannelError("HTTP 503", False)).permanent


def test_an_undeliverable_address_gives_the_delivery_up() -> None:
    assert classify(Undeliverable("not a phone number")).permanent


def test_an_unforeseen_error_is_retried() -> None:
    assert not classify(RuntimeError("boom")).permanent


# ---- a new ticket's recipient -----------------------------------------------------------------


def _ticket(
    learner: Learner,
    context: LearnerContext | None = None,
    *,
    source: str | None = None,
    subject: str = "视频无法播放",
) -> TicketCreated:
    return TicketCreated(
        ticket_id=uuid.uuid4(),
        number="CL-000123",
        channel=Channel.EMAIL,
        source=source,
        learner=learner,
        subject=subject,
        description="第三章",
        language="zh",
        created_at=now(),
        learner_context=context,
        portal_url="https://desk.example/t/abc",
    )


def test_a_recipient_is_answered_in_the_learners_own_locale_on_the_preferred_channel() -> None:
    context = LearnerContext(
        learner_id="L-1", locale="en", preferred_channel=Channel.WECHAT, updated_at=now()
    )
    ticket = _ticket(Learner(name="Ann", email=MAIL, wechat_openid=OPENID), context)

    recipient = contact(ticket, available=EVERYWHERE)

    assert (recipient.language, recipient.reply_channel) == ("en", "wechat")
    assert (recipient.email, recipient.wechat_openid) == (MAIL, OPENID)
    assert recipient.portal_url == "https://desk.example/t/abc"


def test_without_learner_context_a_recipient_gets_the_tickets_language_and_channel() -> None:
    recipient = contact(_ticket(Learner(name="李雷", email=MAIL)), available=EVERYWHERE)

    assert (recipient.language, recipient.channel, recipient.reply_channel) == (
        "zh",
        "email",
        "email",
    )


def test_a_follow_up_careloop_opened_on_a_low_survey_score_is_named_for_the_learner() -> None:
    """Its subject is the agents' ("定期满意度调查低分（总体 2/5）"); the learner reads what they
    did, in their own language. A ticket the learner wrote keeps their subject."""
    agents_words = "定期满意度调查低分（总体 2/5）"
    zh = _ticket(Learner(name="李雷", email=MAIL), source=LOW_PERIODIC_SCORE, subject=agents_words)
    context = LearnerContext(learner_id="L-1", locale="en", updated_at=now())
    en = _ticket(Learner(name="Ann", email=MAIL), context, source=LOW_PERIODIC_SCORE)

    assert contact(zh, available=EVERYWHERE).subject == "定期满意度调查反馈"
    assert contact(en, available=EVERYWHERE).subject == "Periodic survey feedback"
    assert contact(_ticket(Learner(name="李雷", email=MAIL)), available=EVERYWHERE).subject == (
        "视频无法播放"
    )
