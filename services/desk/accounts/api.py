"""The account API: admins create, edit, disable users and reset their passwords;
everyone changes their own password and language and keeps their own API tokens.

Every change is audited (desk.account_audit) and announced as `person.changed`.
"""

import asyncio
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.desk.accounts import repo, security
from services.desk.accounts.web import (
    SESSION_COOKIE,
    Accounts,
    Language,
    User,
    require_api_user,
)
from shared.agents import AGENT_ID_PATTERN, TEAM_PATTERN, Role
from shared.emails import EmailAddress
from shared.http import Utf8JsonRoute
from shared.problems import problems
from shared.text import Line

Password = Annotated[str, Field(min_length=security.MIN_PASSWORD, max_length=security.MAX_PASSWORD)]
Team = Annotated[str, Field(pattern=TEAM_PATTERN)]
AgentIdInPath = Annotated[str, Path(pattern=AGENT_ID_PATTERN)]


class Account(BaseModel):
    agent_id: str
    name: str
    email: str | None
    role: Role
    teams: list[str]
    language: Language
    active: bool
    created_at: datetime
    updated_at: datetime


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agent_id: str = Field(pattern=AGENT_ID_PATTERN, description="Also the login name.")
    name: Line = Field(min_length=1, max_length=200)
    email: EmailAddress | None = Field(None, description="Another login name; unique.")
    role: Role = Role.AGENT
    teams: list[Team] = Field(default_factory=list, max_length=50)
    language: Language = "zh"
    password: Password = Field(description="Their first password; they change it.")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Line | None = Field(None, min_length=1, max_length=200)
    email: EmailAddress | None = None
    role: Role | None = None
    teams: list[Team] | None = Field(None, max_length=50)
    active: bool | None = Field(None, description="false: disabled, their sessions end.")


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Password


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: str = Field(max_length=security.MAX_PASSWORD)
    new: Password


class LanguageChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Language


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Line = Field(min_length=1, max_length=100, description="What it is for.")


class TokenOut(BaseModel):
    token_id: UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewToken(TokenOut):
    token: str = Field(description="Shown this once: only its SHA-256 is kept.")


class AuditEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]


def _account(row: Any) -> Account:
    return Account(**{**dict(row), "teams": list(row["teams"])})


# ---- what an admin does to a user: the JSON API and the People pages both call these --------


async def create_account(pool: asyncpg.Pool, *, actor: str, body: NewUser) -> Account:
    """Create the user `body` describes; HTTPException 409 when the id or e-mail is taken."""
    hashed = await asyncio.to_thread(security.hash_password, body.password)
    async with pool.acquire() as conn, conn.transaction():
        if not await repo.create_user(
            conn,
            actor=actor,
            agent_id=body.agent_id,
            name=body.name,
            email=body.email,
            role=body.role,
            teams=body.teams,
            language=body.language,
            password_hash=hashed,
        ):
            raise HTTPException(409, "a user with this id or e-mail exists")
        row = await repo.user(conn, body.agent_id)
    return _account(row)


async def change_account(
    pool: asyncpg.Pool, *, actor: str, agent_id: str, body: UserChange
) -> Account:
    """Apply the fields set in `body`; HTTPException 409 for nothing to change, an admin's own
    role or active flag (no one locks the last admin out) or a taken e-mail; 422 for a null
    that cannot be; 404 for no such user."""
    fields = body.model_dump(exclude_unset=True)
    if not fields:
        raise HTTPException(409, "nothing to change")
    if agent_id == actor and {"role", "active"} & fields.keys():
        raise HTTPException(409, "admins cannot change their own role or disable themselves")
    if fields.get("role") is not None:
        fields["role"] = fields["role"].value
    if None in (fields.get(k, "") for k in ("name", "role", "teams", "active")):
        raise HTTPException(422, "name, role, teams and active cannot be null")
    async with pool.acquire() as conn, conn.transaction():
        try:
            row = await repo.update_user(conn, actor=actor, agent_id=agent_id, fields=fields)
        except repo.EmailTaken:
            raise HTTPException(409, "another user has this e-mail") from None
    if row is None:
        raise HTTPException(404, "no such user")
    return _account(row)


async def set_password(
    pool: asyncpg.Pool, *, actor: str, agent_id: str, body: PasswordReset
) -> None:
    """Reset the user's password, ending their sessions; HTTPException 404 for no such user."""
    hashed = await asyncio.to_thread(security.hash_password, body.password)
    async with pool.acquire() as conn, conn.transaction():
        if not await repo.set_password(conn, actor=actor, agent_id=agent_id, password_hash=hashed):
            raise HTTPException(404, "no such user")


def routes(accounts: Accounts) -> APIRouter:
    router = APIRouter(
        route_class=Utf8JsonRoute,
        tags=["accounts"],
        max_body_size=accounts.ctx.settings.http_max_body_bytes,
    )
    ctx = accounts.ctx
    Anyone = Annotated[User, Depends(require_api_user())]
    Admin = Annotated[User, Depends(require_api_user(Role.ADMIN))]
    Overseer = Annotated[User, Depends(require_api_user(Role.SUPERVISOR, Role.ADMIN))]

    @router.get(
        "/v1/users", summary="Every user (supervisors, admins)", responses=problems(401, 403, 503)
    )
    async def list_users(_: Overseer) -> list[Account]:
        async with ctx.pool.acquire() as conn:
            return [_account(r) for r in await repo.users(conn)]

    @router.post(
        "/v1/users",
        status_code=201,
        summary="Create a user (admins)",
        description="409 when the id or e-mail is taken.",
        responses=problems(400, 401, 403, 409, 413, 503),
    )
    async def create_user(body: NewUser, admin: Admin) -> Account:
        return await create_account(ctx.pool, actor=admin.agent_id, body=body)

    @router.get(
        "/v1/users/{agent_id}",
        summary="One user (supervisors, admins)",
        responses=problems(401, 403, 404, 503),
    )
    async def get_user(agent_id: AgentIdInPath, _: Overseer) -> Account:
        async with ctx.pool.acquire() as conn:
            row = await repo.user(conn, agent_id)
        if row is None:
            raise HTTPException(404, "no such user")
        return _account(row)

    @router.patch(
        "/v1/users/{agent_id}",
        summary="Change a user's name, e-mail, role, teams; disable or enable them (admins)",
        description="409: an admin's own role or active flag (so that no one locks the last "
        "admin out), or an e-mail another user has.",
        responses=problems(400, 401, 403, 404, 409, 413, 503),
    )
    async def change_user(agent_id: AgentIdInPath, body: UserChange, admin: Admin) -> Account:
        return await change_account(ctx.pool, actor=admin.agent_id, agent_id=agent_id, body=body)

    @router.put(
        "/v1/users/{agent_id}/password",
        status_code=204,
        summary="Reset a user's password (admins); their sessions end",
        responses=problems(400, 401, 403, 404, 413, 503),
    )
    async def reset_password(agent_id: AgentIdInPath, body: PasswordReset, admin: Admin) -> None:
        await set_password(ctx.pool, actor=admin.agent_id, agent_id=agent_id, body=body)

    @router.get(
        "/v1/users/{agent_id}/audit",
        summary="Every change to a user's account, oldest first (admins)",
        responses=problems(401, 403, 503),
    )
    async def audit_trail(agent_id: AgentIdInPath, _: Admin) -> list[AuditEntry]:
        async with ctx.pool.acquire() as conn:
            return [AuditEntry(**dict(r)) for r in await repo.audit_trail(conn, agent_id)]

    @router.delete(
        "/v1/users/{agent_id}/tokens/{token_id}",
        status_code=204,
        summary="Revoke a user's API token (admins)",
        responses=problems(401, 403, 404, 503),
    )
    async def revoke_users_token(agent_id: AgentIdInPath, token_id: UUID, admin: Admin) -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not await repo.revoke_token(
                conn, actor=admin.agent_id, agent_id=agent_id, token_id=token_id
            ):
                raise HTTPException(404, "no such unrevoked token")

    # ---- one's own account ---------------------------------------------------------------

    @router.put(
        "/v1/account/password",
        status_code=204,
        summary="Change one's own password; one's other sessions end",
        description="403 when `current` is not the password.",
        responses=problems(400, 401, 403, 413, 503),
    )
    async def change_password(body: PasswordChange, user: Anyone, request: Request) -> None:
        async with ctx.pool.acquire() as conn:
            stored = await repo.password_hash(conn, user.agent_id)
        if not await asyncio.to_thread(security.verify_password, stored, body.current):
            raise HTTPException(403, "the current password is wrong")
        hashed = await asyncio.to_thread(security.hash_password, body.new)
        cookie = request.cookies.get(SESSION_COOKIE) if user.csrf_token else None
        async with ctx.pool.acquire() as conn, conn.transaction():
            await repo.set_password(
                conn,
                actor=user.agent_id,
                agent_id=user.agent_id,
                password_hash=hashed,
                keep_session=security.digest(cookie) if cookie else None,
            )

    @router.put(
        "/v1/account/language",
        summary="Choose the workspace's language",
        responses=problems(400, 401, 403, 413, 503),
    )
    async def change_language(body: LanguageChange, user: Anyone) -> Account:
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await repo.update_user(
                conn,
                actor=user.agent_id,
                agent_id=user.agent_id,
                fields={"language": body.language},
            )
        return _account(row)

    @router.get(
        "/v1/account/tokens",
        summary="One's API tokens (never their values)",
        responses=problems(401, 503),
    )
    async def my_tokens(user: Anyone) -> list[TokenOut]:
        async with ctx.pool.acquire() as conn:
            return [TokenOut(**dict(r)) for r in await repo.tokens(conn, user.agent_id)]

    @router.post(
        "/v1/account/tokens",
        status_code=201,
        summary="A new API token: its value is shown in this answer only",
        responses=problems(400, 401, 403, 413, 503),
    )
    async def new_token(body: TokenIn, user: Anyone, response: Response) -> NewToken:
        token = security.new_secret()
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await repo.add_token(conn, agent_id=user.agent_id, name=body.name, token=token)
        response.headers["Cache-Control"] = "no-store"
        return NewToken(**dict(row), token=token)

    @router.delete(
        "/v1/account/tokens/{token_id}",
        status_code=204,
        summary="Revoke one of one's API tokens: it stops working at once",
        responses=problems(401, 403, 404, 503),
    )
    async def revoke_token(token_id: UUID, user: Anyone) -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not await repo.revoke_token(
                conn, actor=user.agent_id, agent_id=user.agent_id, token_id=token_id
            ):
                raise HTTPException(404, "no such unrevoked token")

    return router
