"""The role × endpoint matrix: every route of every service's app (its FastAPI `app.routes`,
documented or not) is classified here, and each is asked, as each role, whether it answers as
its class says. A route nobody classified fails the test, as does a class with no route left.

Roles: anonymous, agent (tina), supervisor (sam), admin (ada) of tests/e2e/agents.yaml, against
the end-to-end platform; API routes are called with their bearer tokens, the workspace's pages
with a session each (of a user made for it).
Path parameters are ids nobody has, bodies are empty: the role is decided before anything
is found or changed.

A second walk sends every state-changing route a person may call with a session cookie but
without that session's CSRF token: desk (where the cookie is a credential) refuses each with
403, the other services (bearer tokens only) take the cookie for nobody's, 401.
"""

import importlib
import re
import uuid
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount, Route

from services.desk.accounts.security import digest
from tests.e2e.conftest import AGENTS, Platform
from tests.support import SERVICES, RunningStack


class Access(StrEnum):
    PUBLIC = "public"  # anyone (learners, their links, plumbing): a person's token changes nothing
    OWN = "own"  # its own credential (a signature, a learner's token); a person's changes nothing
    PERSON = "person"  # any signed-in person, by bearer token or session: anonymous 401
    SUPERVISOR = "supervisor"  # supervisors and admins: anonymous 401, agent 403
    ADMIN = "admin"  # admins only: anonymous 401, agent and supervisor 403
    SELF = "self"  # a person's own (the path names someone else here): agents 403
    PAGE = "page"  # a workspace page: a session of any role, else 303 to /login
    SUPERVISOR_PAGE = "supervisor page"  # a page for supervisors and admins: an agent's is 403
    ADMIN_PAGE = "admin page"  # a page for admins: an agent's and a supervisor's is 403
    LOGOUT = "logout"  # ends the session it is sent with (with its CSRF token), else 303 to /login
    STREAM = "stream"  # a page that streams (server-sent events): only its refusal is asked


PLUMBING = {
    "GET /openapi.json": Access.PUBLIC,
    "GET /metrics": Access.PUBLIC,  # CARELOOP_METRICS_TOKEN guards it where set
    "GET /docs": Access.PUBLIC,
    "GET /docs/assets/{path}": Access.PUBLIC,
    "GET /healthz": Access.PUBLIC,
}

MATRIX: dict[str, dict[str, Access]] = {
    "intake": {
        **PLUMBING,
        "POST /v1/tickets": Access.PUBLIC,
        "POST /v1/learner/tickets": Access.OWN,
        "POST /v1/learner/tickets/{ticket}/messages": Access.OWN,
        "POST /v1/chat/messages": Access.OWN,
        "POST /v1/partners/{source}/tickets": Access.OWN,
        "POST /v1/hotline/calls": Access.OWN,
        "GET /suggestions": Access.PUBLIC,
        "POST /suggestions": Access.PUBLIC,
        "POST /v1/suggestions": Access.PUBLIC,
        "GET /channels/wechat": Access.OWN,
        "POST /channels/wechat": Access.OWN,
        "GET /channels/weibo": Access.OWN,
        "POST /channels/weibo": Access.OWN,
    },
    "desk": {
        **PLUMBING,
        # accounts
        "GET /login": Access.PUBLIC,
        "POST /login": Access.PUBLIC,
        "GET /v1/users": Access.SUPERVISOR,
        "POST /v1/users": Access.ADMIN,
        "GET /v1/users/{agent_id}": Access.SUPERVISOR,
        "PATCH /v1/users/{agent_id}": Access.ADMIN,
        "PUT /v1/users/{agent_id}/password": Access.ADMIN,
        "GET /v1/users/{agent_id}/audit": Access.ADMIN,
        "DELETE /v1/users/{agent_id}/tokens/{token_id}": Access.ADMIN,
        "PUT /v1/account/password": Access.PERSON,
        "PUT /v1/account/language": Access.PERSON,
        "GET /v1/account/tokens": Access.PERSON,
        "POST /v1/account/tokens": Access.PERSON,
        "DELETE /v1/account/tokens/{token_id}": Access.PERSON,
        # tickets
        "GET /v1/agent/me": Access.PERSON,
        "GET /v1/agent/tickets": Access.PERSON,
        "GET /v1/tickets/{ticket_id}": Access.PERSON,
        "GET /v1/receipts/{ticket_id}": Access.PUBLIC,
        "POST /v1/calls": Access.PERSON,
        "POST /v1/tickets/{ticket_id}/replies": Access.PERSON,
        "POST /v1/tickets/{ticket_id}/resolve": Access.PERSON,
        "POST /v1/tickets/{ticket_id}/pending": Access.PERSON,
        "POST /v1/tickets/{ticket_id}/retriage": Access.PERSON,
        "POST /v1/tickets/{ticket_id}/notes": Access.PERSON,
        "GET /v1/tickets/{ticket_id}/timeline": Access.PERSON,
        "POST /v1/tickets/{ticket_id}/transfer": Access.PERSON,
        "POST /v1/tickets/{ticket_id}/merge": Access.PERSON,
        "GET /v1/resolution-codes": Access.PERSON,
        "GET /v1/search": Access.PERSON,
        "GET /v1/people": Access.PERSON,
        "GET /v1/macros": Access.PERSON,
        "POST /v1/macros": Access.SUPERVISOR,
        "PUT /v1/macros/{macro_id}": Access.SUPERVISOR,
        "DELETE /v1/macros/{macro_id}": Access.SUPERVISOR,
        "POST /v1/tickets/{ticket_id}/macros/{macro_id}/render": Access.PERSON,
        # the learner's pages and links
        "POST /v1/confirmations/{token}": Access.PUBLIC,
        "GET /confirm/{token}": Access.PUBLIC,
        "POST /confirm/{token}": Access.PUBLIC,
        "GET /t/{token}": Access.PUBLIC,
        "GET /t/{token}/answer": Access.PUBLIC,
        "GET /t/{token}/messages": Access.PUBLIC,
        "POST /t/{token}/messages": Access.PUBLIC,
        "POST /t/{token}/answer": Access.PUBLIC,
        "GET /v1/learner/tickets": Access.OWN,
        "GET /v1/learner/tickets/{ref}": Access.OWN,
        # the workspace
        "GET /": Access.PAGE,
        "GET /views/{view}": Access.PAGE,
        "GET /workspace/nav": Access.PAGE,
        "GET /search": Access.PAGE,
        "GET /callbacks": Access.PAGE,
        "POST /callbacks/{ref}": Access.PAGE,
        "GET /tickets/{ref}": Access.PAGE,
        "GET /tickets/{ref}/conversation": Access.PAGE,
        "GET /tickets/{ref}/macros/{macro_id}": Access.PAGE,
        "POST /tickets/{ref}/reply": Access.PAGE,
        "POST /tickets/{ref}/note": Access.PAGE,
        "POST /tickets/{ref}/transfer": Access.PAGE,
        "POST /tickets/{ref}/merge": Access.PAGE,
        "POST /tickets/{ref}/retriage": Access.PAGE,
        "POST /tickets/{ref}/pending": Access.PAGE,
        "POST /tickets/{ref}/resolve": Access.PAGE,
        "POST /tickets/{ref}/article": Access.PAGE,
        "POST /workspace/language": Access.PAGE,
        "GET /workspace/live": Access.STREAM,
        "GET /workspace/static/{path}": Access.PUBLIC,
        "GET /board": Access.SUPERVISOR_PAGE,
        "POST /board/reassign": Access.SUPERVISOR_PAGE,
        "POST /board/agents": Access.SUPERVISOR_PAGE,
        "GET /board/agents/{agent_id}": Access.SUPERVISOR_PAGE,
        "POST /board/agents/{agent_id}/skills": Access.ADMIN_PAGE,  # as routing's PATCH
        "GET /account": Access.PAGE,
        "POST /account/password": Access.PAGE,
        "POST /account/tokens": Access.PAGE,
        "POST /account/tokens/{token_id}/revoke": Access.PAGE,
        "GET /people": Access.SUPERVISOR_PAGE,  # as GET /v1/users
        "POST /people": Access.ADMIN_PAGE,  # as POST /v1/users
        "GET /people/{agent_id}": Access.SUPERVISOR_PAGE,
        "POST /people/{agent_id}": Access.ADMIN_PAGE,  # as PATCH /v1/users/{agent_id}
        "POST /people/{agent_id}/active": Access.ADMIN_PAGE,
        "POST /people/{agent_id}/password": Access.ADMIN_PAGE,
        "POST /t/{token}/solved": Access.PUBLIC,
        # complaint cases
        "POST /v1/tickets/{ticket_id}/case": Access.PERSON,
        "GET /v1/cases": Access.PERSON,
        "GET /v1/cases/{case_id}": Access.PERSON,
        "PATCH /v1/cases/{case_id}": Access.PERSON,
        "POST /v1/cases/{case_id}/notes": Access.PERSON,
        "PUT /v1/cases/{case_id}/finding": Access.PERSON,
        "POST /v1/cases/{case_id}/remedies": Access.PERSON,
        "POST /v1/remedies/{remedy_id}/approve": Access.SUPERVISOR,
        "POST /v1/remedies/{remedy_id}/decline": Access.SUPERVISOR,
        "POST /v1/cases/{case_id}/close": Access.PERSON,
        "GET /v1/remedies/overdue": Access.PERSON,  # an agent: their own tickets' remedies
        "GET /v1/remedies/pending": Access.SUPERVISOR,
        "GET /v1/callbacks": Access.PERSON,
        "POST /v1/cases/{case_id}/callback": Access.PERSON,
        "POST /v1/tickets/{ticket_id}/callback": Access.PERSON,
        # last: they end the sessions the pages above are asked with
        "POST /logout": Access.LOGOUT,
        "POST /logout-everywhere": Access.LOGOUT,
    },
    "routing": {
        **PLUMBING,
        "GET /v1/agents": Access.PERSON,
        "PUT /v1/agents/{agent_id}/presence": Access.SELF,
        "POST /v1/agents/{agent_id}/heartbeat": Access.SELF,
        "GET /v1/queues": Access.PERSON,
        "POST /v1/admin/agents": Access.ADMIN,
        "PATCH /v1/admin/agents/{agent_id}": Access.ADMIN,
        "GET /v1/admin/teams": Access.SUPERVISOR,
        "PUT /v1/admin/teams/{team}": Access.ADMIN,
        "GET /v1/admin/channel-weights": Access.SUPERVISOR,
        "PUT /v1/admin/channel-weights": Access.ADMIN,
        "GET /v1/admin/audit": Access.SUPERVISOR,
    },
    "notify": {**PLUMBING},
    "survey": {
        **PLUMBING,
        "GET /s/{token}": Access.PUBLIC,
        "POST /s/{token}": Access.PUBLIC,
        "POST /v1/surveys/{token}": Access.PUBLIC,
        "POST /v1/periodic-surveys/{token}": Access.PUBLIC,
    },
    "metrics": {
        **PLUMBING,
        "GET /v1/improvement-actions": Access.SUPERVISOR,
        "GET /v1/improvement-actions/{action_id}": Access.SUPERVISOR,
        "POST /v1/improvement-actions": Access.SUPERVISOR,
        "PATCH /v1/improvement-actions/{action_id}": Access.SUPERVISOR,
        "GET /v1/reports": Access.SUPERVISOR,
        "GET /v1/reports/{kind}/{start}.{fmt}": Access.SUPERVISOR,
    },
    "knowledge": {
        **PLUMBING,
        "GET /kb/{article_id}": Access.PUBLIC,
        "POST /kb/{article_id}/feedback": Access.PUBLIC,
        "GET /v1/articles": Access.PERSON,
        "GET /v1/articles/{article_id}": Access.PERSON,
        "GET /v1/articles/{article_id}/versions": Access.PERSON,
        "GET /v1/suggestions": Access.PERSON,
        "POST /v1/articles": Access.SUPERVISOR,
        "POST /v1/articles/from-reply": Access.PERSON,
        "PUT /v1/articles/{article_id}": Access.SUPERVISOR,
        "POST /v1/articles/{article_id}/publish": Access.SUPERVISOR,
        "POST /v1/articles/{article_id}/archive": Access.SUPERVISOR,
    },
    "incident": {
        **PLUMBING,
        "GET /status": Access.PUBLIC,
        "GET /status/{number}": Access.PUBLIC,
        "GET /v1/alerts": Access.PERSON,
        "POST /v1/incidents": Access.SUPERVISOR,
        "GET /v1/incidents": Access.PERSON,
        "GET /v1/incidents/{incident_id}": Access.PERSON,
        "PATCH /v1/incidents/{incident_id}": Access.SUPERVISOR,
        "GET /v1/incidents/{incident_id}/tickets": Access.PERSON,
        "PUT /v1/incidents/{incident_id}/tickets/{ticket_id}": Access.PERSON,
        "DELETE /v1/incidents/{incident_id}/tickets/{ticket_id}": Access.PERSON,
        "POST /v1/incidents/{incident_id}/announcements": Access.SUPERVISOR,
        "POST /v1/incidents/{incident_id}/resolve": Access.SUPERVISOR,
        "GET /v1/incidents/{incident_id}/report": Access.PERSON,
        "POST /v1/incidents/{incident_id}/compensations": Access.SUPERVISOR,
        "GET /v1/incidents/{incident_id}/compensations": Access.PERSON,
        "POST /v1/compensations/{batch_id}/approve": Access.SUPERVISOR,
        # course changes: course operations are supervisors, admins or the course_ops team
        "POST /v1/course-changes": Access.SUPERVISOR,
        "GET /v1/course-changes": Access.PERSON,
        "GET /v1/course-changes/{change_id}": Access.PERSON,
        "GET /v1/course-changes/{change_id}/replies": Access.PERSON,
        "GET /v1/course-change-requests": Access.PERSON,
        "POST /v1/course-change-requests/{ticket_id}/decision": Access.SUPERVISOR,
        "GET /changes/reply/{token}": Access.OWN,  # the learner's link
        "POST /changes/reply/{token}": Access.OWN,
    },
}

TOKENS = {
    "agent": "Bearer e2e-tina-token",
    "supervisor": "Bearer e2e-sam-token",
    "admin": "Bearer e2e-ada-token",
}
ROLES = ("agent", "supervisor", "admin")
ALLOWED = {
    Access.PERSON: set(ROLES),
    Access.SUPERVISOR: {"supervisor", "admin"},
    Access.SELF: {"supervisor", "admin"},
    Access.ADMIN: {"admin"},
}
# Valid bodies for the routes that decide the role after reading the body: an empty one
# would be 422 before the role is asked.
BODIES: dict[str, Any] = {
    "POST /v1/macros": {"name": "matrix", "body": "Hello {{ learner.name }}"},
    "PUT /v1/macros/{macro_id}": {"name": "matrix", "body": "Hello {{ learner.name }}"},
    "POST /v1/remedies/{remedy_id}/decline": {"reason": "not warranted"},
    "PUT /v1/agents/{agent_id}/presence": {"online": True},
}


def routes_of(app: FastAPI) -> Iterator[str]:
    """`METHOD /path` of every route the app serves, through its included routers."""

    def walk(routes: list[BaseRoute], prefix: str) -> Iterator[str]:
        for route in routes:
            original = getattr(route, "original_router", None)
            if original is not None:  # an included router (FastAPI keeps it whole)
                yield from walk(original.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
            elif isinstance(route, Mount):
                yield f"GET {prefix}{route.path}/{{path}}"
            elif isinstance(route, APIRoute | Route):
                for method in sorted((route.methods or set()) - {"HEAD"}):
                    yield f"{method} {prefix}{route.path}"

    return walk(app.routes, "")


def app_of(service: str) -> FastAPI:
    """The service's app as `python -m services.<service>` builds it (settings from the
    environment)."""
    app_module = importlib.import_module(f"services.{service}.app")
    settings_module = importlib.import_module(f"services.{service}.settings")
    [settings] = [
        cls
        for name, cls in vars(settings_module).items()
        if name.endswith("Settings") and getattr(cls, "__module__", "") == settings_module.__name__
    ]
    app: FastAPI = app_module.create_app(settings())
    return app


PATH_VALUES = {
    "ref": "CL-999999",
    "token": "Aq3-nobody-has-this-token-0000000",
    "agent_id": "nobody",
    "team": "no_such_team",
    "source": "lms",
    "view": "mine",
    "path": "nothing-here.css",
}


def concrete(path: str) -> str:
    def value(match: re.Match[str]) -> str:
        return PATH_VALUES.get(match.group(1), str(uuid.uuid4()))

    return re.sub(r"\{([a-z_]+)\}", value, path)


def test_every_route_of_every_service_is_classified(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELOOP_ENV", "local")
    monkeypatch.setenv("CARELOOP_AGENTS_FILE", str(AGENTS))
    served_routes = {service: set(routes_of(app_of(service))) for service in SERVICES}
    unclassified = {s: sorted(r - MATRIX.get(s, {}).keys()) for s, r in served_routes.items()}
    gone = {s: sorted(MATRIX[s].keys() - r) for s, r in served_routes.items() if s in MATRIX}
    assert not any(unclassified.values()), f"classify these routes in MATRIX: {unclassified}"
    assert not any(gone.values()), f"these classified routes are served no more: {gone}"
    assert not MATRIX.keys() - set(SERVICES)


async def sessions(
    desk: httpx.AsyncClient, stack: RunningStack, roles: tuple[str, ...] = ROLES
) -> dict[str, tuple[dict[str, str], str]]:
    """A logged-in session per role (of a new user each): its cookie and CSRF token."""
    out = {}
    conn = await asyncpg.connect(stack.dsn)
    try:
        for role in roles:
            agent_id = f"r{uuid.uuid4().hex[:10]}"
            made = await desk.post(
                "/v1/users",
                headers={"Authorization": TOKENS["admin"]},
                json={
                    "agent_id": agent_id,
                    "name": f"Matrix {role}",
                    "role": role,
                    "teams": ["tech_support"],
                    "password": "matrix-password-1",
                },
            )
            assert made.status_code == 201, made.text
            form = await desk.get("/login")
            login_csrf = re.findall(r'name="csrf_token" value="([^"]+)"', form.text)[0]
            login = await desk.post(
                "/login",
                data={"login": agent_id, "password": "matrix-password-1", "csrf_token": login_csrf},
            )
            assert login.status_code == 303, login.text
            session = login.cookies["careloop_session"]
            csrf = await conn.fetchval(
                "SELECT csrf_token FROM desk.sessions WHERE session_sha256 = $1", digest(session)
            )
            out[role] = ({"careloop_session": session}, csrf)
    finally:
        await conn.close()
    desk.cookies.clear()
    return out


async def ask(
    client: httpx.AsyncClient,
    route: str,
    *,
    token: str | None = None,
    session: tuple[dict[str, str], str] | None = None,
) -> httpx.Response:
    method, path = route.split(" ", 1)
    headers: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    if token:
        headers["Authorization"] = token
    if session:
        cookie, csrf = session
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookie.items())
        if method != "GET":
            kwargs["data"] = {"csrf_token": csrf}
    elif method != "GET":
        kwargs["json"] = BODIES.get(route, {})
    client.cookies.clear()
    return await client.request(method, concrete(path), headers=headers, **kwargs)


def to_login(r: httpx.Response) -> bool:
    return r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_each_route_answers_each_role_as_classified(platform: Platform) -> None:
    stack = platform.stack
    apps = {
        service: httpx.AsyncClient(base_url=platform.url(service), timeout=30) for service in MATRIX
    }
    try:
        await walk_matrix(apps, stack)
    finally:
        for client in apps.values():
            await client.aclose()


async def walk_matrix(apps: dict[str, httpx.AsyncClient], stack: RunningStack) -> None:
    by_role = await sessions(apps["desk"], stack)
    wrong: list[str] = []
    for service, routes in MATRIX.items():
        client = apps[service]
        for route, access in routes.items():
            anonymous = await ask(client, route)
            seen = {"anonymous": anonymous.status_code}
            if access in (Access.PUBLIC, Access.OWN):
                for role in ROLES:
                    seen[role] = (await ask(client, route, token=TOKENS[role])).status_code
                fine = len(set(seen.values())) == 1 and (
                    access is Access.OWN or anonymous.status_code not in (401, 403)
                )
            elif access is Access.LOGOUT:
                fine = to_login(anonymous)
                for role in ROLES:
                    r = await ask(client, route, session=by_role[role])
                    after = await ask(client, "GET /v1/agent/me", session=by_role[role])
                    seen[role] = after.status_code
                    fine &= to_login(r) and after.status_code == 401
                    by_role[role] = (await sessions(apps["desk"], stack, roles=(role,)))[role]
            elif access in (Access.PAGE, Access.SUPERVISOR_PAGE, Access.ADMIN_PAGE, Access.STREAM):
                fine = to_login(anonymous)
                for role in ROLES:
                    with_token = await ask(client, route, token=TOKENS[role])
                    fine &= to_login(with_token)  # a page needs a session, not a token
                    if access is not Access.STREAM:
                        r = await ask(client, route, session=by_role[role])
                        seen[role] = r.status_code
                        if (access is Access.SUPERVISOR_PAGE and role == "agent") or (
                            access is Access.ADMIN_PAGE and role != "admin"
                        ):
                            fine &= r.status_code == 403
                        else:
                            fine &= r.status_code not in (401, 403) and not to_login(r)
            else:
                fine = anonymous.status_code == 401
                for role in ROLES:
                    r = await ask(client, route, token=TOKENS[role])
                    seen[role] = r.status_code
                    allowed = role in ALLOWED[access]
                    fine &= (r.status_code not in (401, 403)) if allowed else r.status_code == 403
            if not fine:
                wrong.append(f"{service} {route} ({access}): {seen}")
    assert not wrong, "\n".join(wrong)


UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Routes a signed-in person calls; a browser sends the session cookie with any of them.
PERSONAL = frozenset(set(Access) - {Access.PUBLIC, Access.OWN, Access.STREAM})
# The one service whose routes take a session cookie (its pages and its JSON API alike).
SESSION_SERVICE = "desk"


async def test_no_session_changes_anything_without_its_csrf_token(platform: Platform) -> None:
    apps = {
        service: httpx.AsyncClient(base_url=platform.url(service), timeout=30) for service in MATRIX
    }
    try:
        await walk_without_csrf(apps, platform.stack)
    finally:
        for client in apps.values():
            await client.aclose()


async def walk_without_csrf(apps: dict[str, httpx.AsyncClient], stack: RunningStack) -> None:
    """An admin's session (allowed everywhere, so a refusal is the token's) on every unsafe
    personal route, with a form that has no CSRF token or another session's."""
    by_role = await sessions(apps["desk"], stack, roles=("admin", "agent"))
    (cookie, _), (_, others) = by_role["admin"], by_role["agent"]
    forms = {"none": {"body": "csrf probe"}, "another session's": {"csrf_token": others}}
    unsafe = [
        (service, route)
        for service, routes in MATRIX.items()
        for route, access in routes.items()
        if route.split(" ", 1)[0] in UNSAFE and access in PERSONAL
    ]
    wrong: list[str] = []
    for service, route in unsafe:
        method, path = route.split(" ", 1)
        client = apps[service]
        for token, form in forms.items():
            client.cookies.clear()
            r = await client.request(
                method,
                concrete(path),
                headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookie.items())},
                data=form,
            )
            fine = (
                r.status_code == 403 and "CSRF token" in r.text
                if service == SESSION_SERVICE
                else r.status_code == 401
            )
            if not fine:
                wrong.append(f"{service} {route} ({token} token): {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)
    assert sum(service == SESSION_SERVICE for service, _ in unsafe) > 40
    # Nothing was done as the admin: not even the two log-outs ended the session.
    client = apps[SESSION_SERVICE]
    client.cookies.clear()
    me = await client.get(
        "/v1/agent/me", headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookie.items())}
    )
    assert me.status_code == 200, me.text
