"""Accounts in desk's schema: users (the agents table), API tokens, sessions, failed logins
and the audit of every change. Each change to a person is audited and announced
(`person.changed`, through the outbox) in the caller's transaction."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from uuid6 import uuid7

from services.desk.accounts.security import digest
from shared import outbox
from shared.agents import AgentSeed, Role
from shared.events import PersonChanged, new_event, now

PRODUCER = "desk"


class EmailTaken(Exception):
    """Another user has this e-mail."""


USER_COLUMNS = "agent_id, name, email, role, teams, language, active, created_at, updated_at"


async def user(conn: asyncpg.Connection, agent_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM agents WHERE agent_id = $1", agent_id)


async def users(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {USER_COLUMNS} FROM agents ORDER BY agent_id")


async def last_logins(conn: asyncpg.Connection) -> dict[str, datetime]:
    """When each user last logged in, from the audit (a user who never did is absent)."""
    rows = await conn.fetch(
        """
        SELECT a.agent_id, l.at FROM agents a
        CROSS JOIN LATERAL (SELECT at FROM account_audit u
                            WHERE u.agent_id = a.agent_id AND u.action = 'login'
                            ORDER BY u.id DESC LIMIT 1) l
        """
    )
    return {r["agent_id"]: r["at"] for r in rows}


async def login_user(conn: asyncpg.Connection, login: str) -> asyncpg.Record | None:
    """The user whose id or e-mail is `login` (case-insensitive), with their password hash."""
    return await conn.fetchrow(
        f"SELECT {USER_COLUMNS}, password_hash FROM agents "
        "WHERE agent_id = lower($1) OR lower(email) = lower($1)",
        login,
    )


async def password_hash(conn: asyncpg.Connection, agent_id: str) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT password_hash FROM agents WHERE agent_id = $1", agent_id
    )
    return value


async def seed(
    conn: asyncpg.Connection, agents: Sequence[AgentSeed], hashes: dict[str, str]
) -> int:
    """Users the seed file names that desk does not have yet, with the seed's token as their
    first API token and `hashes` (by agent id) as their passwords; who exists is left as the
    admin API made them. Returns how many were added."""
    new = []
    for a in agents:
        if await conn.fetchval(
            "INSERT INTO agents (agent_id, name, role, email, teams, password_hash) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agent_id) DO NOTHING RETURNING true",
            a.id,
            a.name,
            a.role.value,
            a.email,
            list(a.teams),
            hashes.get(a.id),
        ):
            await conn.execute(
                "INSERT INTO api_tokens (token_id, agent_id, name, token_sha256) "
                "VALUES ($1, $2, 'seed', $3) ON CONFLICT (token_sha256) DO NOTHING",
                uuid7(),
                a.id,
                a.token_sha256,
            )
            new.append(a.id)
    for agent_id in sorted(new):
        await changed(conn, agent_id=agent_id, actor="seed", action="created")
    return len(new)


async def create_user(
    conn: asyncpg.Connection,
    *,
    actor: str,
    agent_id: str,
    name: str,
    email: str | None,
    role: Role,
    teams: Sequence[str],
    language: str,
    password_hash: str,
) -> bool:
    """False when the id or e-mail is taken."""
    try:
        await conn.execute(
            "INSERT INTO agents (agent_id, name, email, role, teams, language, password_hash) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            agent_id,
            name,
            email,
            role.value,
            list(teams),
            language,
            password_hash,
        )
    except asyncpg.UniqueViolationError:
        return False
    await changed(
        conn,
        agent_id=agent_id,
        actor=actor,
        action="created",
        detail={"role": role.value, "teams": list(teams)},
    )
    return True


async def update_user(
    conn: asyncpg.Connection, *, actor: str, agent_id: str, fields: dict[str, Any]
) -> asyncpg.Record | None:
    """Set `fields` (name, email, role, teams, language, active); None: no such user.
    Disabling ends the user's sessions (their tokens stop working with the account)."""
    sets = ", ".join(f"{column} = ${i}" for i, column in enumerate(fields, start=2))
    try:
        row = await conn.fetchrow(
            f"UPDATE agents SET {sets}, updated_at = now() WHERE agent_id = $1 "
            f"RETURNING {USER_COLUMNS}",
            agent_id,
            *fields.values(),
        )
    except asyncpg.UniqueViolationError:
        raise EmailTaken from None
    if row is None:
        return None
    if fields.get("active") is False:
        await end_sessions(conn, agent_id)
    active = fields.get("active")
    action = "updated" if active is None else "enabled" if active else "disabled"
    await changed(conn, agent_id=agent_id, actor=actor, action=action, detail=fields)
    return row


async def set_password(
    conn: asyncpg.Connection,
    *,
    actor: str,
    agent_id: str,
    password_hash: str,
    keep_session: str | None = None,
) -> bool:
    """A new password ends every session but `keep_session` (the sha256 of the one changing
    it, when the user changes their own). False: no such user."""
    done = await conn.execute(
        "UPDATE agents SET password_hash = $2, updated_at = now() WHERE agent_id = $1",
        agent_id,
        password_hash,
    )
    if done == "UPDATE 0":
        return False
    await conn.execute(
        "DELETE FROM sessions WHERE agent_id = $1 AND session_sha256 IS DISTINCT FROM $2",
        agent_id,
        keep_session,
    )
    await audit(conn, actor=actor, action="password_set", agent_id=agent_id)
    return True


async def audit(
    conn: asyncpg.Connection,
    *,
    actor: str,
    action: str,
    agent_id: str,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO account_audit (actor, action, agent_id, detail) VALUES ($1, $2, $3, $4)",
        actor,
        action,
        agent_id,
        detail or {},
    )


async def audit_trail(conn: asyncpg.Connection, agent_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT at, actor, action, detail FROM account_audit WHERE agent_id = $1 ORDER BY id",
        agent_id,
    )


async def changed(
    conn: asyncpg.Connection,
    *,
    agent_id: str,
    actor: str,
    action: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Audit a change to a person and announce the person as they now are."""
    await audit(conn, actor=actor, action=action, agent_id=agent_id, detail=detail)
    row = await conn.fetchrow(
        f"""
        SELECT {USER_COLUMNS},
               ARRAY(SELECT token_sha256 FROM api_tokens t
                     WHERE t.agent_id = a.agent_id AND t.revoked_at IS NULL
                     ORDER BY token_sha256) AS token_hashes
        FROM agents a WHERE agent_id = $1
        """,
        agent_id,
    )
    assert row is not None, "changed() follows a change to an existing person"
    event = new_event(
        PersonChanged(
            agent_id=row["agent_id"],
            name=row["name"],
            email=row["email"],
            role=row["role"],
            teams=tuple(row["teams"]),
            language=row["language"],
            active=row["active"],
            api_token_sha256=tuple(row["token_hashes"]),
            changed_at=now(),
        ),
        producer=PRODUCER,
    )
    await outbox.add(conn, [msgspec.structs.replace(event, key=agent_id)])


# ---- API tokens ----------------------------------------------------------------------------


async def agent_by_token(conn: asyncpg.Connection, token_sha256: str) -> asyncpg.Record | None:
    """The active user an unrevoked API token belongs to (`bearer_auth`'s look-up); notes when
    the token was last used, at most once a minute per token."""
    row = await conn.fetchrow(
        f"""
        SELECT {", ".join("a." + c for c in USER_COLUMNS.split(", "))},
               t.token_id, t.last_used_at
        FROM api_tokens t JOIN agents a USING (agent_id)
        WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND a.active
        """,
        token_sha256,
    )
    if row is not None and (
        row["last_used_at"] is None or row["last_used_at"] < now() - timedelta(minutes=1)
    ):
        await conn.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE token_id = $1", row["token_id"]
        )
    return row


async def tokens(conn: asyncpg.Connection, agent_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT token_id, name, created_at, last_used_at, revoked_at FROM api_tokens "
        "WHERE agent_id = $1 ORDER BY created_at",
        agent_id,
    )


async def add_token(
    conn: asyncpg.Connection, *, agent_id: str, name: str, token: str
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "INSERT INTO api_tokens (token_id, agent_id, name, token_sha256) "
        "VALUES ($1, $2, $3, $4) RETURNING token_id, name, created_at, last_used_at, revoked_at",
        uuid7(),
        agent_id,
        name,
        digest(token),
    )
    assert row is not None
    await changed(
        conn, agent_id=agent_id, actor=agent_id, action="token_added", detail={"name": name}
    )
    return row


async def revoke_token(
    conn: asyncpg.Connection, *, actor: str, agent_id: str, token_id: UUID
) -> bool:
    """False: the user has no such unrevoked token."""
    name = await conn.fetchval(
        "UPDATE api_tokens SET revoked_at = now() "
        "WHERE token_id = $1 AND agent_id = $2 AND revoked_at IS NULL RETURNING name",
        token_id,
        agent_id,
    )
    if name is None:
        return False
    await changed(
        conn,
        agent_id=agent_id,
        actor=actor,
        action="token_revoked",
        detail={"token_id": str(token_id), "name": name},
    )
    return True


# ---- sessions ------------------------------------------------------------------------------


async def start_session(
    conn: asyncpg.Connection, *, agent_id: str, session_id: str, csrf_token: str, address: str
) -> None:
    await conn.execute(
        "INSERT INTO sessions (session_sha256, agent_id, csrf_token, address) "
        "VALUES ($1, $2, $3, $4)",
        digest(session_id),
        agent_id,
        csrf_token,
        address,
    )
    await audit(
        conn, actor=agent_id, action="login", agent_id=agent_id, detail={"address": address}
    )


async def session(conn: asyncpg.Connection, session_sha256: str) -> asyncpg.Record | None:
    """The session and its active user."""
    return await conn.fetchrow(
        f"""
        SELECT {", ".join("a." + c for c in USER_COLUMNS.split(", "))},
               s.csrf_token, s.created_at AS session_created_at, s.last_seen_at
        FROM sessions s JOIN agents a USING (agent_id)
        WHERE s.session_sha256 = $1 AND a.active
        """,
        session_sha256,
    )


async def touch_session(conn: asyncpg.Connection, session_sha256: str) -> None:
    await conn.execute(
        "UPDATE sessions SET last_seen_at = now() WHERE session_sha256 = $1", session_sha256
    )


async def end_session(conn: asyncpg.Connection, session_sha256: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE session_sha256 = $1", session_sha256)


async def end_sessions(conn: asyncpg.Connection, agent_id: str) -> int:
    done: str = await conn.execute("DELETE FROM sessions WHERE agent_id = $1", agent_id)
    return int(done.split()[-1])


# ---- failed logins -------------------------------------------------------------------------


async def recent_failures(
    conn: asyncpg.Connection, *, login: str, address: str, window: timedelta, limit: int
) -> tuple[list[datetime], list[datetime]]:
    """The newest failures within `window` (at most `limit` of each): by login, by address."""
    rows = await conn.fetch(
        """
        (SELECT 'login' AS by, at FROM login_failures
         WHERE login = $1 AND at > now() - $3::interval ORDER BY at DESC LIMIT $4)
        UNION ALL
        (SELECT 'address', at FROM login_failures
         WHERE address = $2 AND at > now() - $3::interval ORDER BY at DESC LIMIT $4)
        """,
        login,
        address,
        window,
        limit,
    )
    by_login = sorted((r["at"] for r in rows if r["by"] == "login"), reverse=True)
    by_address = sorted((r["at"] for r in rows if r["by"] == "address"), reverse=True)
    return by_login, by_address


async def fail_login(
    conn: asyncpg.Connection, *, login: str, address: str, window: timedelta
) -> None:
    """Count a failure, and forget those that left the window (they lock nothing)."""
    await conn.execute("DELETE FROM login_failures WHERE at <= now() - $1::interval", window)
    await conn.execute(
        "INSERT INTO login_failures (login, address) VALUES ($1, $2)", login, address
    )


async def forget_failures(conn: asyncpg.Connection, login: str) -> None:
    """A successful login clears its name's failures (not its address's: one account of
    the attacker's own must not reset the count against everyone else's)."""
    await conn.execute("DELETE FROM login_failures WHERE login = $1", login)
