"""The SMS channel: texts within the segment limit, through an HTTP SMS provider.

The provider's API (the local one in `deploy/local/providers.py` speaks it; a real provider
is reached through an adapter speaking the same, or by replacing `SmsSender._post`):

    POST {api_base}/v1/sms/messages
    Authorization: Bearer <api key>
    Idempotency-Key: <the delivery's key>        (the same key twice sends once)
    {"to": "+8613812345678", "text": "…", "sender_id": "careloop"}

    200 {"id": "sms_…", "to": "+86…", "segments": 2, "encoding": "UCS-2", "status": "queued"}
    4xx/5xx {"error": {"code": "invalid_number" | "text_too_long" | "empty_text" |
             "unauthorized" | "invalid_request" | "rate_limited", "message": "…"}}
"""

import re

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notify.channels import ChannelError
from services.notify.domain import Undeliverable
from shared.phones import normal_phone

# GSM 03.38: the basic character set (one septet each) and its extension (two: escape + char).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
# Characters per message: alone, and per part of a concatenated one (its header takes room).
GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class SmsSettings(BaseSettings):
    """The HTTP SMS provider notify sends texts through."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_SMS_", extra="ignore")

    api_base: str = Field(
        "http://127.0.0.1:18090",
        description="The SMS provider's API base (default: the local providers server).",
    )
    api_key: SecretStr = Field(
        SecretStr("careloop-local-sms-key"),
        description="The provider's API key (the local default matches the providers server).",
    )
    sender_id: str = Field("careloop", description="The sender name shown on the phone.")
    max_segments: int = Field(
        3,
        ge=1,
        le=10,
        description="Most parts one text may take (70 Chinese or 160 GSM characters alone, "
        "67/153 per part when concatenated); a longer text is cut, keeping the portal link.",
    )
    timeout_seconds: float = Field(10, gt=0, description="Longest wait for the provider.")


def is_gsm(text: str) -> bool:
    return all(c in GSM_BASIC or c in GSM_EXTENSION for c in text)


def segments(text: str) -> int:
    """How many SMS parts `text` takes: GSM-7 when every character has a septet, else UCS-2
    (counted in UTF-16 units: an emoji takes two)."""
    if is_gsm(text):
        units = sum(2 if c in GSM_EXTENSION else 1 for c in text)
        single, part = GSM_SINGLE, GSM_PART
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part = UCS2_SINGLE, UCS2_PART
    if units <= single:
        return 1
    return -(-units // part)


def fit(text: str, *, link: str | None, max_segments: int) -> str:
    """`text` in at most `max_segments` parts; when too long, cut where it still fits with an
    ellipsis and the `link` (the learner's portal page) after it, so nothing is lost for good.
    A `link` already in `text` is taken out of the body first, so it is never cut in half."""
    if segments(text) <= max_segments:
        return text
    body = text.replace(link, "").rstrip() if link else text
    gsm = is_gsm(body) and (link is None or is_gsm(link))
    tail = ("..." if gsm else "…") + (f" {link}" if link else "")
    if segments(tail) > max_segments:  # a link too long for the limit: cut the text alone
        tail = "..." if gsm else "…"
    low, high = 0, len(body)  # the longest prefix of body that fits with the tail
    while low < high:
        mid = (low + high + 1) // 2
        if segments(body[:mid].rstrip() + tail) <= max_segments:
            low = mid
        else:
            high = mid - 1
    return body[:low].rstrip() + tail


def e164(to: str) -> str:
    """The number in E.164 (`+` and up to 15 digits), or Undeliverable naming the problem."""
    number = normal_phone(to)
    if number is None or not E164.match(number):
        raise Undeliverable(
            f"not a phone number SMS can reach (E.164, e.g. +8613812345678): {to!r}"
        )
    return number


class SmsSender:
    """Sends one text per delivery; the provider de-duplicates by the delivery's key."""

    def __init__(self, settings: SmsSettings, client: httpx.AsyncClient) -> None:
        self._s = settings
        self._client = client

    async def send(self, *, to: str, text: str, delivery_key: str, link: str | None = None) -> str:
        """Send `text` to the phone number `to`, cut to the segment limit keeping `link`;
        returns the provider's message id."""
        number = e164(to)
        body = {
            "to": number,
            "text": fit(text, link=link, max_segments=self._s.max_segments),
            "sender_id": self._s.sender_id,
        }
        try:
            response = await self._client.post(
                self._s.api_base.rstrip("/") + "/v1/sms/messages",
                json=body,
                headers={
                    "Authorization": f"Bearer {self._s.api_key.get_secret_value()}",
                    "Idempotency-Key": delivery_key,
                },
                timeout=self._s.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise ChannelError(f"SMS provider unreachable: {exc!r}", False) from exc
        if response.status_code == 200:
            message_id = _json(response).get("id")
            if not isinstance(message_id, str):
                raise ChannelError("SMS provider accepted the text but gave no id", False)
            return message_id
        raise classify(response.status_code, _json(response))


def classify(status: int, answer: dict[str, object]) -> Exception:
    """A refusal of the provider as the failure of one delivery."""
    error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
    assert isinstance(error, dict)
    code, message = str(error.get("code", "")), str(error.get("message", ""))
    reason = f"SMS provider HTTP {status} {code}: {message}".rstrip(": ")
    if code == "invalid_number":
        return Undeliverable(reason)
    if status in (401, 403):  # the API key: every text fails until an operator fixes it
        return ChannelError(f"the SMS provider refuses careloop's API key ({reason})", False)
    if status == 429 or status >= 500:
        return ChannelError(reason, False)
    return ChannelError(reason, True)  # this text as it stands can never go


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
