"""The learner's confirmation page: the link in the e-mail opens it, its buttons answer."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader
from pydantic import ValidationError

from services.desk import handlers
from services.desk.api import ConfirmIn, TokenInPath, is_token
from services.desk.domain import Conflict, NotFound
from services.desk.settings import DeskSettings
from shared.forms import FormRefused, read_form
from shared.problems import pages, problems
from shared.service import Context

# Autoescaped, whatever the template's name ends with.
_templates = Environment(loader=PackageLoader("services.desk", "templates"), autoescape=True)

# Documented by hand: the route reads the form itself, so that every problem is a page.
FORM_BODY = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["answer"],
                "properties": {"answer": {"type": "string", "enum": ["solved", "not_solved"]}},
            }
        }
    },
}


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(name).render(**context), status_code=status)


def invalid_link() -> HTMLResponse:
    return page("message.html.j2", status=404, outcome="invalid")


def page_routes(ctx: Context[DeskSettings]) -> APIRouter:
    router = APIRouter(tags=["pages"], max_body_size=ctx.settings.http_max_body_bytes)

    @router.get(
        "/confirm/{token}",
        response_class=HTMLResponse,
        summary="The page the e-mailed link opens: solved or not?",
        responses={**pages(404), **problems(503)},
    )
    async def confirm_page(token: TokenInPath) -> HTMLResponse:
        if not is_token(token):
            return invalid_link()
        async with ctx.pool.acquire() as conn:
            try:
                await handlers.awaits_answer(conn, token)
            except NotFound:
                return invalid_link()
        return page("confirm.html.j2")

    @router.post(
        "/confirm/{token}",
        response_class=HTMLResponse,
        summary="The page's buttons",
        responses={**pages(400, 404, 409, 415, 422), **problems(413, 503)},
        openapi_extra={"requestBody": FORM_BODY},
    )
    async def confirm_form(token: TokenInPath, request: Request) -> HTMLResponse:
        if not is_token(token):
            return invalid_link()
        try:
            form = await read_form(request)
            answer = ConfirmIn.model_validate({"answer": form.get("answer")}).answer
        except FormRefused as exc:
            return page("confirm.html.j2", status=exc.status, error=exc.reason)
        except ValidationError:
            return page("confirm.html.j2", status=422, error="answer: choose solved or not solved")
        async with ctx.pool.acquire() as conn, conn.transaction():
            try:
                outcome = await handlers.confirm(
                    conn,
                    token=token,
                    answer=answer,
                    callback_sample=ctx.settings.callback_sample,
                )
            except NotFound:
                return invalid_link()
            except Conflict:
                return page("message.html.j2", status=409, outcome="answered")
        return page("message.html.j2", outcome=outcome.value)

    return router
