"""Weibo private messages (in), through the fans-service platform's message push (粉丝服务平台).

Weibo's protocol, as its documentation describes it:

- `GET ?signature&timestamp&nonce&echostr`: the URL check; `signature` is the SHA-1 of the
  app secret, timestamp and nonce sorted and joined; the answer is `echostr` as it came.
- `POST ?signature&timestamp&nonce` (signed the same way) with a JSON message:
  `{"type": "text"|"image"|"voice"|"position"|"event"|"mention", "receiver_id": <the
  account's uid>, "sender_id": <the learner's uid>, "created_at": "Mon Jul 16 18:09:20 +0800
  2012", "text": "…", "data": {…}}`; unknown types are to be ignored.
- The answer may be a passive reply: `{"result": true, "sender_id": <account>, "receiver_id":
  <learner>, "type": "text", "data": "<URL-encoded JSON {\"text\": …}>"}`.

A push carries no message id, so a message is named by its sender, time, type and content: the
same push delivered twice is one message. Text, image and voice messages become submissions
like WeChat's (by contact); events and public @mentions are acknowledged with an empty answer.
"""

import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictInt, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.intake.channels.wechat import (
    DESCRIPTION_CHARS,
    BadPush,
    Inbound,
    Unsupported,
    refusal,
    take,
)
from services.intake.settings import IntakeSettings
from shared.events import Attachment, Channel, Learner
from shared.ratelimit import Limit, RateLimiter
from shared.service import Context
from shared.settings import Environment
from shared.text import problem

log = structlog.get_logger(__name__)
DEMO_SECRET = "careloop-local-weibo-app-secret"
NOT_CONFIGURED = "the Weibo channel is not configured: set CARELOOP_WEIBO_APP_SECRET"
PLACEHOLDER_NAME = "微博用户"  # the push carries no screen name; the learner is known by uid
WEIBO_TIME = "%a %b %d %H:%M:%S %z %Y"
KEPT = frozenset({"text", "image", "voice"})
# Answered: what a learner sends privately. Events, public @mentions and types Weibo adds later
# get an empty 200 (Weibo's documentation asks for unknown types to be ignored).
ANSWERED = KEPT | {"position"}


class WeiboSettings(BaseSettings):
    """The fans-service message push, as intake receives it."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_WEIBO_", extra="ignore")

    app_secret: SecretStr = Field(
        SecretStr(DEMO_SECRET),
        description="The App Secret of the app the account authorised (signs every push). "
        "The default is a local demo value, refused outside CARELOOP_ENV=local.",
    )
    desk_url: str = Field(
        "http://127.0.0.1:18082", description="desk's base URL, asked for the ticket number."
    )
    receipt_wait_seconds: float = Field(
        3.5,
        gt=0,
        lt=5,
        description="Longest the passive reply waits for desk to know the ticket number.",
    )
    rate_per_uid: int = Field(20, ge=0, description="Messages per Weibo user per window (0: off).")
    rate_uid_window_seconds: int = Field(600, ge=1, description="Window of the per-user limit.")


class WeiboPush(BaseModel):
    """A push as Weibo documents it; fields Weibo may add are ignored."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(max_length=50)
    receiver_id: StrictInt = Field(gt=0)
    sender_id: StrictInt = Field(gt=0)
    created_at: str = Field(max_length=50)
    text: str = Field("", max_length=DESCRIPTION_CHARS)
    data: dict[str, Any] | list[Any] = Field(default_factory=dict)


def signature_of(secret: str, timestamp: str, nonce: str) -> str:
    """Weibo's signature: SHA-1 of the app secret, timestamp and nonce sorted and joined."""
    return hashlib.sha1("".join(sorted((secret, timestamp, nonce))).encode()).hexdigest()


def verify(secret: str, *, signature: str, timestamp: str, nonce: str) -> None:
    if (
        not timestamp
        or not nonce
        or not (signature + timestamp + nonce).isascii()  # a forged value may not even be text
        or not hmac.compare_digest(signature_of(secret, timestamp, nonce), signature)
    ):
        raise BadPush("invalid signature", status=401)


def parse(body: bytes) -> WeiboPush:
    """The push in `body`, or BadPush naming the field that is wrong."""
    try:
        return WeiboPush.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadPush(f"not a Weibo push: {where}: {first['msg']}") from exc


def native_id(push: WeiboPush) -> str:
    """The message's name: Weibo gives none, so who sent what when, in a stable digest."""
    content = json.dumps([push.type, push.text, push.data], ensure_ascii=False, sort_keys=True)
    digest = hashlib.sha256(content.encode()).hexdigest()[:24]
    return f"{push.sender_id}:{push.created_at}:{digest}"


def inbound(push: WeiboPush) -> Inbound:
    """The learner's message as careloop keeps it; Unsupported for what it cannot keep."""
    try:
        sent_at = datetime.strptime(push.created_at, WEIBO_TIME)
    except ValueError as exc:
        raise BadPush(f"created_at is not Weibo's time format: {push.created_at!r}") from exc
    data = push.data if isinstance(push.data, dict) else {}
    vfid = str(data.get("vfid", ""))[:100]
    attachments: tuple[Attachment, ...] = ()
    text = push.text.strip()
    if push.type == "text":
        if not text:
            raise Unsupported("empty")
    elif push.type == "image":
        text = text or "[图片]"
        attachments = (
            Attachment(name=f"weibo-image-{vfid}.jpg", content_type="image/jpeg", size=0),
        )
    elif push.type == "voice":
        text = text or "[语音消息]"
        attachments = (
            Attachment(name=f"weibo-voice-{vfid}", content_type="application/octet-stream", size=0),
        )
    else:
        raise Unsupported(push.type)
    if (why := problem(text, multiline=True)) is not None:
        raise Unsupported(f"text {why}")
    return Inbound(
        channel=Channel.WEIBO,
        account=str(push.receiver_id),
        sender=str(push.sender_id),
        native_id=native_id(push),
        text=text,
        attachments=attachments,
        sent_at=sent_at,
    )


def passive_reply(push: WeiboPush, text: str) -> dict[str, Any]:
    """The reply Weibo delivers to the learner, as its push protocol shapes it."""
    return {
        "result": True,
        "sender_id": push.receiver_id,
        "receiver_id": push.sender_id,
        "type": "text",
        "data": quote(json.dumps({"text": text}, ensure_ascii=False)),
    }


def routes(ctx: Context[IntakeSettings], settings: WeiboSettings | None = None) -> APIRouter:
    """`/channels/weibo`: the URL the account's fans-service developer mode names."""
    s = settings or WeiboSettings()
    secret = s.app_secret.get_secret_value()
    # Anyone can read the demo secret here: outside a local run it would let anyone forge pushes.
    unconfigured = secret == DEMO_SECRET and ctx.settings.env != Environment.LOCAL
    limiter = RateLimiter(
        lambda: ctx.redis, scope="intake", timeout_seconds=ctx.settings.redis_timeout_seconds
    )
    router = APIRouter(prefix="/channels/weibo", tags=["channels"])
    Param = Annotated[str, Query(max_length=200)]

    @router.get(
        "",
        response_class=PlainTextResponse,
        summary="Weibo's URL check",
        description="Answers `echostr` when `signature` is right; 401 (plain text) otherwise.",
    )
    async def check(signature: Param, timestamp: Param, nonce: Param, echostr: Param) -> Response:
        if unconfigured:
            return PlainTextResponse(NOT_CONFIGURED, status_code=401)
        try:
            verify(secret, signature=signature, timestamp=timestamp, nonce=nonce)
        except BadPush as exc:
            return PlainTextResponse(str(exc), status_code=exc.status)
        return PlainTextResponse(echostr)

    @router.post(
        "",
        summary="Weibo private-message push",
        description="A text, image or voice message becomes a ticket (or a message on the "
        "learner's open Weibo ticket); the answer is a passive reply with the ticket number. "
        "Events and @mentions: an empty 200. 401 (plain text): a forged signature; 400 (plain "
        "text): a body that is not a Weibo push. Neither stores anything.",
    )
    async def push(
        request: Request, signature: Param = "", timestamp: Param = "", nonce: Param = ""
    ) -> Response:
        started = time.monotonic()
        if unconfigured:
            return PlainTextResponse(NOT_CONFIGURED, status_code=401)
        try:
            verify(secret, signature=signature, timestamp=timestamp, nonce=nonce)
            message = parse(await request.body())
            if message.type not in ANSWERED:
                return PlainTextResponse("")
            try:
                kept = inbound(message)
            except Unsupported as exc:
                text = refusal(str(exc))
            else:
                text = await take(
                    ctx,
                    limiter,
                    kept,
                    learner=Learner(name=PLACEHOLDER_NAME, weibo_uid=kept.sender),
                    desk_url=s.desk_url,
                    per_sender=Limit(
                        "weibo_uid", kept.sender, s.rate_per_uid, s.rate_uid_window_seconds
                    ),
                    deadline=started + s.receipt_wait_seconds,
                )
        except BadPush as exc:
            log.warning("weibo push refused", reason=str(exc))
            return PlainTextResponse(str(exc), status_code=exc.status)
        return JSONResponse(passive_reply(message, text))

    return router
