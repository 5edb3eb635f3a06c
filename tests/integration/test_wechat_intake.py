"""WeChat and Weibo pushes into a real intake app (real broker and Redis) with a real desk
process answering the receipts: the passive reply carries the ticket number."""

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import xmltodict
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from wechatpy.crypto import WeChatCrypto

from services.intake import handlers
from services.intake.channels import wechat, weibo
from services.intake.settings import IntakeSettings
from shared import dlq, topics
from shared.events import TicketSubmitted, decode
from shared.service import build_app, new_context
from tests.support import RunningStack, ServiceProcess, fresh_groups, port

DESK_PORT = port(22682)
TOKEN = "careloop-test-wechat-token"
AES_KEY = "Y2FyZWxvb3AtbG9jYWwtd2VjaGF0LWFlcy1rZXktMzI"
APP_ID = "wx5823bf96d3bd56c7"
ACCOUNT = "gh_3c884a361561"
WEIBO_SECRET = "careloop-test-weibo-secret"


@pytest.fixture(scope="module")
def desk(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log: Path = tmp_path_factory.mktemp("desk") / "desk.log"
    service = ServiceProcess(
        "desk",
        DESK_PORT,
        {**stack.env, **fresh_groups(), "CARELOOP_DESK_HTTP_PORT": str(DESK_PORT)},
        log,
    )
    service.start()
    try:
        service.wait_healthy()
        yield f"http://127.0.0.1:{DESK_PORT}"
    finally:
        service.stop()


def _app(stack: RunningStack, desk_url: str, **own: Any) -> FastAPI:
    """intake as app.py builds it, with the two channels' routes."""
    settings = IntakeSettings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        kafka_group_prefix=fresh_groups()["CARELOOP_KAFKA_GROUP_PREFIX"],
    )
    ctx = new_context("intake", settings)
    handlers.subscribe(ctx)
    app = build_app(ctx, uses_postgres=False, uses_redis=True, title="intake")
    app.include_router(
        wechat.routes(
            ctx,
            wechat.WeChatSettings(
                token=TOKEN, aes_key=AES_KEY, app_id=APP_ID, desk_url=desk_url, **own
            ),
        )
    )
    app.include_router(
        weibo.routes(ctx, weibo.WeiboSettings(app_secret=WEIBO_SECRET, desk_url=desk_url))
    )
    return app


@pytest.fixture(scope="module")
def client(stack: RunningStack, desk: str) -> Iterator[TestClient]:
    with TestClient(_app(stack, desk)) as c:
        yield c


def _signed(secret: str) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), str(uuid.uuid4().int % 10**9)
    signature = hashlib.sha1("".join(sorted((secret, timestamp, nonce))).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


def _openid() -> str:
    return "oUpF8u" + uuid.uuid4().hex[:22]


def _msg_id() -> str:
    return str(6_000_000_000_000_000_000 + uuid.uuid4().int % 10**18)


def _text(openid: str, content: str, msg_id: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def _reply(xml: str) -> dict[str, str]:
    reply: dict[str, str] = xmltodict.parse(xml)["xml"]
    return reply


async def _submitted(stack: RunningStack) -> list[TicketSubmitted]:
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        records = await dlq.read_all(consumer, topics.INTAKE, quiet_ms=600)
    finally:
        await consumer.stop()
    found = [decode(r.value).data for r in records]
    return [e for e in found if isinstance(e, TicketSubmitted)]


def test_the_url_check_echoes_only_a_correctly_signed_request(client: TestClient) -> None:
    signed = _signed(TOKEN)
    good = client.get("/channels/wechat", params={**signed, "echostr": "dnPdpTZz85"})
    forged = client.get(
        "/channels/wechat", params={**signed, "signature": "0" * 40, "echostr": "dnPdpTZz85"}
    )

    assert (good.status_code, good.text) == (200, "dnPdpTZz85")
    assert forged.status_code == 401
    assert forged.headers["content-type"].startswith("text/plain")


async def test_a_plain_mode_text_is_answered_with_its_ticket_number_and_is_on_kafka(
    stack: RunningStack, client: TestClient
) -> None:
    openid, msg_id = _openid(), _msg_id()
    answer = client.post(
        "/channels/wechat",
        params={**_signed(TOKEN), "openid": openid},
        content=_text(openid, "课程视频打不开，一直转圈", msg_id),
    )

    reply = _reply(answer.text)
    assert answer.status_code == 200
    assert (reply["ToUserName"], reply["FromUserName"]) == (openid, ACCOUNT)
    assert "工单号 CL-" in reply["Content"]
    [event] = [e for e in await _submitted(stack) if e.external_id == msg_id]
    assert event.learner.wechat_openid == openid
    assert event.by_contact is True
    assert event.message_id is not None


def test_a_safe_mode_message_gets_an_encrypted_reply_with_the_number(client: TestClient) -> None:
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    openid = _openid()
    signed = _signed(TOKEN)
    envelope = crypto.encrypt_message(
        _text(openid, "证书什么时候发？", _msg_id()), signed["nonce"], signed["timestamp"]
    )
    sent = _reply(envelope)

    answer = client.post(
        "/channels/wechat",
        params={**signed, "encrypt_type": "aes", "msg_signature": sent["MsgSignature"]},
        content=f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<Encrypt><![CDATA[{sent['Encrypt']}]]></Encrypt></xml>",
    )

    encrypted = _reply(answer.text)
    reply = _reply(
        crypto.decrypt_message(
            answer.text, encrypted["MsgSignature"], encrypted["TimeStamp"], encrypted["Nonce"]
        )
    )
    assert reply["ToUserName"] == openid
    assert "工单号 CL-" in reply["Content"]


async def test_wechats_retries_of_one_msg_id_are_one_ticket(
    stack: RunningStack, client: TestClient
) -> None:
    openid, msg_id = _openid(), _msg_id()
    xml = _text(openid, "退款什么时候到账", msg_id)

    answers = [
        client.post("/channels/wechat", params=_signed(TOKEN), content=xml) for _ in range(3)
    ]

    numbers = {_reply(a.text)["Content"].split("工单号 ")[1].split("。")[0] for a in answers}
    assert len(numbers) == 1
    assert len([e for e in await _submitted(stack) if e.external_id == msg_id]) == 1


async def test_a_forged_push_is_refused_and_stores_nothing(
    stack: RunningStack, client: TestClient
) -> None:
    openid, msg_id = _openid(), _msg_id()
    answer = client.post(
        "/channels/wechat",
        params={**_signed(TOKEN), "signature": "f" * 40},
        content=_text(openid, "伪造的消息", msg_id),
    )

    assert answer.status_code == 401
    assert answer.text == "invalid signature"
    assert [e for e in await _submitted(stack) if e.external_id == msg_id] == []


def test_malformed_xml_is_a_plain_400_naming_the_problem(client: TestClient) -> None:
    answer = client.post(
        "/channels/wechat", params=_signed(TOKEN), content="<xml><MsgType>text</xml>"
    )

    assert answer.status_code == 400
    assert "not well-formed XML" in answer.text


def test_a_follow_event_is_acknowledged_without_a_ticket(client: TestClient) -> None:
    event = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{_openid()}]]></FromUserName><CreateTime>1764481200</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>"
    )
    answer = client.post("/channels/wechat", params=_signed(TOKEN), content=event)

    assert (answer.status_code, answer.text) == (200, "success")


def test_a_learner_over_the_rate_limit_gets_a_polite_reply(stack: RunningStack) -> None:
    openid = _openid()
    nowhere = f"http://127.0.0.1:{port(22689)}"  # no desk: the reply goes without a number
    with TestClient(_app(stack, nowhere, rate_per_openid=2)) as c:
        replies = [
            _reply(
                c.post(
                    "/channels/wechat",
                    params=_signed(TOKEN),
                    content=_text(openid, f"第{i}条", _msg_id()),
                ).text
            )["Content"]
            for i in range(3)
        ]

    assert "工单号" not in replies[0]
    assert "已收到" in replies[0]
    assert "太频繁" in replies[2]


def test_a_weibo_private_message_is_answered_with_its_ticket_number(client: TestClient) -> None:
    uid = 2_400_000_000 + uuid.uuid4().int % 100_000_000
    push = {
        "type": "text",
        "receiver_id": 1902538057,
        "sender_id": uid,
        "created_at": time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime()),
        "text": "直播课回放在哪里看？",
        "data": {},
    }
    answer = client.post(
        "/channels/weibo",
        params=_signed(WEIBO_SECRET),
        content=json.dumps(push, ensure_ascii=False).encode(),
    )
    forged = client.post(
        "/channels/weibo",
        params={**_signed(WEIBO_SECRET), "signature": "0" * 40},
        content=json.dumps(push).encode(),
    )

    assert answer.status_code == 200
    assert answer.json()["receiver_id"] == uid
    assert "工单号 CL-" in json.loads(unquote(answer.json()["data"]))["text"]
    assert forged.status_code == 401


def test_a_second_message_from_the_learner_is_answered_with_the_open_tickets_number(
    client: TestClient,
) -> None:
    openid = _openid()
    first, second = (
        _reply(
            client.post(
                "/channels/wechat", params=_signed(TOKEN), content=_text(openid, text, _msg_id())
            ).text
        )["Content"]
        for text in ("课程视频打不开", "补充一下：换了浏览器也不行")
    )

    number = first.split("工单号 ")[1].split("。")[0]
    assert f"工单号 {number}" in second
