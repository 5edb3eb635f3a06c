"""notify's channels: one sender each (compose, send, classify errors), and the registry of
the senders that answer over HTTP (SMS, WeChat, Weibo).

E-mail has its own path (`services.notify.senders`, pipelined SMTP). Every other channel is a
`ChannelSender` the HTTP worker (`services.notify.http_senders`) calls once per delivery:

- `send(to=..., text=..., delivery_key=...)` returns the provider's message id once the
  provider accepted the message. `to` is the channel's address (E.164-ish phone number,
  WeChat openid, Weibo uid), `text` the finished message (notify already fitted an SMS to
  `NotifySettings.sms_max_segments`), `delivery_key` stable per message (a provider that
  takes an idempotency key may use it).
- It raises `services.notify.domain.Undeliverable` when this message can never go (a bad
  number, an openid outside WeChat's 48-hour window), `ChannelError(reason, permanent=...)`
  for the rest; anything else counts as a transient failure. notify retries transient
  failures with backoff up to `CARELOOP_NOTIFY_MAX_ATTEMPTS`.
- Each sender is built from its own settings (its own env prefix) and notify's HTTP client
  (`http_senders`).
"""

from collections.abc import Iterable
from typing import Protocol

import httpx


class ChannelError(Exception):
    """A provider refused or failed one message; `permanent` when retrying cannot help."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class ChannelSender(Protocol):
    async def send(self, *, to: str, text: str, delivery_key: str) -> str: ...


EMAIL = "email"
SMS = "sms"
WECHAT = "wechat"
WEIBO = "weibo"
HTTP_CHANNELS = (SMS, WECHAT, WEIBO)
ALL_CHANNELS = (EMAIL, *HTTP_CHANNELS)


def http_senders(channels: Iterable[str], client: httpx.AsyncClient) -> dict[str, ChannelSender]:
    """A sender for each of `channels` that goes over HTTP, each with its settings read now.

    Imported here, not at the top: each sender module imports `ChannelError` from this one.
    """
    from services.notify.channels.sms import SmsSender, SmsSettings
    from services.notify.channels.wechat import WeChatApiSettings, WeChatSender
    from services.notify.channels.weibo import WeiboApiSettings, WeiboSender

    senders: dict[str, ChannelSender] = {}
    for channel in channels:
        if channel == SMS:
            senders[channel] = SmsSender(SmsSettings(), client)
        elif channel == WECHAT:
            senders[channel] = WeChatSender(WeChatApiSettings(), client)
        elif channel == WEIBO:
            senders[channel] = WeiboSender(WeiboApiSettings(), client)
    return senders
