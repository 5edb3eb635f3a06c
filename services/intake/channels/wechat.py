"""WeChat official account message push (in): the URL check, XML messages in plain and safe
(AES) mode, and the passive reply that tells the learner the ticket number within WeChat's 5 s.

WeChat's protocol, as its documentation describes it:

- `GET ?signature&timestamp&nonce&echostr`: the URL check; `signature` is the SHA-1 of the
  sorted token, timestamp and nonce; the answer is `echostr` as it came.
- `POST ?signature&timestamp&nonce&openid` with an XML message (plain mode), or with
  `&encrypt_type=aes&msg_signature=…` and `<xml><Encrypt>…</Encrypt></xml>` (safe mode: AES
  with the EncodingAESKey; the reply is encrypted the same way).
- The answer within 5 s is a passive reply (XML) or `success` (nothing to say). Without an
  answer in time WeChat sends the same message again, up to three times: a message's `MsgId`
  names its ticket and its message id, so a retry is the same ticket.

Signatures and crypto are wechatpy's. What WeChat should never send (a forged signature, XML
that does not parse) is refused with a plain-text 4xx naming the problem and stores nothing;
what a learner can send but careloop cannot take (a location, a sticker, unstorable characters,
too many messages) is answered with a polite passive reply, also storing nothing.
"""

import asyncio
import binascii
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID
from xml.parsers.expat import ExpatError

import httpx
import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import BaseEvent
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import ImageMessage, TextMessage, VoiceMessage
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from services.intake.domain import detect_language, message_id_for, ticket_id_for
from services.intake.handlers import accept
from services.intake.settings import IntakeSettings
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import Attachment, Channel, Learner, TicketSubmitted
from shared.ratelimit import Limit, RateLimiter
from shared.service import Context
from shared.settings import Environment
from shared.text import problem

log = structlog.get_logger(__name__)
DEMO_TOKEN = "careloop-local-wechat-token"
PLACEHOLDER_NAME = "微信用户"  # the push carries no nickname; the learner is known by openid
NOT_CONFIGURED = "the WeChat channel is not configured: set CARELOOP_WECHAT_TOKEN"
SUBJECT_CHARS = 60
DESCRIPTION_CHARS = 20_000


class WeChatSettings(BaseSettings):
    """The official account's message push, as intake receives it."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_WECHAT_", extra="ignore")

    token: SecretStr = Field(
        SecretStr(DEMO_TOKEN),
        description="The Token set in the account's server configuration (signs every push). "
        "The default is a local demo value, refused outside CARELOOP_ENV=local.",
    )
    app_id: str = Field("wxcareloop00000001", description="The official account's AppID.")
    aes_key: SecretStr | None = Field(
        SecretStr("Y2FyZWxvb3AtbG9jYWwtd2VjaGF0LWFlcy1rZXktMzI"),
        description="The EncodingAESKey (43 characters) for safe mode; unset: safe-mode pushes "
        "are refused. The default is a local demo key: set your own.",
    )
    desk_url: str = Field(
        "http://127.0.0.1:18082", description="desk's base URL, asked for the ticket number."
    )
    receipt_wait_seconds: float = Field(
        3.5,
        gt=0,
        lt=5,
        description="Longest the passive reply waits for desk to know the ticket number "
        "(WeChat waits 5 s in all); past it the reply acknowledges without the number.",
    )
    rate_per_openid: int = Field(
        20, ge=0, description="Messages per WeChat user per window (0: off)."
    )
    rate_openid_window_seconds: int = Field(
        600, ge=1, description="Window of the per-user limit (WeChat and Weibo)."
    )


class BadPush(ValueError):
    """What WeChat's servers never send: refused with a plain-text 4xx naming the problem."""

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Inbound:
    """One learner message from a social channel, as careloop keeps it."""

    channel: Channel
    account: str  # the official account (WeChat's ToUserName, the Weibo account's uid)
    sender: str  # the learner's openid / uid
    native_id: str  # the channel's id of this message
    text: str
    attachments: tuple[Attachment, ...]
    sent_at: datetime


# ---- pure: parse, decide, word the replies -------------------------------------------------


def parse(xml: bytes) -> Any:
    """The wechatpy message or event in `xml`, or BadPush naming why there is none."""
    try:
        message = parse_message(xml.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadPush(f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except ExpatError as exc:
        raise BadPush(f"the body is not well-formed XML: {exc}") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadPush(f"not a WeChat message: no <xml> root with a <MsgType> ({exc!r})") from exc
    if message is None:
        raise BadPush("the body is empty")
    for name in ("FromUserName", "ToUserName", "MsgType"):
        if not isinstance(message._data.get(name), str) or not message._data[name].strip():
            raise BadPush(f"<{name}> is missing or not text")
    created = message._data.get("CreateTime")
    if not isinstance(created, str) or not created.isdigit():
        raise BadPush("<CreateTime> is missing or not a number")
    return message


def _field(message: Any, name: str) -> str:
    value = message._data.get(name)
    if value is not None and not isinstance(value, str):
        raise BadPush(f"<{name}> must be text, not nested elements")
    return value or ""


class Unsupported(ValueError):
    """A message a learner can send but careloop cannot keep; the text tells the learner."""


def inbound(message: Any) -> Inbound:
    """The learner's message as careloop keeps it; Unsupported for what it cannot keep."""
    msg_id = _field(message, "MsgId")
    if msg_id and not msg_id.isdigit():
        raise BadPush("<MsgId> must be a number")
    openid = _field(message, "FromUserName").strip()
    # WeChat documents FromUserName + CreateTime as the key of a message without MsgId.
    native_id = msg_id or f"{openid}:{_field(message, 'CreateTime')}"
    attachments: tuple[Attachment, ...] = ()
    if isinstance(message, TextMessage):
        text = _field(message, "Content").strip()
        if not text:
            raise Unsupported("empty")
    elif isinstance(message, ImageMessage):
        text = "[图片]"
        url = _field(message, "PicUrl")
        attachments = (
            Attachment(
                name=f"wechat-image-{native_id}.jpg",
                content_type="image/jpeg",
                size=0,  # WeChat does not say; the bytes stay at `url`
                url=url if url.startswith(("http://", "https://")) else None,
            ),
        )
    elif isinstance(message, VoiceMessage):
        text = _field(message, "Recognition").strip() or "[语音消息，未能识别文字]"
        fmt = (_field(message, "Format") or "amr").lower()
        attachments = (
            Attachment(
                name=f"wechat-voice-{_field(message, 'MediaId') or native_id}.{fmt}"[:255],
                content_type=f"audio/{fmt}"[:100],
                size=0,
                url=None,  # fetched by MediaId through WeChat's media API within 3 days
            ),
        )
    else:
        raise Unsupported(message.type)
    if (why := problem(text, multiline=True)) is not None:
        raise Unsupported(f"text {why}")
    return Inbound(
        channel=Channel.WECHAT,
        account=_field(message, "ToUserName").strip(),
        sender=openid,
        native_id=native_id,
        text=text[:DESCRIPTION_CHARS],
        attachments=attachments,
        sent_at=datetime.fromtimestamp(int(_field(message, "CreateTime")), UTC),
    )


def ticket_of(message: Inbound, *, learner: Learner, received_at: datetime) -> TicketSubmitted:
    """A social message as a submission: it names a new ticket by its own id, and lets desk
    attach it to the learner's open ticket on this channel instead (`by_contact`)."""
    first_line = message.text.splitlines()[0] if message.text else ""
    subject = first_line if len(first_line) <= SUBJECT_CHARS else first_line[:SUBJECT_CHARS] + "…"
    has_words = not message.text.startswith("[")
    return TicketSubmitted(
        ticket_id=ticket_id_for(
            channel=message.channel, source=message.account, external_id=message.native_id
        ),
        channel=message.channel,
        source=message.account,
        external_id=message.native_id,
        learner=learner,
        subject=subject,
        description=message.text,
        language=detect_language(message.text) if has_words else "zh",
        attachments=message.attachments,
        # When the learner sent it (WeChat's or Weibo's clock), never later than careloop got it.
        submitted_at=min(message.sent_at, received_at),
        message_id=message_id_for(message.channel, message.account, message.native_id),
        by_contact=True,
    )


def acknowledgement(number: str | None, *, language: str) -> str:
    """The passive reply to an accepted message: with the ticket number when desk knew it in
    time; without, it promises no number (a follow-up gets no confirmation of its own; a new
    ticket's confirmation carries it)."""
    if language == "en":
        if number:
            return f"We have your message: ticket {number}. We will answer you here soon."
        return "We have your message and will answer you here soon."
    if number:
        return f"已收到您的消息，工单号 {number}。我们会尽快在这里回复您。"
    return "已收到您的消息，我们会尽快在这里回复您。"


def refusal(reason: str) -> str:
    """The passive reply to a message careloop did not keep, saying what to do instead."""
    if reason == "rate":
        return "您发送的消息太频繁了，请稍后再发。我们已收到的消息会尽快回复。"
    if reason == "busy":
        return "系统繁忙，这条消息未能保存，请稍后重新发送。"
    if reason.startswith("text "):
        return "消息中含有无法保存的字符，请去掉特殊符号后重新发送。"
    return "暂时只能处理文字、图片和语音消息，请用文字描述您的问题。"


# ---- what touches the world: Redis, Kafka, desk ---------------------------------------------


async def receipt(
    client: httpx.AsyncClient, desk_url: str, ids: Iterable[UUID], *, deadline: float
) -> str | None:
    """The ticket number desk gives for any of `ids` (the ticket's, the message's) before
    `deadline` (monotonic), else None."""
    ids = tuple(ids)
    pause = 0.05
    while True:
        for id_ in ids:
            try:
                response = await client.get(
                    f"{desk_url.rstrip('/')}/v1/receipts/{id_}",
                    timeout=max(0.1, deadline - time.monotonic()),
                )
            except httpx.HTTPError as exc:
                log.info("desk receipt not available", error=repr(exc))
                return None
            if response.status_code == 200:
                number = response.json().get("number")
                if isinstance(number, str):
                    return number
        if time.monotonic() + pause >= deadline:
            return None
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.4)


async def take(
    ctx: Context[IntakeSettings],
    limiter: RateLimiter,
    message: Inbound,
    *,
    learner: Learner,
    desk_url: str,
    per_sender: Limit,
    deadline: float,
) -> str:
    """Accept one learner message from a social channel; the passive reply's text."""
    verdict = await limiter.hit([per_sender])
    if not verdict.allowed:
        return refusal("rate")
    ticket = ticket_of(message, learner=learner, received_at=datetime.now(UTC))
    try:
        await accept(ctx, [ticket])
    except TRANSIENT_DRIVER_ERRORS as exc:
        log.error("social message not acknowledged by Kafka", error=repr(exc))
        return refusal("busy")
    async with httpx.AsyncClient() as client:
        assert ticket.message_id is not None
        number = await receipt(
            client, desk_url, (ticket.ticket_id, ticket.message_id), deadline=deadline
        )
    return acknowledgement(number, language=ticket.language)


def routes(ctx: Context[IntakeSettings], settings: WeChatSettings | None = None) -> APIRouter:
    """`/channels/wechat`: the URL the official account's server configuration names."""
    s = settings or WeChatSettings()
    token = s.token.get_secret_value()
    # Anyone can read the demo token here: outside a local run it would let anyone forge pushes.
    unconfigured = token == DEMO_TOKEN and ctx.settings.env != Environment.LOCAL
    crypto = WeChatCrypto(token, s.aes_key.get_secret_value(), s.app_id) if s.aes_key else None
    limiter = RateLimiter(
        lambda: ctx.redis, scope="intake", timeout_seconds=ctx.settings.redis_timeout_seconds
    )
    router = APIRouter(prefix="/channels/wechat", tags=["channels"])
    Param = Annotated[str, Query(max_length=200)]

    @router.get(
        "",
        response_class=PlainTextResponse,
        summary="WeChat's URL check",
        description="Answers `echostr` when `signature` is the SHA-1 of the sorted token, "
        "timestamp and nonce; 401 (plain text) otherwise.",
    )
    async def check(signature: Param, timestamp: Param, nonce: Param, echostr: Param) -> Response:
        if unconfigured:
            return PlainTextResponse(NOT_CONFIGURED, status_code=401)
        try:
            check_signature(token, signature, timestamp, nonce)
        except (InvalidSignatureException, UnicodeError):  # a forged value may not even be text
            return PlainTextResponse("invalid signature", status_code=401)
        return PlainTextResponse(echostr)

    @router.post(
        "",
        response_class=PlainTextResponse,
        summary="WeChat message push (plain or safe mode)",
        description="A text, image or voice message becomes a ticket (or a message on the "
        "learner's open WeChat ticket); the answer is a passive reply (XML, encrypted in safe "
        "mode) with the ticket number, or `success` for events. 401 (plain text): a forged "
        "signature; 400 (plain text): a body that is not a WeChat message. Neither stores "
        "anything.",
    )
    async def push(
        request: Request,
        signature: Param = "",
        timestamp: Param = "",
        nonce: Param = "",
        encrypt_type: Param = "raw",
        msg_signature: Param = "",
    ) -> Response:
        started = time.monotonic()
        if unconfigured:
            return PlainTextResponse(NOT_CONFIGURED, status_code=401)
        body = await request.body()
        try:
            xml = _opened(
                body,
                crypto=crypto,
                token=token,
                encrypt_type=encrypt_type,
                signature=signature,
                msg_signature=msg_signature,
                timestamp=timestamp,
                nonce=nonce,
            )
            message = parse(xml)
            if isinstance(message, BaseEvent):
                return PlainTextResponse("success")  # a follow, a menu click: no ticket
            try:
                kept = inbound(message)
            except Unsupported as exc:
                text = refusal(str(exc))
            else:
                text = await take(
                    ctx,
                    limiter,
                    kept,
                    learner=Learner(name=PLACEHOLDER_NAME, wechat_openid=kept.sender),
                    desk_url=s.desk_url,
                    per_sender=Limit(
                        "wechat_openid",
                        kept.sender,
                        s.rate_per_openid,
                        s.rate_openid_window_seconds,
                    ),
                    deadline=started + s.receipt_wait_seconds,
                )
        except BadPush as exc:
            log.warning("wechat push refused", reason=str(exc))
            return PlainTextResponse(str(exc), status_code=exc.status)
        reply = TextReply(source=message.target, target=message.source, content=text).render()
        if encrypt_type == "aes" and crypto is not None:
            reply = crypto.encrypt_message(reply, nonce, timestamp or None)
        return Response(reply, media_type="application/xml")

    return router


def _opened(
    body: bytes,
    *,
    crypto: WeChatCrypto | None,
    token: str,
    encrypt_type: str,
    signature: str,
    msg_signature: str,
    timestamp: str,
    nonce: str,
) -> bytes:
    """The push's XML once its signature is checked (and, in safe mode, decrypted)."""
    if not timestamp or not nonce:
        raise BadPush("timestamp and nonce are required query parameters", status=401)
    if encrypt_type == "raw":
        try:
            check_signature(token, signature, timestamp, nonce)
        except (InvalidSignatureException, UnicodeError):  # a forged value may not even be text
            raise BadPush("invalid signature", status=401) from None
        return body
    if encrypt_type != "aes":
        raise BadPush(f"encrypt_type must be raw or aes, not {encrypt_type!r}")
    if crypto is None:
        raise BadPush("safe mode (encrypt_type=aes) is not configured: set CARELOOP_WECHAT_AES_KEY")
    try:
        return crypto.decrypt_message(body, msg_signature, timestamp, nonce).encode()
    except InvalidSignatureException:
        raise BadPush("invalid msg_signature", status=401) from None
    except InvalidAppIdException:
        raise BadPush("the message is for another official account (AppID)", status=401) from None
    except ExpatError as exc:
        raise BadPush(f"the body is not well-formed XML: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise BadPush("safe mode: the body has no <Encrypt> element") from exc
    except (ValueError, binascii.Error, UnicodeError, struct.error, IndexError) as exc:
        raise BadPush(f"safe mode: <Encrypt> does not decrypt with the AES key ({exc})") from exc
