"""The workspace's People pages: admins create users, change their role and teams, disable or
enable them and reset their passwords in the browser; supervisors see the same pages read-only.

Every change goes through the account API's own functions (`accounts.api.create_account`,
`change_account`, `set_password`) after the form is read into the API's own bodies (`NewUser`,
`UserChange`, `PasswordReset`): a page accepts what `/v1/users` accepts and refuses the rest
with the API's reason, shown on the page with the form as it was typed (never the password).
"""

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader
from pydantic import ValidationError

from services.desk import presence
from services.desk.accounts import api as accounts_api
from services.desk.accounts import repo as accounts_repo
from services.desk.accounts import security
from services.desk.accounts.web import User, require_user
from services.desk.settings import DeskSettings
from services.desk.web import queries
from services.desk.web.routes import HEADERS, KEYS, TO_LOGIN
from services.desk.web.skills import reasons
from services.desk.web.text import TEXT, language_of
from services.desk.web.views import SUPERVISING, beijing, views_for
from shared.agents import Role
from shared.forms import FormRefused, read_form
from shared.problems import pages, problems
from shared.service import Context

_templates = Environment(loader=PackageLoader("services.desk.web", "templates"), autoescape=True)
_TEAM_SEPARATORS = re.compile(r"[,，;；、\s]+")
Body = TypeVar("Body", accounts_api.NewUser, accounts_api.UserChange, accounts_api.PasswordReset)
NOTICES = ("created", "changed", "disabled", "enabled", "password")
# Who may look (supervisors, as GET /v1/users) and who may change (admins, as its writes).
Overseer = Annotated[User, Depends(require_user(Role.SUPERVISOR, Role.ADMIN))]
Admin = Annotated[User, Depends(require_user(Role.ADMIN))]
AgentIdInPath = Annotated[str, PathParam(max_length=50)]
FORM_ANSWERS: dict[int | str, dict[str, Any]] = {
    303: {"description": "Done: to the person's page, with a notice"},
    **pages(400, 403, 404, 409, 415, 422),
    **problems(413, 503),
}


class PageRefused(Exception):
    """A form the account API would refuse: its status and its reason."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


def teams_of(raw: str) -> list[str]:
    """Teams typed as "finance, tech_support" (commas, Chinese commas or spaces)."""
    return [team for team in _TEAM_SEPARATORS.split(raw[:2000]) if team]


def as_body(model: type[Body], raw: Mapping[str, Any]) -> Body:
    """The API's own body from a form, or PageRefused with the API's 422 reason."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise PageRefused(422, reasons(exc)) from None


@contextlib.contextmanager
def api_refusals() -> Iterator[None]:
    """The account API's refusal (its HTTPException) as the page's."""
    try:
        yield
    except HTTPException as exc:
        raise PageRefused(exc.status_code, str(exc.detail)) from None


def routes(ctx: Context[DeskSettings]) -> APIRouter:
    router = APIRouter(tags=["workspace"], max_body_size=ctx.settings.http_max_body_bytes)
    seen = presence.Seen()

    def words(user: User) -> dict[str, Any]:
        return TEXT[language_of(user.language)]

    def render(name: str, status: int, **context: Any) -> HTMLResponse:
        html = _templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    async def frame(request: Request, user: User) -> dict[str, Any]:
        """The workspace's frame around a People page (the same nav as every page)."""
        async with ctx.pool.acquire() as conn:
            await seen.note(conn, user.agent_id)
            counts = await queries.view_counts(
                conn, agent_id=user.agent_id, role=user.role, teams=user.teams
            )
        return {
            "user": user,
            "lang": language_of(user.language),
            "t": words(user),
            "views": views_for(user.role),
            "counts": counts,
            "keys": KEYS,
            "current": "people",
            "supervising": user.role in SUPERVISING,
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            "editable": user.role is Role.ADMIN,
            "roles": tuple(Role),
            "min_password": security.MIN_PASSWORD,
            "max_password": security.MAX_PASSWORD,
        }

    def notice_of(user: User, notice: str | None) -> str | None:
        return str(words(user)["people"][notice]) if notice in NOTICES else None

    def error_of(user: User, exc: PageRefused | FormRefused) -> str:
        said = words(user)
        if isinstance(exc, FormRefused):
            return str(said["errors"]["form"])
        return str(said["people"]["refused"]).format(reason=exc.reason)

    async def show_people(
        request: Request,
        user: User,
        *,
        status: int = 200,
        error: str | None = None,
        draft: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        base = await frame(request, user)
        async with ctx.pool.acquire() as conn:
            users = await accounts_repo.users(conn)
            logins = await accounts_repo.last_logins(conn)
        people = [
            {**dict(u), "last_login": beijing(logins.get(u["agent_id"]))}
            for u in sorted(users, key=lambda u: (not u["active"], u["agent_id"]))
        ]
        return render(
            "people.html.j2",
            status,
            **base,
            people=people,
            known_teams=sorted({team for u in users for team in u["teams"]}),
            error=error,
            draft={k: v for k, v in (draft or {}).items() if k != "password"},
        )

    async def show_person(
        request: Request,
        user: User,
        agent_id: str,
        *,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
        draft: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        base = await frame(request, user)
        async with ctx.pool.acquire() as conn:
            person = await accounts_repo.user(conn, agent_id)
            logins = await accounts_repo.last_logins(conn) if person else {}
            teams = {t for u in await accounts_repo.users(conn) for t in u["teams"]}
        if person is None:
            message = base["t"]["people"]["no_user"]
            return render("missing.html.j2", 404, **base, message=message)
        values = {
            "name": person["name"],
            "email": person["email"] or "",
            "role": person["role"],
            "teams": ", ".join(person["teams"]),
            **{k: v for k, v in (draft or {}).items() if k != "password"},
        }
        return render(
            "person.html.j2",
            status,
            **base,
            person=person,
            last_login=beijing(logins.get(agent_id)),
            values=values,
            known_teams=sorted(teams),
            notice=notice_of(user, notice),
            error=error,
        )

    @router.get(
        "/people",
        response_class=HTMLResponse,
        summary="Workspace: every user, and a form to create one (supervisors see, admins change)",
        responses={**TO_LOGIN, **pages(403), **problems(503)},
    )
    async def people(request: Request, user: Overseer) -> HTMLResponse:
        return await show_people(request, user)

    @router.post(
        "/people",
        response_class=HTMLResponse,
        summary="Workspace: an admin creates a user, as POST /v1/users does",
        description="The first password is the admin's, as in the API; refused: the list "
        "again with the API's reason and the form as typed (without the password).",
        responses=FORM_ANSWERS,
    )
    async def create(request: Request, user: Admin) -> Response:
        form: Mapping[str, str] = {}
        try:
            form = await read_form(request)
            body = as_body(
                accounts_api.NewUser,
                {
                    "agent_id": form.get("agent_id", ""),
                    "name": form.get("name", ""),
                    "email": form.get("email", "").strip() or None,
                    "role": form.get("role", ""),
                    "teams": teams_of(form.get("teams", "")),
                    "language": form.get("language", ""),
                    "password": form.get("password", ""),
                },
            )
            with api_refusals():
                made = await accounts_api.create_account(ctx.pool, actor=user.agent_id, body=body)
        except (FormRefused, PageRefused) as exc:
            return await show_people(
                request, user, status=exc.status, error=error_of(user, exc), draft=form
            )
        return RedirectResponse(
            f"/people/{made.agent_id}?notice=created", status_code=303, headers=HEADERS
        )

    @router.get(
        "/people/{agent_id}",
        response_class=HTMLResponse,
        summary="Workspace: one user: name, e-mail, role, teams, active, last login (supervisors "
        "see, admins change)",
        responses={**TO_LOGIN, **pages(403, 404), **problems(503)},
    )
    async def person(
        agent_id: AgentIdInPath,
        request: Request,
        user: Overseer,
        notice: Annotated[str | None, Query(max_length=20)] = None,
    ) -> HTMLResponse:
        return await show_person(request, user, agent_id, notice=notice)

    @router.post(
        "/people/{agent_id}",
        response_class=HTMLResponse,
        summary="Workspace: an admin changes a user's name, e-mail, role or teams, as PATCH "
        "/v1/users/{agent_id} does",
        description="Only the fields that differ from the stored ones are sent, so an admin "
        "editing their own name does not touch their own role.",
        responses=FORM_ANSWERS,
    )
    async def change(agent_id: AgentIdInPath, request: Request, user: Admin) -> Response:
        form: Mapping[str, str] = {}
        try:
            form = await read_form(request)
            async with ctx.pool.acquire() as conn:
                stored = await accounts_repo.user(conn, agent_id)
            if stored is None:
                raise PageRefused(404, "no such user")
            typed: dict[str, Any] = {
                "name": form.get("name", "").strip(),
                "email": form.get("email", "").strip() or None,
                "role": form.get("role", ""),
                "teams": teams_of(form.get("teams", "")),
            }
            was = {**dict(stored), "teams": list(stored["teams"])}
            body = as_body(accounts_api.UserChange, {k: v for k, v in typed.items() if v != was[k]})
            with api_refusals():
                await accounts_api.change_account(
                    ctx.pool, actor=user.agent_id, agent_id=agent_id, body=body
                )
        except (FormRefused, PageRefused) as exc:
            return await show_person(
                request,
                user,
                agent_id,
                status=exc.status,
                error=error_of(user, exc),
                draft=form,
            )
        return RedirectResponse(
            f"/people/{agent_id}?notice=changed", status_code=303, headers=HEADERS
        )

    @router.post(
        "/people/{agent_id}/active",
        response_class=HTMLResponse,
        summary="Workspace: an admin disables (their sessions end) or enables a user",
        description="The form's `active` is true or false, as PATCH /v1/users/{agent_id}'s.",
        responses=FORM_ANSWERS,
    )
    async def activate(agent_id: AgentIdInPath, request: Request, user: Admin) -> Response:
        try:
            form = await read_form(request)
            body = as_body(accounts_api.UserChange, {"active": form.get("active", "")})
            with api_refusals():
                await accounts_api.change_account(
                    ctx.pool, actor=user.agent_id, agent_id=agent_id, body=body
                )
        except (FormRefused, PageRefused) as exc:
            return await show_person(
                request, user, agent_id, status=exc.status, error=error_of(user, exc)
            )
        notice = "enabled" if body.active else "disabled"
        return RedirectResponse(
            f"/people/{agent_id}?notice={notice}", status_code=303, headers=HEADERS
        )

    @router.post(
        "/people/{agent_id}/password",
        response_class=HTMLResponse,
        summary="Workspace: an admin sets a user's new password, as PUT "
        "/v1/users/{agent_id}/password does; their sessions end",
        responses=FORM_ANSWERS,
    )
    async def reset_password(agent_id: AgentIdInPath, request: Request, user: Admin) -> Response:
        try:
            form = await read_form(request)
            body = as_body(accounts_api.PasswordReset, {"password": form.get("password", "")})
            with api_refusals():
                await accounts_api.set_password(
                    ctx.pool, actor=user.agent_id, agent_id=agent_id, body=body
                )
        except (FormRefused, PageRefused) as exc:
            return await show_person(
                request, user, agent_id, status=exc.status, error=error_of(user, exc)
            )
        return RedirectResponse(
            f"/people/{agent_id}?notice=password", status_code=303, headers=HEADERS
        )

    return router
