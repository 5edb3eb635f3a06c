"""Weibo's private-message push, decided without I/O: signature, parsing, what becomes a ticket."""

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest

from services.intake.channels.wechat import BadPush, Unsupported, ticket_of
from services.intake.channels.weibo import (
    inbound,
    parse,
    passive_reply,
    signature_of,
    verify,
)
from shared.events import Channel, Learner

SECRET = "xyz123xyz"


def _push(**overrides: Any) -> bytes:
    push = {
        "type": "text",
        "receiver_id": 1902538057,
        "sender_id": 2489518277,
        "created_at": "Sun Nov 30 12:09:20 +0800 2026",
        "text": "直播课回放在哪里看？",
        "data": {},
        **overrides,
    }
    return json.dumps(push, ensure_ascii=False).encode()


def test_the_signature_matches_weibos_documented_example() -> None:
    # open.weibo.com "Messages api start": appsecret xyz123xyz, timestamp 1397022061823,
    # nonce 57155157 -> 90e4c22c90a58f26526c2dd5b6c56c8822edeaa1
    assert signature_of(SECRET, "1397022061823", "57155157") == (
        "90e4c22c90a58f26526c2dd5b6c56c8822edeaa1"
    )


def test_a_forged_or_missing_signature_is_refused_with_401() -> None:
    for signature, timestamp in (("0" * 40, "1397022061823"), ("", ""), ("x", "1")):
        with pytest.raises(BadPush) as refused:
            verify(SECRET, signature=signature, timestamp=timestamp, nonce="57155157")
        assert refused.value.status == 401


def test_a_text_message_becomes_a_weibo_ticket_found_by_contact() -> None:
    message = inbound(parse(_push()))
    learner = Learner(name="微博用户", weibo_uid=message.sender)
    ticket = ticket_of(message, learner=learner, received_at=datetime.now(UTC))

    assert ticket.channel == Channel.WEIBO
    assert ticket.learner.weibo_uid == "2489518277"
    assert ticket.description == "直播课回放在哪里看？"
    assert ticket.by_contact is True
    assert message.sent_at == datetime(2026, 11, 30, 4, 9, 20, tzinfo=UTC)


def test_the_same_push_twice_is_one_message_and_another_text_another() -> None:
    first, again = inbound(parse(_push())), inbound(parse(_push()))
    other = inbound(parse(_push(text="还有一个问题")))

    assert first.native_id == again.native_id
    assert other.native_id != first.native_id


def test_an_image_keeps_its_weibo_file_id() -> None:
    message = inbound(parse(_push(type="image", text="", data={"vfid": 821804459})))

    assert message.text == "[图片]"
    assert message.attachments[0].name == "weibo-image-821804459.jpg"


def test_a_position_is_unsupported() -> None:
    with pytest.raises(Unsupported):
        inbound(parse(_push(type="position", data={"longitude": "116.3", "latitude": "39.9"})))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body"),
        (_push(sender_id="2489518277"), "sender_id"),
        (_push(receiver_id=None), "receiver_id"),
        (b"[]", "body"),
    ],
)
def test_a_body_that_is_not_a_weibo_push_names_the_field(body: bytes, reason: str) -> None:
    with pytest.raises(BadPush, match=reason):
        parse(body)


def test_a_bad_created_at_is_a_bad_push() -> None:
    with pytest.raises(BadPush, match="created_at"):
        inbound(parse(_push(created_at="yesterday")))


def test_the_passive_reply_goes_back_to_the_sender_with_url_encoded_json() -> None:
    reply = passive_reply(parse(_push()), "已收到您的消息，工单号 CL-000123。")

    assert reply["receiver_id"] == 2489518277
    assert reply["sender_id"] == 1902538057
    assert json.loads(unquote(reply["data"])) == {"text": "已收到您的消息，工单号 CL-000123。"}
