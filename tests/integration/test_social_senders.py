"""notify's WeChat, Weibo and SMS senders against the local providers server, a real process
speaking the providers' APIs (deploy/local/providers.py)."""

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from deploy.local.harness import ROOT, wait_for_port
from services.notify.channels import ChannelError
from services.notify.channels.sms import SmsSender, SmsSettings, segments
from services.notify.channels.wechat import WeChatApiSettings, WeChatSender
from services.notify.channels.weibo import WeiboApiSettings, WeiboSender
from services.notify.domain import Undeliverable
from tests.support import port

PROVIDERS_PORT = port(22600)
BASE = f"http://127.0.0.1:{PROVIDERS_PORT}"
LINK = "https://care.example/t/CL-000123?k=Zx8d0Qm2hY7rLw4T"


@pytest.fixture(scope="module")
def providers() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.providers", "--port", str(PROVIDERS_PORT)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(PROVIDERS_PORT)
        yield BASE
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def _openid() -> str:
    return "oUpF8u" + uuid.uuid4().hex[:22]


async def _sent(client: httpx.AsyncClient, channel: str, to: str) -> list[dict[str, Any]]:
    response = await client.get(f"{BASE}/_sent", params={"channel": channel, "to": to})
    result: list[dict[str, Any]] = response.json()
    return result


async def _control(client: httpx.AsyncClient, **change: Any) -> None:
    (await client.post(f"{BASE}/_control", json=change)).raise_for_status()


def _wechat(client: httpx.AsyncClient, **overrides: Any) -> WeChatSender:
    return WeChatSender(WeChatApiSettings(api_base=BASE, **overrides), client)


async def test_wechat_fetches_a_token_and_sends_a_customer_service_text(
    providers: str, client: httpx.AsyncClient
) -> None:
    openid = _openid()
    sender = _wechat(client)

    await sender.send(to=openid, text="您的工单 CL-000123 已有回复。", delivery_key="reply:1")
    await sender.send(to=openid, text="第二条消息", delivery_key="reply:2")

    assert [m["text"] for m in await _sent(client, "wechat", openid)] == [
        "您的工单 CL-000123 已有回复。",
        "第二条消息",
    ]


async def test_wechat_fetches_a_new_token_when_the_old_one_expired(
    providers: str, client: httpx.AsyncClient
) -> None:
    openid = _openid()
    sender = _wechat(client)
    await sender.send(to=openid, text="第一条", delivery_key="k1")
    await _control(client, expire_wechat_tokens=True)

    await sender.send(to=openid, text="令牌过期之后", delivery_key="k2")

    assert [m["text"] for m in await _sent(client, "wechat", openid)] == ["第一条", "令牌过期之后"]


async def test_wechat_outside_the_48_hour_window_is_undeliverable(
    providers: str, client: httpx.AsyncClient
) -> None:
    openid = _openid()
    await _control(client, wechat_out_of_window=[openid])

    with pytest.raises(Undeliverable, match="48 hours"):
        await _wechat(client).send(to=openid, text="您好", delivery_key="k")
    assert await _sent(client, "wechat", openid) == []


async def test_wechat_with_a_wrong_app_secret_is_retried_later_not_given_up(
    providers: str, client: httpx.AsyncClient
) -> None:
    sender = _wechat(client, app_secret=SecretStr("not-the-secret"))

    with pytest.raises(ChannelError, match="40125") as failed:
        await sender.send(to=_openid(), text="您好", delivery_key="k")
    assert failed.value.permanent is False


async def test_wechat_unreachable_is_a_channel_error_to_retry(client: httpx.AsyncClient) -> None:
    sender = WeChatSender(WeChatApiSettings(api_base=f"http://127.0.0.1:{port(22609)}"), client)

    with pytest.raises(ChannelError) as failed:
        await sender.send(to=_openid(), text="您好", delivery_key="k")
    assert failed.value.permanent is False


async def test_weibo_sends_a_private_message_reply(
    providers: str, client: httpx.AsyncClient
) -> None:
    uid = str(2_400_000_000 + uuid.uuid4().int % 100_000_000)
    sender = WeiboSender(WeiboApiSettings(api_base=BASE), client)

    message_id = await sender.send(to=uid, text="已收到，工单号 CL-000123。", delivery_key="k")

    [sent] = await _sent(client, "weibo", uid)
    assert (sent["id"], sent["text"]) == (message_id, "已收到，工单号 CL-000123。")


async def test_weibo_without_quota_is_undeliverable_and_a_wrong_token_is_retried(
    providers: str, client: httpx.AsyncClient
) -> None:
    uid = str(2_500_000_000 + uuid.uuid4().int % 100_000_000)
    await _control(client, weibo_no_quota=[uid])

    with pytest.raises(Undeliverable, match="quota"):
        await WeiboSender(WeiboApiSettings(api_base=BASE), client).send(
            to=uid, text="您好", delivery_key="k"
        )
    wrong = WeiboApiSettings(api_base=BASE, access_token=SecretStr("stolen"))
    with pytest.raises(ChannelError, match="21332") as failed:
        await WeiboSender(wrong, client).send(to=uid, text="您好", delivery_key="k")
    assert failed.value.permanent is False


def _phone() -> str:
    return f"+86138{uuid.uuid4().int % 100_000_000:08d}"


async def test_sms_is_sent_once_per_delivery_key(providers: str, client: httpx.AsyncClient) -> None:
    number = _phone()
    sender = SmsSender(SmsSettings(api_base=BASE), client)

    first = await sender.send(to=number, text="您的工单 CL-000123 已解决。", delivery_key="d-1")
    again = await sender.send(to=number, text="您的工单 CL-000123 已解决。", delivery_key="d-1")

    assert first == again
    assert len(await _sent(client, "sms", number)) == 1


async def test_a_long_sms_arrives_within_the_segment_limit_with_the_link_whole(
    providers: str, client: httpx.AsyncClient
) -> None:
    number = _phone()
    sender = SmsSender(SmsSettings(api_base=BASE, max_segments=2), client)
    text = "您好，" + "关于课程退费的问题，我们已经核实了您的订单。" * 15

    await sender.send(to=number, text=text, delivery_key=f"d-{uuid.uuid4()}", link=LINK)

    [sent] = await _sent(client, "sms", number)
    assert sent["text"].endswith(LINK)
    assert segments(sent["text"]) <= 2


async def test_sms_with_a_wrong_api_key_is_retried_later(
    providers: str, client: httpx.AsyncClient
) -> None:
    sender = SmsSender(SmsSettings(api_base=BASE, api_key=SecretStr("wrong")), client)

    with pytest.raises(ChannelError, match="API key") as failed:
        await sender.send(to=_phone(), text="您好", delivery_key="k")
    assert failed.value.permanent is False
