"""The Weibo channel: private-message replies through the fans-service platform (粉丝服务平台).

Weibo's documented endpoint: `POST /2/messages/reply.json` (form-encoded: `access_token`,
`type=text`, `data` = the URL-encoded JSON `{"text": …}`, `receiver_id`, `save_sender_box`).
The account may answer a learner for 48 hours after the learner last wrote. The access token is
the long-lived one the fans-service page shows. Errors are JSON
`{"error": "…", "error_code": 21332, "request": "/2/messages/reply.json"}`.
"""

import json
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notify.channels import ChannelError
from services.notify.domain import Undeliverable

# Weibo takes a private message of fewer than 300 Chinese characters.
MAX_TEXT_CHARS = 299
ELLIPSIS = "…"
# The account's access token is refused: every delivery fails until an operator renews it.
BAD_TOKEN = frozenset({21314, 21315, 21316, 21317, 21319, 21327, 21332})
# Weibo is busy or limits careloop's rate: try again later.
BUSY = frozenset({10001, 10002, 10009, 10022, 10023, 10024})
# This learner cannot be reached by this account now. 20003 is Weibo's; Weibo documents the
# 48-hour rule but not the code it answers when it is broken, so 21602 is what the local
# providers server answers for it: map the real one here once it is seen in production.
UNREACHABLE = {
    20003: "the Weibo user does not exist",
    21602: "no message quota for this user (they have not written within 48 hours, or unfollowed)",
}


class WeiboApiSettings(BaseSettings):
    """The fans-service API, as notify calls it (intake reads its own Weibo settings)."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_WEIBO_", extra="ignore")

    access_token: SecretStr = Field(
        SecretStr("careloop-local-weibo-token"),
        description="The fans-service access token (the local default matches the providers "
        "server).",
    )
    api_base: str = Field(
        "https://m.api.weibo.com",
        description="Weibo's API base; the local run points it at the providers server.",
    )
    timeout_seconds: float = Field(10, gt=0, description="Longest wait for one API call.")


def fit_text(text: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """`text` within Weibo's limit, cut with an ellipsis when too long."""
    if len(text) <= max_chars:
        return text
    return text[: max_chars - len(ELLIPSIS)].rstrip() + ELLIPSIS


def classify(status: int, error_code: int | None, error: str) -> Exception:
    """A Weibo error answer as the failure of one delivery."""
    reason = f"Weibo HTTP {status} error_code {error_code}: {error}"
    if error_code in UNREACHABLE:
        return Undeliverable(f"{UNREACHABLE[error_code]} ({reason})")
    if error_code in BAD_TOKEN:
        return ChannelError(f"the fans-service access token is refused ({reason})", False)
    if error_code in BUSY or status >= 500 or error_code is None:
        return ChannelError(reason, False)
    return ChannelError(reason, True)  # a parameter Weibo refuses: this message never goes


class WeiboSender:
    """Sends private-message replies as the account the access token belongs to."""

    def __init__(self, settings: WeiboApiSettings, client: httpx.AsyncClient) -> None:
        self._s = settings
        self._client = client

    async def send(self, *, to: str, text: str, delivery_key: str) -> str:
        """Send `text` to the Weibo uid `to`; returns Weibo's message id. `delivery_key` is
        not sent: Weibo takes no idempotency key."""
        if not to.isdigit():
            raise Undeliverable(f"not a Weibo uid: {to!r}")
        form = {
            "access_token": self._s.access_token.get_secret_value(),
            "type": "text",
            "data": quote(json.dumps({"text": fit_text(text)}, ensure_ascii=False)),
            "receiver_id": to,
            "save_sender_box": "1",
        }
        try:
            response = await self._client.post(
                self._s.api_base.rstrip("/") + "/2/messages/reply.json",
                data=form,
                timeout=self._s.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise ChannelError(f"Weibo API unreachable: {exc!r}", False) from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ChannelError(f"Weibo API answered HTTP {response.status_code}, not JSON", False)
        if response.status_code == 200 and "error_code" not in answer:
            message_id = answer.get("idstr") or answer.get("id")
            if message_id is None:
                raise ChannelError("Weibo accepted the message but gave no id", False)
            return str(message_id)
        code = answer.get("error_code")
        error_code = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
        raise classify(response.status_code, error_code, str(answer.get("error", "")))
