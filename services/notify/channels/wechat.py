"""The WeChat channel: customer-service text messages through the official account's API.

WeChat's documented endpoints: `GET /cgi-bin/token?grant_type=client_credential&appid&secret`
gives an access token (valid `expires_in` seconds, 7,200 today), and
`POST /cgi-bin/message/custom/send?access_token=…` sends a text to an openid that wrote to the
account within the last 48 hours. Every answer is JSON with `errcode` (0: ok) and `errmsg`.
"""

import asyncio
import json
import time
from typing import Any

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notify.channels import ChannelError
from services.notify.domain import Undeliverable

# WeChat refuses a text over 2,048 bytes (UTF-8); a longer one is cut with an ellipsis.
MAX_TEXT_BYTES = 2048
ELLIPSIS = "…"
# A token is renewed this long before WeChat says it expires, so none is used at its edge.
TOKEN_MARGIN_SECONDS = 300
# The token WeChat has replaced or timed out: fetch a new one and send again, once.
STALE_TOKEN = frozenset({40001, 40014, 42001})
# This learner cannot be reached by this account now: retrying cannot help.
UNREACHABLE = {
    40003: "not an openid of this official account",
    43004: "the learner unfollowed the official account",
    43019: "the learner blocked the official account",
    45015: "the learner has not written within 48 hours (customer-service window closed)",
    45047: "the customer-service message limit for this learner's window is used up",
}
# This message as it stands can never go.
BAD_MESSAGE = frozenset({40008, 44003, 44004, 45002, 47001})
# The account's credentials are wrong: every delivery fails until an operator fixes them.
BAD_CREDENTIALS = frozenset({40013, 40125, 40164, 41002, 41004})


class WeChatApiSettings(BaseSettings):
    """The official account's API, as notify calls it (intake reads its own WeChat settings)."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_WECHAT_", extra="ignore")

    app_id: str = Field("wxcareloop00000001", description="The official account's AppID.")
    app_secret: SecretStr = Field(
        SecretStr("careloop-local-wechat-secret"),
        description="The official account's AppSecret (the local default matches "
        "`python -m deploy.local.providers`).",
    )
    api_base: str = Field(
        "https://api.weixin.qq.com",
        description="WeChat's API base; the local run points it at the providers server.",
    )
    timeout_seconds: float = Field(10, gt=0, description="Longest wait for one API call.")


def fit_text(text: str, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """`text` within WeChat's limit: whole characters, cut with an ellipsis when too long."""
    if len(text.encode()) <= max_bytes:
        return text
    budget = max_bytes - len(ELLIPSIS.encode())
    cut = text.encode()[:budget].decode(errors="ignore")
    return cut.rstrip() + ELLIPSIS


def classify(errcode: int, errmsg: str) -> Exception:
    """A WeChat error answer as the failure of one delivery."""
    reason = f"WeChat errcode {errcode}: {errmsg}"
    if errcode in UNREACHABLE:
        return Undeliverable(f"{UNREACHABLE[errcode]} ({reason})")
    if errcode in BAD_MESSAGE:
        return Undeliverable(f"WeChat refuses this message ({reason})")
    if errcode in BAD_CREDENTIALS:
        return ChannelError(f"the official account's AppID/AppSecret are refused ({reason})", False)
    return ChannelError(reason, False)  # -1 (busy), 45009 (rate), anything new: try again later


class WeChatSender:
    """Sends customer-service texts; the access token is fetched once and shared until it
    nears its expiry or WeChat says it is stale."""

    def __init__(self, settings: WeChatApiSettings, client: httpx.AsyncClient) -> None:
        self._s = settings
        self._client = client
        self._token: str | None = None
        self._token_until = 0.0
        self._lock = asyncio.Lock()

    async def send(self, *, to: str, text: str, delivery_key: str) -> str:
        """Send `text` to the openid `to`. Returns "": WeChat gives no id for a
        customer-service message. `delivery_key` is not sent: WeChat takes no idempotency key."""
        if not to:
            raise Undeliverable("the learner has no WeChat openid")
        body = {"touser": to, "msgtype": "text", "text": {"content": fit_text(text)}}
        token = await self._access_token()
        answer = await self._call("POST", "/cgi-bin/message/custom/send", token=token, json=body)
        if answer.get("errcode") in STALE_TOKEN:
            token = await self._access_token(stale=token)
            answer = await self._call(
                "POST", "/cgi-bin/message/custom/send", token=token, json=body
            )
        errcode = int(answer.get("errcode") or 0)
        if errcode != 0:
            raise classify(errcode, str(answer.get("errmsg", "")))
        return ""

    async def _access_token(self, *, stale: str | None = None) -> str:
        """The cached token, or a new one when there is none, it is near expiry, or it is the
        `stale` one WeChat just refused (a concurrent sender may have renewed it already)."""
        async with self._lock:
            fresh = self._token is not None and time.monotonic() < self._token_until
            if fresh and self._token != stale:
                assert self._token is not None
                return self._token
            answer = await self._call(
                "GET",
                "/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": self._s.app_id,
                    "secret": self._s.app_secret.get_secret_value(),
                },
            )
            token = answer.get("access_token")
            if not isinstance(token, str) or not token:
                errcode = int(answer.get("errcode") or -1)
                raise classify(errcode, str(answer.get("errmsg", "no access_token")))
            expires_in = float(answer.get("expires_in") or 7200)
            self._token = token
            self._token_until = time.monotonic() + max(expires_in - TOKEN_MARGIN_SECONDS, 1)
            return token

    async def _call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        query = dict(params or {})
        if token is not None:
            query["access_token"] = token
        try:
            response = await self._client.request(
                method,
                self._s.api_base.rstrip("/") + path,
                params=query,
                content=_json_bytes(json) if json is not None else None,
                headers={"Content-Type": "application/json"} if json is not None else None,
                timeout=self._s.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise ChannelError(f"WeChat API unreachable: {exc!r}", False) from exc
        if response.status_code != 200:
            raise ChannelError(f"WeChat API answered HTTP {response.status_code}", False)
        try:
            answer = response.json()
        except ValueError as exc:
            raise ChannelError("WeChat API answered something that is not JSON", False) from exc
        if not isinstance(answer, dict):
            raise ChannelError("WeChat API answered JSON that is not an object", False)
        return answer


def _json_bytes(body: dict[str, Any]) -> bytes:
    """UTF-8 JSON with Chinese as it is, as WeChat's own examples send it."""
    return json.dumps(body, ensure_ascii=False).encode()
