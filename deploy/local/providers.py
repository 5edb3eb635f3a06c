"""One local HTTP server speaking the messaging providers' APIs that notify sends through, so a
local run and the tests answer learners on WeChat, Weibo and SMS without the internet.

    python -m deploy.local.providers --port 18090

It accepts the credentials notify is configured with (the same CARELOOP_WECHAT_*, _WEIBO_*,
_SMS_* settings) and records every message it accepted; read them at `GET /_sent`.

WeChat (official account API, as documented by WeChat; errors are HTTP 200 with `errcode`):
    GET  /cgi-bin/token?grant_type=client_credential&appid=…&secret=…
         -> {"access_token": "…", "expires_in": 7200}
         | 40002 invalid grant_type, 40013 invalid appid, 40125 invalid appsecret
    POST /cgi-bin/message/custom/send?access_token=…
         {"touser": "<openid>", "msgtype": "text", "text": {"content": "…"}}
         -> {"errcode": 0, "errmsg": "ok"}
         | 41001 access_token missing, 40001 invalid (or replaced) token, 42001 token expired,
           47001 body not JSON, 40003 invalid openid, 40008 invalid message type,
           44004 empty content, 45002 content over 2,048 bytes,
           45015 the learner has not written within 48 hours
Weibo (fans-service platform; errors are HTTP 400/403 with `error_code`):
    POST /2/messages/reply.json   form: access_token, type=text, data=<URL-encoded JSON
         {"text": "…"}>, receiver_id, save_sender_box
         -> {"id": …, "idstr": "…", "created_at": "…", "text": "…", "sender_id": …,
             "recipient_id": …}
         | 21332 invalid_access_token, 10008 param error (receiver_id, type, data, text of 300
           characters or more), 21602 no quota (the learner has not written within 48 hours;
           Weibo documents the rule, not its code: this is the local server's)
SMS (a generic HTTP SMS API, careloop's own design; see services/notify/channels/sms.py):
    POST /v1/sms/messages   Authorization: Bearer <key>, Idempotency-Key: <key>
         {"to": "+8613812345678", "text": "…", "sender_id": "careloop"}
         -> 200 {"id": "sms_…", "to": "…", "segments": 2, "encoding": "UCS-2", "status": "queued"}
            (the same Idempotency-Key again: the same answer, nothing sent twice)
         | 401 unauthorized, 400 invalid_request, 422 invalid_number (not E.164),
           422 empty_text, 422 text_too_long (more than 10 segments); body
           {"error": {"code": "…", "message": "…"}}
Local only:
    GET  /_sent[?channel=wechat|weibo|sms][&to=…]   every accepted message, oldest first
    POST /_control   {"expire_wechat_tokens": true, "wechat_out_of_window": ["<openid>"],
                      "weibo_no_quota": ["<uid>"]}   make the next calls fail as WeChat/Weibo
                      would after two hours or 48 hours
"""

import argparse
import itertools
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import unquote

import uvicorn
from fastapi import FastAPI, Form, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.notify.channels.sms import E164, SmsSettings, is_gsm, segments
from services.notify.channels.wechat import MAX_TEXT_BYTES, WeChatApiSettings
from services.notify.channels.weibo import WeiboApiSettings

OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
SMS_MAX_SEGMENTS = 10
WEIBO_MAX_CHARS = 299
WEIBO_ACCOUNT_UID = 5_000_000_001  # the official account's own uid, as the sender


@dataclass
class Providers:
    """What the providers remember: issued tokens, who is out of reach, what was sent."""

    wechat_app_id: str
    wechat_app_secret: str
    weibo_access_token: str
    sms_api_key: str
    wechat_token_ttl: int = 7200
    wechat_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    wechat_out_of_window: set[str] = field(default_factory=set)
    weibo_no_quota: set[str] = field(default_factory=set)
    sms_by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(4_100_000_000_001))

    def record(self, channel: str, *, to: str, text: str, message_id: str) -> None:
        self.sent.append(
            {
                "channel": channel,
                "id": message_id,
                "to": to,
                "text": text,
                "at": datetime.now(UTC).isoformat(),
            }
        )


class Control(BaseModel):
    expire_wechat_tokens: bool = False
    wechat_out_of_window: list[str] = []
    weibo_no_quota: list[str] = []


def _wechat(errcode: int, errmsg: str) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "errmsg": errmsg})


def _weibo(status: int, error_code: int, error: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_code": error_code, "request": "/2/messages/reply.json"},
        status_code=status,
    )


def _sms(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(providers: Providers) -> FastAPI:
    app = FastAPI(title="careloop local providers (WeChat, Weibo, SMS)")

    @app.get("/cgi-bin/token")
    async def wechat_token(grant_type: str = "", appid: str = "", secret: str = "") -> JSONResponse:
        if grant_type != "client_credential":
            return _wechat(40002, "invalid grant_type")
        if appid != providers.wechat_app_id:
            return _wechat(40013, "invalid appid")
        if not secrets.compare_digest(secret, providers.wechat_app_secret):
            return _wechat(40125, "invalid appsecret")
        token = secrets.token_urlsafe(96)
        providers.wechat_tokens[token] = time.monotonic() + providers.wechat_token_ttl
        return JSONResponse({"access_token": token, "expires_in": providers.wechat_token_ttl})

    @app.post("/cgi-bin/message/custom/send")
    async def wechat_send(request: Request, access_token: str = "") -> JSONResponse:
        if not access_token:
            return _wechat(41001, "access_token missing")
        expires = providers.wechat_tokens.get(access_token)
        if expires is None:
            return _wechat(40001, "invalid credential, access_token is invalid or not latest")
        if time.monotonic() >= expires:
            return _wechat(42001, "access_token expired")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _wechat(47001, "data format error")
        if not isinstance(body, dict):
            return _wechat(47001, "data format error")
        touser = body.get("touser")
        if not isinstance(touser, str) or not OPENID.match(touser):
            return _wechat(40003, "invalid openid")
        if body.get("msgtype") != "text":
            return _wechat(40008, "invalid message type")
        text = body.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str) or not content.strip():
            return _wechat(44004, "empty content")
        if len(content.encode()) > MAX_TEXT_BYTES:
            return _wechat(45002, "content size out of limit")
        if touser in providers.wechat_out_of_window:
            return _wechat(45015, "response out of time limit or subscription is canceled")
        providers.record("wechat", to=touser, text=content, message_id=str(next(providers.ids)))
        return _wechat(0, "ok")

    @app.post("/2/messages/reply.json")
    async def weibo_reply(
        access_token: Annotated[str, Form()] = "",
        type: Annotated[str, Form()] = "",
        data: Annotated[str, Form()] = "",
        receiver_id: Annotated[str, Form()] = "",
    ) -> JSONResponse:
        if not secrets.compare_digest(access_token, providers.weibo_access_token):
            return _weibo(403, 21332, "invalid_access_token")
        if not receiver_id.isdigit():
            return _weibo(400, 10008, "param error, receiver_id must be a uid")
        if type != "text":
            return _weibo(400, 10008, "param error, type must be text")
        try:
            text = json.loads(unquote(data)).get("text")
        except (ValueError, AttributeError):
            return _weibo(400, 10008, "param error, data must be URL-encoded JSON")
        if not isinstance(text, str) or not text.strip():
            return _weibo(400, 10008, "param error, text is empty")
        if len(text) > WEIBO_MAX_CHARS:
            return _weibo(400, 10008, "param error, text must be less than 300 characters")
        if receiver_id in providers.weibo_no_quota:
            return _weibo(400, 21602, "no quota for this user")
        message_id = next(providers.ids)
        providers.record("weibo", to=receiver_id, text=text, message_id=str(message_id))
        return JSONResponse(
            {
                "id": message_id,
                "idstr": str(message_id),
                "created_at": datetime.now(UTC).strftime("%a %b %d %H:%M:%S +0000 %Y"),
                "text": text,
                "sender_id": WEIBO_ACCOUNT_UID,
                "recipient_id": int(receiver_id),
            }
        )

    @app.post("/v1/sms/messages")
    async def sms_send(
        request: Request,
        authorization: Annotated[str, Header()] = "",
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(key, providers.sms_api_key):
            return _sms(401, "unauthorized", "missing or wrong API key (Authorization: Bearer …)")
        if idempotency_key and idempotency_key in providers.sms_by_key:
            return JSONResponse(providers.sms_by_key[idempotency_key])
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _sms(400, "invalid_request", "the body is not JSON")
        if not isinstance(body, dict):
            return _sms(400, "invalid_request", "the body is not a JSON object")
        to, text = body.get("to"), body.get("text")
        if not isinstance(to, str) or not E164.match(to):
            return _sms(422, "invalid_number", "`to` must be an E.164 number, e.g. +8613812345678")
        if not isinstance(text, str) or not text.strip():
            return _sms(422, "empty_text", "`text` is empty")
        parts = segments(text)
        if parts > SMS_MAX_SEGMENTS:
            return _sms(
                422, "text_too_long", f"{parts} segments; at most {SMS_MAX_SEGMENTS} are sent"
            )
        message_id = f"sms_{next(providers.ids)}"
        answer = {
            "id": message_id,
            "to": to,
            "segments": parts,
            "encoding": "GSM-7" if is_gsm(text) else "UCS-2",
            "status": "queued",
        }
        if idempotency_key:
            providers.sms_by_key[idempotency_key] = answer
        providers.record("sms", to=to, text=text, message_id=message_id)
        return JSONResponse(answer)

    @app.get("/_sent")
    async def sent(
        channel: Annotated[str | None, Query()] = None, to: Annotated[str | None, Query()] = None
    ) -> list[dict[str, Any]]:
        return [
            m
            for m in providers.sent
            if (channel is None or m["channel"] == channel) and (to is None or m["to"] == to)
        ]

    @app.post("/_control")
    async def control(change: Control) -> dict[str, str]:
        if change.expire_wechat_tokens:
            providers.wechat_tokens = dict.fromkeys(providers.wechat_tokens, 0.0)
        providers.wechat_out_of_window.update(change.wechat_out_of_window)
        providers.weibo_no_quota.update(change.weibo_no_quota)
        return {"status": "ok"}

    return app


def from_settings() -> Providers:
    """Providers accepting the credentials notify is configured with."""
    return Providers(
        wechat_app_id=WeChatApiSettings().app_id,
        wechat_app_secret=WeChatApiSettings().app_secret.get_secret_value(),
        weibo_access_token=WeiboApiSettings().access_token.get_secret_value(),
        sms_api_key=SmsSettings().api_key.get_secret_value(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument(
        "--wechat-token-ttl", type=int, default=7200, help="Seconds an access token is valid."
    )
    args = parser.parse_args()
    providers = from_settings()
    providers.wechat_token_ttl = args.wechat_token_ttl
    uvicorn.run(create_app(providers), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
