"""The suggestion box: a public page (`GET/POST /suggestions`) and API (`POST /v1/suggestions`).

Anyone may write, with a contact or without one. Without one the learner is anonymous
("匿名" / "anonymous") and nothing can confirm it later, so the page itself acknowledges the
suggestion with the ticket's number (asked of desk for a moment, the ticket's id if desk has
not created it yet). The form is CSRF-safe by a double-submitted token (a SameSite=Strict
cookie and a hidden field that must match) and works without JavaScript; a form sent twice
(a double tap, a reload) is one ticket, named by the form's own id and its content.
"""

import asyncio
import hashlib
import secrets
import time
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import httpx
import structlog
from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.intake.channels.hotline import SUBJECT_LENGTH, first_line
from services.intake.channels.partner import Published, publish
from services.intake.domain import derived_ticket_id, detect_language, ticket_id_for
from services.intake.settings import IntakeSettings
from services.intake.web import IdempotencyKey, OutcomeUnknown, first_window
from shared.emails import EmailAddress
from shared.events import Channel, Learner, TicketSubmitted, now
from shared.forms import FormRefused, read_form
from shared.http import Utf8JsonRoute
from shared.phones import normal_phone
from shared.problems import pages, problems
from shared.ratelimit import Limit, RateLimited, RateLimiter, client_address, too_many
from shared.service import Context
from shared.settings import own
from shared.text import Line, Text

log = structlog.get_logger(__name__)
Language = Literal["zh", "en"]
ANONYMOUS = {"zh": "匿名", "en": "anonymous"}
CSRF_COOKIE = "careloop_suggestions_csrf"
_SOURCE = "suggestions"
_templates = Environment(loader=PackageLoader("services.intake", "templates"), autoescape=True)


class SuggestionSettings(BaseSettings):
    """CARELOOP_SUGGESTIONS_*: limits, and where to ask desk for the new ticket's number."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_", extra="ignore")

    rate_per_address: Annotated[int, Field(ge=0)] = own(
        "suggestions", "rate_per_address", 10, "Suggestions per client address per window (0: off)."
    )
    rate_address_window_seconds: Annotated[int, Field(ge=1)] = own(
        "suggestions", "rate_address_window_seconds", 600, "Window of the per-address limit."
    )
    rate_per_source: Annotated[int, Field(ge=0)] = own(
        "suggestions", "rate_per_source", 600, "Suggestions in all per window (0: off)."
    )
    rate_source_window_seconds: Annotated[int, Field(ge=1)] = own(
        "suggestions", "rate_source_window_seconds", 60, "Window of the overall limit."
    )
    desk_url: str = own(
        "suggestions",
        "desk_url",
        "http://127.0.0.1:18082",
        "desk's base URL, asked for the new ticket's number (GET /v1/receipts/{id}).",
    )
    receipt_wait_seconds: Annotated[float, Field(ge=0)] = own(
        "suggestions",
        "receipt_wait_seconds",
        2.0,
        "Longest the page waits for desk to number the ticket before showing its id instead.",
    )
    secure_cookie: bool = own(
        "suggestions",
        "secure_cookie",
        False,
        "Mark the form's CSRF cookie Secure (on when the page is served over HTTPS).",
    )


class Suggestion(BaseModel):
    """A suggestion: only the text is required."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    text: Text = Field(min_length=1, max_length=5000)
    name: Line | None = Field(None, min_length=1, max_length=200)
    email: EmailAddress | None = Field(None, max_length=320, description="For an answer.")
    phone: str | None = Field(
        None, pattern=r"^\+?[0-9][0-9 ()-]{5,30}$", description="For an answer."
    )
    language: Language | None = Field(None, description="Detected when absent.")
    external_id: Line | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Your id for it (or send Idempotency-Key): the same id with the same text "
        "is one ticket.",
    )

    @property
    def anonymous(self) -> bool:
        return self.email is None and self.phone is None


# ---- pure -----------------------------------------------------------------------------------


def digest_of(suggestion: Suggestion) -> str:
    """Who and what: a retry of the same suggestion hashes the same."""
    digest = hashlib.sha256()
    for part in ((suggestion.email or "").lower(), normal_phone(suggestion.phone) or ""):
        digest.update(part.encode())
        digest.update(b"\x00")  # validated text never holds NUL: parts cannot run together
    digest.update(suggestion.text.encode())
    return digest.hexdigest()


def suggestion_ticket(
    suggestion: Suggestion, *, key: str | None, window: int | None, received_at: datetime
) -> TicketSubmitted:
    """The ticket a suggestion makes. A sender's key names it together with the content (the
    key comes from anyone on the Internet: another person's same key must not swallow it);
    without a key, the content within the window it was first seen in names it."""
    channel = Channel.SUGGESTION_BOX
    digest = digest_of(suggestion)
    if key is not None:
        ticket_id = ticket_id_for(channel=channel, source=_SOURCE, external_id=f"{key}:{digest}")
    else:
        assert window is not None
        ticket_id = derived_ticket_id(channel=channel, digest=digest, window=window)
    language = suggestion.language or detect_language(suggestion.text)
    email = suggestion.email.lower() if suggestion.email else None
    phone = normal_phone(suggestion.phone)
    local_part = suggestion.email.rpartition("@")[0] if suggestion.email else None
    name = suggestion.name or local_part or phone or ANONYMOUS[language]
    return TicketSubmitted(
        ticket_id=ticket_id,
        channel=channel,
        source=_SOURCE,
        external_id=key,
        learner=Learner(name=" ".join(name.split()), email=email, phone=phone),
        subject=first_line(suggestion.text, limit=SUBJECT_LENGTH),
        description=suggestion.text,
        language=language,
        submitted_at=received_at,
    )


def page_language(lang: str | None, accept_language: str | None) -> Language:
    """`?lang=` when it is zh or en; else the first of zh and en the browser prefers; else zh."""
    if lang in ("zh", "en"):
        return lang  # type: ignore[return-value]
    best: tuple[float, Language] | None = None
    for item in (accept_language or "").split(","):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("zh", "en"):
            continue
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if best is None or weight > best[0]:
            best = (weight, primary)  # type: ignore[assignment]
    return best[1] if best and best[0] > 0 else "zh"


def field_errors(exc: ValidationError) -> list[str]:
    """The form's fields with a problem, as the page's message keys, in form order."""
    found = {str(e["loc"][0]) if e["loc"] else "text" for e in exc.errors()}
    return [f for f in ("text", "name", "email", "phone") if f in found] or ["form"]


# ---- routes ---------------------------------------------------------------------------------


def routes(ctx: Context[IntakeSettings], settings: SuggestionSettings | None = None) -> APIRouter:
    own_settings = settings or SuggestionSettings()
    limiter = RateLimiter(
        lambda: ctx.redis, scope="intake", timeout_seconds=ctx.settings.redis_timeout_seconds
    )
    api = APIRouter(
        route_class=Utf8JsonRoute,
        max_body_size=ctx.settings.http_max_body_bytes,
        tags=["suggestion box"],
    )
    web = APIRouter(max_body_size=ctx.settings.http_max_body_bytes, tags=["pages"])

    def limits(request: Request) -> list[Limit]:
        address = client_address(request, trusted_proxies=ctx.settings.trusted_proxies)
        return [
            Limit(
                "address",
                f"suggestions:{address}",
                own_settings.rate_per_address,
                own_settings.rate_address_window_seconds,
            ),
            Limit(
                "source",
                _SOURCE,
                own_settings.rate_per_source,
                own_settings.rate_source_window_seconds,
            ),
        ]

    async def ticket_for(suggestion: Suggestion, key: str | None) -> TicketSubmitted:
        received_at = now()
        window = None
        if key is None:
            window = await first_window(ctx, digest=digest_of(suggestion), at=received_at)
        return suggestion_ticket(suggestion, key=key, window=window, received_at=received_at)

    async def number_of(ticket_id: UUID) -> str | None:
        """The ticket's number once desk created it, within the wait; None after it."""
        deadline = time.monotonic() + own_settings.receipt_wait_seconds
        url = f"{own_settings.desk_url.rstrip('/')}/v1/receipts/{ticket_id}"
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                try:
                    answer = await client.get(url)
                    if answer.status_code == 200:
                        number = answer.json().get("number")
                        return number if isinstance(number, str) else None
                except (httpx.HTTPError, ValueError) as exc:
                    log.warning("receipt unavailable", error=repr(exc))
                    return None
                await asyncio.sleep(0.2)
        return None

    def form_page(
        lang: Language,
        *,
        status_code: int = 200,
        values: dict[str, str] | None = None,
        errors: list[str] | None = None,
        csrf: str | None = None,
        retry_after: int = 0,
    ) -> HTMLResponse:
        token = csrf or secrets.token_urlsafe(24)
        values = values or {}
        html = _templates.get_template("suggestion.html.j2").render(
            lang=lang,
            csrf=token,
            form_id=values.get("form_id") or uuid4().hex,
            values=values,
            errors=errors or [],
            retry_after=retry_after,
        )
        response = HTMLResponse(html, status_code=status_code)
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        response.set_cookie(
            CSRF_COOKIE,
            token,
            max_age=24 * 3600,
            path="/suggestions",
            httponly=True,
            samesite="strict",
            secure=own_settings.secure_cookie,
        )
        return response

    @web.get(
        "/suggestions",
        response_class=HTMLResponse,
        summary="The suggestion box (a page for phones and desktops, zh and en)",
    )
    async def suggestion_page(
        request: Request,
        lang: Annotated[str | None, Query(description="zh or en; else Accept-Language")] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> HTMLResponse:
        language = page_language(lang, accept_language)
        kept = request.cookies.get(CSRF_COOKIE)
        return form_page(language, csrf=kept if kept and len(kept) == 32 else None)

    @web.post(
        "/suggestions",
        response_class=HTMLResponse,
        summary="The suggestion box's form",
        responses={**pages(400, 415, 422, 429, 503), 403: {"description": "The form expired"}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["text", "csrf"],
                            "properties": {
                                k: {"type": "string"}
                                for k in (
                                    "text",
                                    "name",
                                    "email",
                                    "phone",
                                    "csrf",
                                    "form_id",
                                    "lang",
                                )
                            },
                        }
                    }
                },
            }
        },
    )
    async def suggestion_form(
        request: Request,
        lang: Annotated[str | None, Query(description="zh or en; else Accept-Language")] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> HTMLResponse:
        try:
            form = await read_form(request)
        except FormRefused as exc:
            return form_page(
                page_language(lang, accept_language), status_code=exc.status, errors=["form"]
            )
        language = page_language(form.get("lang") or lang, accept_language)
        values = {k: form.get(k, "") for k in ("text", "name", "email", "phone", "form_id")}
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not secrets.compare_digest(cookie.encode(), form.get("csrf", "").encode()):
            return form_page(language, status_code=403, values=values, errors=["csrf"])
        try:
            suggestion = Suggestion.model_validate(
                {k: v for k, v in values.items() if v.strip() and k != "form_id"}
            )
        except ValidationError as exc:
            return form_page(
                language, status_code=422, values=values, errors=field_errors(exc), csrf=cookie
            )
        verdict = await limiter.hit(limits(request))
        if not verdict.allowed:
            return form_page(
                language,
                status_code=429,
                values=values,
                errors=["rate"],
                csrf=cookie,
                retry_after=verdict.retry_after_seconds,
            )
        form_id = values["form_id"].strip()
        key = form_id if form_id and len(form_id) <= 64 and form_id.isalnum() else None
        ticket = await ticket_for(suggestion, key)
        answer = await publish(ctx, ticket, retry="the same form is one suggestion")
        if isinstance(answer, JSONResponse):
            return form_page(
                language,
                status_code=503,
                values=values,
                errors=["unknown"],
                csrf=cookie,
                retry_after=1,
            )
        number = await number_of(ticket.ticket_id)
        html = _templates.get_template("suggestion.html.j2").render(
            lang=language,
            reference=number or str(ticket.ticket_id),
            anonymous=suggestion.anonymous,
        )
        return HTMLResponse(html, status_code=200)

    @api.post(
        "/v1/suggestions",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Published,
        summary="Send a suggestion (contact optional)",
        description="Without an e-mail or phone the suggestion is anonymous: nothing confirms "
        "it, so keep the ticket_id. The same external_id or Idempotency-Key with the same text "
        "is one ticket; without one, the same contact and text within "
        "CARELOOP_INTAKE_DERIVED_KEY_WINDOW_SECONDS are.",
        responses={
            **problems(400, 413, 422),
            429: {
                "model": RateLimited,
                "description": "Too many suggestions from this address; retry after Retry-After",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            },
            503: {
                "model": OutcomeUnknown,
                "description": "The outcome is unknown; a retry is safe",
            },
        },
    )
    async def suggestion_api(
        request: Request,
        body: Suggestion,
        idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
    ) -> Any:
        verdict = await limiter.hit(limits(request))
        if not verdict.allowed:
            return too_many(verdict, what="suggestions")
        ticket = await ticket_for(body, body.external_id or idempotency_key)
        return await publish(ctx, ticket, retry="the same key or text is one suggestion")

    router = APIRouter()
    router.include_router(web)
    router.include_router(api)
    return router
