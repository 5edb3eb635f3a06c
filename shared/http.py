"""HTTP refusals as JSON that names what is wrong, never a 500 (for every service's routes).

FastAPI echoes the input in a 422 (which fails to encode when it holds a lone surrogate, and
repeats personal data), answers a body over the limit in plain text, and says only "error
parsing the body" for bytes that are not UTF-8. `install` replaces those three answers.
"""

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

_MAX_PROBLEMS = 100


class Utf8JsonRoute(APIRoute):
    """A route whose body must be UTF-8: anything else is a 400 saying where it breaks."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            body = await request.body()
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                return JSONResponse(
                    {
                        "detail": f"the body is not UTF-8: byte 0x{body[exc.start]:02X} "
                        f"at position {exc.start}"
                    },
                    status_code=400,
                )
            return await handler(request)

        return checked


async def field_problems(_: Request, exc: Exception) -> JSONResponse:
    """422 naming each field and its problem, without echoing the input back."""
    assert isinstance(exc, RequestValidationError)
    found: Sequence[Any] = exc.errors()
    detail = []
    for err in found[:_MAX_PROBLEMS]:
        msg = str(err.get("msg", ""))
        if err.get("type") == "json_invalid" and (why := (err.get("ctx") or {}).get("error")):
            msg = f"{msg}: {why}"
        detail.append(
            {
                "loc": [p if isinstance(p, int) else _printable(str(p)) for p in err["loc"]],
                "msg": _printable(msg),
                "type": str(err.get("type", "value_error")),
            }
        )
    return JSONResponse({"detail": detail}, status_code=422)


def _printable(text: str, *, limit: int = 300) -> str:
    """`text` as valid UTF-8 (lone surrogates as `\\udXXX`), at most `limit` characters."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


class JsonBodyLimit:
    """413 as JSON for a body whose Content-Length is over the limit, before it is read."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length", "")
            if length.isascii() and length.isdigit() and int(length) > self.max_body_bytes:
                response = JSONResponse(
                    {"detail": f"the body is larger than {self.max_body_bytes} bytes"},
                    status_code=413,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI, *, max_body_bytes: int) -> None:
    """JSON for 422 (without the input) and for a declared length over the limit; routers
    made with `route_class=Utf8JsonRoute, max_body_size=max_body_bytes` add the other two."""
    app.add_exception_handler(RequestValidationError, field_problems)
    # FastAPI's app-wide check would answer a declared length in plain text first; each
    # router's own check still counts the bytes of a body without one (and answers JSON).
    app.max_body_size = None
    app.add_middleware(JsonBodyLimit, max_body_bytes=max_body_bytes)
