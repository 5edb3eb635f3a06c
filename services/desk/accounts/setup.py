"""Accounts on desk's app: the seed's people as users, the login routes, the account API."""

import asyncio
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from services.desk.accounts import api, repo, security
from services.desk.accounts.settings import AccountSettings
from services.desk.accounts.web import (
    Accounts,
    LoginRequired,
    Refused,
    pick_language,
    routes,
    templates,
)
from services.desk.settings import DeskSettings
from shared.agents import load_agents
from shared.service import Context


async def seed_users(ctx: Context[DeskSettings]) -> None:
    """The agents file's people who are not users yet: their seed token becomes their first
    API token, their seed password (local runs) their password."""
    seeds = load_agents(ctx.settings).agents
    async with ctx.pool.acquire() as conn:
        known = {r["agent_id"] for r in await repo.users(conn)}
    hashes = {
        a.id: await asyncio.to_thread(security.hash_password, a.password)
        for a in seeds
        if a.id not in known and a.password is not None
    }
    async with ctx.pool.acquire() as conn, conn.transaction():
        await repo.seed(conn, seeds, hashes)


def install(app: FastAPI, ctx: Context[DeskSettings]) -> None:
    """The accounts of desk on `app`: the dependencies' state, the login and logout routes,
    the account API, and the answers to LoginRequired and Refused."""
    accounts = Accounts(ctx=ctx, settings=AccountSettings())
    app.state.accounts = accounts
    app.include_router(routes(accounts))
    app.include_router(api.routes(accounts))

    async def to_login(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='')}", status_code=303)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if exc.page:
            user = getattr(request.state, "session_user", None)
            language = user.language if user else pick_language(None, None)
            return HTMLResponse(
                templates.get_template("refused.html.j2").render(
                    reason=exc.reason, language=language
                ),
                status_code=exc.status,
                headers=headers,
            )
        return JSONResponse({"detail": exc.reason}, status_code=exc.status, headers=headers)

    app.add_exception_handler(LoginRequired, to_login)
    app.add_exception_handler(Refused, refused)
