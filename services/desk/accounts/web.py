"""Who is calling desk: a browser session or an API token, the role it needs, and the CSRF
token every state-changing browser request carries; the login form and logging out.

Pages depend on `require_user(...)`: no session sends the browser to /login and back.
JSON routes depend on `require_api_user(...)`: an `Authorization: Bearer` token or the
session cookie, else 401. Either way a wrong role is 403, and a POST, PUT, PATCH or DELETE
made with the session cookie must carry the session's CSRF token (form field `csrf_token` or
header `X-CSRF-Token`), else 403: a cookie is sent by any site's form, the token only by ours.
A bearer token is never sent by a browser on its own, so token calls need none.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader
from pydantic import BaseModel, ConfigDict

from services.desk.accounts import repo, security
from services.desk.accounts.settings import AccountSettings
from services.desk.settings import DeskSettings
from shared.agents import Role
from shared.forms import FORM_TYPE, FormRefused, read_form
from shared.problems import pages, problems
from shared.ratelimit import client_address
from shared.service import Context

SESSION_COOKIE = "careloop_session"
LOGIN_COOKIE = "careloop_login"  # the login form's own CSRF token, before there is a session
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Language = Literal["zh", "en"]

templates = Environment(
    loader=PackageLoader("services.desk.accounts", "templates"), autoescape=True
)


class User(BaseModel):
    """The person calling; `csrf_token` is their session's (None for an API-token call), for
    the forms and htmx requests a page renders."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    name: str
    email: str | None
    role: Role
    teams: tuple[str, ...]
    language: Language
    csrf_token: str | None = None


class LoginRequired(Exception):
    """A page without a session: the browser goes to the login form, then back to `next`."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class Refused(Exception):
    """A 401 or 403 for a page or an API call, answered as HTML or JSON."""

    def __init__(self, status: int, reason: str, *, page: bool) -> None:
        self.status = status
        self.reason = reason
        self.page = page


@dataclass
class Accounts:
    """What the dependencies need, kept on the app (`app.state.accounts`) by `install`."""

    ctx: Context[DeskSettings]
    settings: AccountSettings

    @property
    def secure(self) -> bool:
        return self.settings.secure(self.ctx.settings.env)


def _accounts(request: Request) -> Accounts:
    accounts: Accounts = request.app.state.accounts
    return accounts


def _user(row: Any, csrf_token: str | None) -> User:
    return User(
        agent_id=row["agent_id"],
        name=row["name"],
        email=row["email"],
        role=Role(row["role"]),
        teams=tuple(row["teams"]),
        language=row["language"],
        csrf_token=csrf_token,
    )


async def session_user(request: Request) -> User | None:
    """The user of the request's session cookie, if it is a live session; its last use is
    noted at most once a minute. Cached on the request."""
    if hasattr(request.state, "session_user"):
        cached: User | None = request.state.session_user
        return cached
    found: User | None = None
    if cookie := request.cookies.get(SESSION_COOKIE):
        accounts = _accounts(request)
        key = security.digest(cookie)
        async with accounts.ctx.pool.acquire() as conn:
            row = await repo.session(conn, key)
            if row is not None:
                now = await conn.fetchval("SELECT now()")
                ends = security.session_expires(
                    created_at=row["session_created_at"],
                    last_seen_at=row["last_seen_at"],
                    idle=accounts.settings.idle,
                    absolute=accounts.settings.absolute,
                )
                if ends <= now:
                    await repo.end_session(conn, key)
                else:
                    if (now - row["last_seen_at"]).total_seconds() > 60:
                        await repo.touch_session(conn, key)
                    found = _user(row, row["csrf_token"])
    request.state.session_user = found
    return found


async def csrf_protect(request: Request, user: User) -> None:
    """A state-changing request made with `user`'s session must carry its CSRF token, in the
    `X-CSRF-Token` header or the URL-encoded form's `csrf_token` field; else 403."""
    if request.method not in UNSAFE or user.csrf_token is None:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(FORM_TYPE):
        try:
            given = (await read_form(request)).get(CSRF_FIELD)
        except FormRefused:
            given = None
    if not security.same_secret(given, user.csrf_token):
        raise Refused(403, "missing or wrong CSRF token: reload the page and try again", page=True)


def _allowed(user: User, roles: tuple[Role, ...], *, page: bool) -> User:
    if roles and user.role not in roles:
        raise Refused(403, f"this needs the role {' or '.join(r.value for r in roles)}", page=page)
    return user


def require_user(*roles: Role) -> Callable[[Request], Awaitable[User]]:
    """A page's dependency: the session's user in one of `roles` (any role when none given).
    No session: 303 to /login?next=<this page>; a wrong role or CSRF token: a 403 page."""

    async def page_user(request: Request) -> User:
        user = await session_user(request)
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target)
        await csrf_protect(request, user)
        return _allowed(user, roles, page=True)

    return page_user


def require_api_user(*roles: Role) -> Callable[..., Awaitable[User]]:
    """A JSON route's dependency: the user of the bearer token, else of the session cookie
    (with its CSRF token on a state-changing request), in one of `roles` (any when none
    given). Neither: 401; a wrong role or CSRF token: 403."""

    async def api_user(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> User:
        if authorization is not None:
            if not authorization.startswith("Bearer "):
                raise Refused(401, "use Authorization: Bearer <token>", page=False)
            async with _accounts(request).ctx.pool.acquire() as conn:
                row = await repo.agent_by_token(
                    conn, security.digest(authorization.removeprefix("Bearer "))
                )
            if row is None:
                raise Refused(401, "unknown or revoked token", page=False)
            return _allowed(_user(row, None), roles, page=False)
        user = await session_user(request)
        if user is None:
            raise Refused(401, "log in, or send Authorization: Bearer <token>", page=False)
        try:
            await csrf_protect(request, user)
        except Refused as exc:
            raise Refused(403, exc.reason, page=False) from exc
        return _allowed(user, roles, page=False)

    return api_user


# ---- the login form ------------------------------------------------------------------------

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "登录 careloop 工作台",
        "login": "用户名或邮箱",
        "password": "密码",
        "submit": "登录",
        "other": "English",
        "wrong": "用户名或密码错误。",
        "disabled": "该账号已停用，请联系管理员。",
        "locked": "登录失败次数过多，请 {minutes} 分钟后再试。",
        "expired": "页面已过期，请重新登录。",
        "form": "无法读取表单，请重试。",
    },
    "en": {
        "title": "Log in to the careloop workspace",
        "login": "User name or e-mail",
        "password": "Password",
        "submit": "Log in",
        "other": "中文",
        "wrong": "Wrong user name or password.",
        "disabled": "This account is disabled; ask an administrator.",
        "locked": "Too many failed logins; try again in {minutes} minutes.",
        "expired": "The page expired; please log in again.",
        "form": "The form could not be read; please try again.",
    },
}


def pick_language(lang: str | None, accept_language: str | None) -> Language:
    """`lang` when it is zh or en; else whichever of the two the browser names first; zh."""
    if lang in ("zh", "en"):
        return lang  # type: ignore[return-value]
    for part in (accept_language or "").lower().split(","):
        tag = part.split(";")[0].strip()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "zh"


def login_page(
    *,
    language: Language,
    next_path: str,
    csrf_token: str,
    secure: bool,
    status: int = 200,
    error: str | None = None,
    login: str = "",
) -> HTMLResponse:
    text = TEXT[language]
    response = HTMLResponse(
        templates.get_template("login.html.j2").render(
            t=text,
            language=language,
            other="en" if language == "zh" else "zh",
            next_path=next_path,
            csrf_token=csrf_token,
            error=error,
            login=login,
        ),
        status_code=status,
    )
    response.set_cookie(
        LOGIN_COOKIE, csrf_token, httponly=True, samesite="lax", secure=secure, path="/login"
    )
    response.headers["Cache-Control"] = "no-store"
    # Never inside another site's frame, where a click could be stolen.
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


LOGIN_FORM = {
    "required": True,
    "content": {
        FORM_TYPE: {
            "schema": {
                "type": "object",
                "required": ["login", "password", "csrf_token"],
                "properties": {
                    "login": {"type": "string", "description": "user id or e-mail"},
                    "password": {"type": "string"},
                    "csrf_token": {"type": "string"},
                    "next": {"type": "string"},
                    "lang": {"type": "string", "enum": ["zh", "en"]},
                },
            }
        }
    },
}


SessionUser = Annotated[User, Depends(require_user())]


def routes(accounts: Accounts) -> APIRouter:
    router = APIRouter(tags=["accounts"])
    ctx, settings = accounts.ctx, accounts.settings

    @router.get(
        "/login",
        response_class=HTMLResponse,
        summary="The login form (zh/en)",
        responses=problems(503),
    )
    async def login_form(
        request: Request,
        next_path: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
        lang: Annotated[str | None, Query(max_length=10)] = None,
        accept_language: Annotated[str | None, Header(max_length=500)] = None,
    ) -> HTMLResponse:
        return login_page(
            language=pick_language(lang, accept_language),
            next_path=security.local_path(next_path),
            csrf_token=security.new_secret(),
            secure=accounts.secure,
        )

    @router.post(
        "/login",
        response_class=HTMLResponse,
        summary="Log in: a session cookie and 303 to `next`",
        description="Wrong name or password: 401; a form without the login page's CSRF "
        "token: 403; too many failed logins for the name or from the address within "
        "CARELOOP_DESK_LOCKOUT_MINUTES: 429. Every refusal is the form again, with why.",
        status_code=303,
        responses={**pages(400, 401, 403, 415, 429), **problems(413, 503)},
        openapi_extra={"requestBody": LOGIN_FORM},
    )
    async def login(request: Request) -> Response:
        accept = request.headers.get("accept-language")
        try:
            form = await read_form(request)
        except FormRefused as exc:
            return login_page(
                language=pick_language(None, accept),
                next_path="/",
                csrf_token=security.new_secret(),
                secure=accounts.secure,
                status=exc.status,
                error=TEXT[pick_language(None, accept)]["form"],
            )
        language = pick_language(form.get("lang"), accept)
        text = TEXT[language]
        next_path = security.local_path(form.get("next"))
        name = form.get("login", "").strip().lower()[:320]
        if not name.isprintable():  # a NUL or a control character names nobody
            name = ""

        def again(status: int, error: str) -> HTMLResponse:
            return login_page(
                language=language,
                next_path=next_path,
                csrf_token=security.new_secret(),
                secure=accounts.secure,
                status=status,
                error=error,
                login=name,
            )

        if not security.same_secret(form.get(CSRF_FIELD), request.cookies.get(LOGIN_COOKIE, "")):
            return again(403, text["expired"])
        address = client_address(request, trusted_proxies=settings.trusted_proxies)
        async with ctx.pool.acquire() as conn:
            row = await repo.login_user(conn, name) if name else None
            # Failures count against the account whichever of its names (id, e-mail) was typed.
            key = row["agent_id"] if row is not None else name
            by_login, by_address = await repo.recent_failures(
                conn,
                login=key,
                address=address,
                window=settings.window,
                limit=max(settings.login_failures_per_account, settings.login_failures_per_address),
            )
            now = await conn.fetchval("SELECT now()")
            until = max(
                (
                    t
                    for t in (
                        security.locked_until(
                            by_login,
                            limit=settings.login_failures_per_account,
                            window=settings.window,
                        ),
                        security.locked_until(
                            by_address,
                            limit=settings.login_failures_per_address,
                            window=settings.window,
                        ),
                    )
                    if t is not None
                ),
                default=None,
            )
            if until is not None and until > now:
                minutes = max(1, round((until - now).total_seconds() / 60 + 0.5))
                response = again(429, text["locked"].format(minutes=minutes))
                response.headers["Retry-After"] = str(int((until - now).total_seconds()) + 1)
                return response
        stored = row["password_hash"] if row is not None else None
        ok = await asyncio.to_thread(security.verify_password, stored, form.get("password", ""))
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not ok or row is None:
                await repo.fail_login(conn, login=key, address=address, window=settings.window)
                return again(401, text["wrong"])
            if not row["active"]:
                return again(403, text["disabled"])
            await repo.forget_failures(conn, key)
            if stored is not None and security.needs_rehash(stored):
                rehashed = await asyncio.to_thread(security.hash_password, form.get("password", ""))
                await conn.execute(
                    "UPDATE agents SET password_hash = $2 WHERE agent_id = $1",
                    row["agent_id"],
                    rehashed,
                )
            session_id = security.new_secret()
            await repo.start_session(
                conn,
                agent_id=row["agent_id"],
                session_id=session_id,
                csrf_token=security.new_secret(),
                address=address,
            )
        done = RedirectResponse(next_path, status_code=303)
        done.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=int(settings.absolute.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=accounts.secure,
            path="/",
        )
        done.delete_cookie(LOGIN_COOKIE, path="/login")
        return done

    @router.post(
        "/logout",
        summary="End this session; 303 to the login form",
        status_code=303,
        responses={**pages(403), **problems(503)},
    )
    async def logout(request: Request, user: SessionUser) -> Response:
        return await _logout(request, user, everywhere=False)

    @router.post(
        "/logout-everywhere",
        summary="End every session of this user (their API tokens stay); 303 to the login form",
        status_code=303,
        responses={**pages(403), **problems(503)},
    )
    async def logout_everywhere(request: Request, user: SessionUser) -> Response:
        return await _logout(request, user, everywhere=True)

    async def _logout(request: Request, user: User, *, everywhere: bool) -> Response:
        key = security.digest(request.cookies[SESSION_COOKIE])
        async with ctx.pool.acquire() as conn, conn.transaction():
            if everywhere:
                ended = await repo.end_sessions(conn, user.agent_id)
                await repo.audit(
                    conn,
                    actor=user.agent_id,
                    action="logout_everywhere",
                    agent_id=user.agent_id,
                    detail={"sessions": ended},
                )
            else:
                await repo.end_session(conn, key)
        response = RedirectResponse(f"/login?lang={user.language}", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=accounts.secure, httponly=True)
        return response

    return router
