"""WeChat's message push, decided without I/O: signatures, both modes, what becomes a ticket."""

import hashlib
from datetime import UTC, datetime

import pytest
import xmltodict
from fastapi import FastAPI
from fastapi.testclient import TestClient
from wechatpy.crypto import WeChatCrypto

from services.intake.channels.wechat import (
    DEMO_TOKEN,
    BadPush,
    Unsupported,
    WeChatSettings,
    _opened,
    acknowledgement,
    inbound,
    parse,
    refusal,
    routes,
    ticket_of,
)
from services.intake.settings import IntakeSettings
from shared.events import Channel, Learner
from shared.service import new_context

TOKEN = "careloop-test-token"
AES_KEY = "Y2FyZWxvb3AtbG9jYWwtd2VjaGF0LWFlcy1rZXktMzI"
APP_ID = "wx5823bf96d3bd56c7"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
ACCOUNT = "gh_3c884a361561"


def _xml(msg_type: str, body: str, *, msg_id: str = "6054768590064713728") -> bytes:
    return (
        "<xml>"
        f"<ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
        "<CreateTime>1764481200</CreateTime>"
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>"
        f"{body}"
        f"<MsgId>{msg_id}</MsgId>"
        "</xml>"
    ).encode()


def _signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _opened_plain(body: bytes, signature: str) -> bytes:
    return _opened(
        body,
        crypto=None,
        token=TOKEN,
        encrypt_type="raw",
        signature=signature,
        msg_signature="",
        timestamp="1764481200",
        nonce="381746372",
    )


def _learner() -> Learner:
    return Learner(name="微信用户", wechat_openid=OPENID)


def test_a_text_message_becomes_a_wechat_ticket_found_by_contact() -> None:
    message = inbound(
        parse(_xml("text", "<Content><![CDATA[课程视频打不开，一直转圈]]></Content>"))
    )
    ticket = ticket_of(message, learner=_learner(), received_at=datetime.now(UTC))

    assert ticket.channel == Channel.WECHAT
    assert ticket.description == "课程视频打不开，一直转圈"
    assert ticket.subject == "课程视频打不开，一直转圈"
    assert ticket.learner.wechat_openid == OPENID
    assert ticket.by_contact is True
    assert ticket.language == "zh"
    assert ticket.external_id == "6054768590064713728"


def test_the_same_msg_id_names_the_same_ticket_and_message() -> None:
    xml = _xml("text", "<Content><![CDATA[还在吗]]></Content>")
    first = ticket_of(inbound(parse(xml)), learner=_learner(), received_at=datetime.now(UTC))
    retry = ticket_of(inbound(parse(xml)), learner=_learner(), received_at=datetime.now(UTC))
    other = ticket_of(
        inbound(parse(_xml("text", "<Content>还在吗</Content>", msg_id="6054768590064713729"))),
        learner=_learner(),
        received_at=datetime.now(UTC),
    )

    assert (retry.ticket_id, retry.message_id) == (first.ticket_id, first.message_id)
    assert other.ticket_id != first.ticket_id
    assert other.message_id != first.message_id


def test_a_voice_message_keeps_wechats_recognition_text() -> None:
    xml = _xml(
        "voice",
        "<MediaId><![CDATA[media_id_123]]></MediaId><Format><![CDATA[amr]]></Format>"
        "<Recognition><![CDATA[我想退课]]></Recognition>",
    )
    message = inbound(parse(xml))

    assert message.text == "我想退课"
    assert message.attachments[0].content_type == "audio/amr"
    assert message.attachments[0].url is None


def test_an_image_message_keeps_the_picture_url_as_an_attachment() -> None:
    xml = _xml(
        "image",
        "<PicUrl><![CDATA[https://mmbiz.qpic.cn/mmbiz_jpg/abc/0]]></PicUrl>"
        "<MediaId><![CDATA[media_id_456]]></MediaId>",
    )
    message = inbound(parse(xml))

    assert message.text == "[图片]"
    assert message.attachments[0].url == "https://mmbiz.qpic.cn/mmbiz_jpg/abc/0"


def test_a_location_is_unsupported_and_the_learner_is_told_what_works() -> None:
    xml = _xml(
        "location",
        "<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y>"
        "<Scale>20</Scale><Label><![CDATA[位置信息]]></Label>",
    )
    with pytest.raises(Unsupported) as refused:
        inbound(parse(xml))

    assert "文字" in refusal(str(refused.value))


def test_c1_control_characters_are_refused_with_a_reply_not_stored() -> None:
    with pytest.raises(Unsupported, match="control character"):
        inbound(parse(_xml("text", "<Content>退款\u0085问题</Content>")))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<xml><ToUserName>gh_1</ToUserName", "well-formed"),
        (b"<root><MsgType>text</MsgType></root>", "<xml> root"),
        (b"", "empty"),
        ("<xml>中文</xml>".encode("gbk"), "not UTF-8"),
        (_xml("text", "<Content>hi</Content>").replace(b"1764481200", b"soon"), "CreateTime"),
    ],
)
def test_a_body_that_is_not_a_wechat_message_is_a_bad_push(body: bytes, reason: str) -> None:
    with pytest.raises(BadPush, match=reason):
        parse(body)


def test_nested_elements_where_text_belongs_are_a_bad_push() -> None:
    with pytest.raises(BadPush, match="Content"):
        inbound(parse(_xml("text", "<Content><b>bold</b></Content>")))


def test_a_forged_plain_mode_signature_is_refused_with_401() -> None:
    body = _xml("text", "<Content>hi</Content>")
    with pytest.raises(BadPush) as refused:
        _opened_plain(body, signature="0" * 40)

    assert refused.value.status == 401


def test_a_correct_plain_mode_signature_opens_the_body_as_it_is() -> None:
    body = _xml("text", "<Content>hi</Content>")
    assert _opened_plain(body, _signature(TOKEN, "1764481200", "381746372")) == body


def test_safe_mode_decrypts_what_wechat_encrypted_and_refuses_a_wrong_msg_signature() -> None:
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    plain = _xml("text", "<Content><![CDATA[证书什么时候发]]></Content>")
    envelope = crypto.encrypt_message(plain.decode(), "381746372", "1764481200")
    msg_signature = xmltodict.parse(envelope)["xml"]["MsgSignature"]
    wire = envelope.encode()

    def opened(signature: str) -> bytes:
        return _opened(
            wire,
            crypto=crypto,
            token=TOKEN,
            encrypt_type="aes",
            signature="",
            msg_signature=signature,
            timestamp="1764481200",
            nonce="381746372",
        )

    assert inbound(parse(opened(msg_signature))).text == "证书什么时候发"
    with pytest.raises(BadPush) as refused:
        opened("f" * 40)
    assert refused.value.status == 401


def test_safe_mode_with_another_accounts_key_is_refused() -> None:
    other = WeChatCrypto(TOKEN, "a" * 43, APP_ID)
    envelope = other.encrypt_message(_xml("text", "<Content>x</Content>").decode(), "1", "2")
    signature = xmltodict.parse(envelope)["xml"]["MsgSignature"]
    with pytest.raises(BadPush):
        _opened(
            envelope.encode(),
            crypto=WeChatCrypto(TOKEN, AES_KEY, APP_ID),
            token=TOKEN,
            encrypt_type="aes",
            signature="",
            msg_signature=signature,
            timestamp="2",
            nonce="1",
        )


def test_safe_mode_without_a_configured_key_says_which_setting_to_set() -> None:
    with pytest.raises(BadPush, match="CARELOOP_WECHAT_AES_KEY"):
        _opened(
            b"<xml><Encrypt>x</Encrypt></xml>",
            crypto=None,
            token=TOKEN,
            encrypt_type="aes",
            signature="",
            msg_signature="x",
            timestamp="1",
            nonce="1",
        )


def test_the_acknowledgement_carries_the_number_when_desk_knew_it() -> None:
    assert "CL-000123" in acknowledgement("CL-000123", language="zh")
    assert acknowledgement(None, language="zh") == "已收到您的消息，我们会尽快在这里回复您。"
    assert "CL-000123" in acknowledgement("CL-000123", language="en")


@pytest.mark.parametrize(("env", "status"), [("production", 401), ("local", 200)])
def test_the_demo_token_is_refused_outside_a_local_run(env: str, status: int) -> None:
    app = FastAPI()
    app.include_router(routes(new_context("intake", IntakeSettings(env=env)), WeChatSettings()))
    params = {
        "signature": _signature(DEMO_TOKEN, "1764481200", "381746372"),
        "timestamp": "1764481200",
        "nonce": "381746372",
        "echostr": "dnPdpTZz85",
    }

    answer = TestClient(app).get("/channels/wechat", params=params)  # no lifespan: no I/O

    assert answer.status_code == status
    assert ("CARELOOP_WECHAT_TOKEN" in answer.text) == (status == 401)


def test_the_ticket_counts_from_when_the_learner_sent_it_never_from_the_future() -> None:
    message = inbound(parse(_xml("text", "<Content>hi</Content>")))  # CreateTime 1764481200
    later = datetime(2025, 11, 30, 6, 0, tzinfo=UTC)
    earlier = datetime(2025, 11, 30, 5, 0, tzinfo=UTC)

    assert ticket_of(message, learner=_learner(), received_at=later).submitted_at == (
        datetime.fromtimestamp(1764481200, UTC)
    )
    assert ticket_of(message, learner=_learner(), received_at=earlier).submitted_at == earlier
