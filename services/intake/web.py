"""intake's web form: `POST /v1/tickets`, its rate limits, derived keys and refusals.

Every answer it can give is a JSON body documented in OpenAPI: 202, 400 (not UTF-8 or not
JSON), 413, 422 (each field and its problem), 429 (a rate limit, with Retry-After) and 503
(Kafka did not acknowledge: the outcome is unknown and a retry with the same key is safe).
"""

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import structlog
from fastapi import APIRouter, Header, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool

from services.intake.domain import (
    content_digest,
    mailbox_of,
    normalise,
    sender_key,
    window_of,
)
from services.intake.handlers import REDIS_UNAVAILABLE, accept
from services.intake.settings import IntakeSettings
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import Channel, Submission, TicketSubmitted, now
from shared.http import Utf8JsonRoute
from shared.params import IdempotencyKey
from shared.problems import problems
from shared.ratelimit import Limit, RateLimited, RateLimiter, client_address, too_many
from shared.service import Context

log = structlog.get_logger(__name__)
WEB_SOURCE = "web"
# Printable ASCII, as an HTTP header carries it unharmed and a log shows it as sent.

# The window a content hash was first seen in; a retry within the window refreshes it.
_FIRST_WINDOW = """
local seen = redis.call('GET', KEYS[1])
if seen then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return tonumber(seen)
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return tonumber(ARGV[1])
"""


class Accepted(BaseModel):
    """The submission is on Kafka (acknowledged); desk creates the ticket with this id."""

    ticket_id: UUID
    duplicate: StrictBool = Field(
        description="True when this key was already accepted: nothing new was published."
    )


class OutcomeUnknown(BaseModel):
    """A 503: Kafka did not acknowledge in time, so intake cannot say whether it stored it."""

    detail: str
    outcome: Literal["unknown"] = "unknown"
    ticket_id: UUID = Field(description="The id the ticket has if it was stored, or will have.")
    retry_safe: StrictBool = Field(
        True, description="A retry with the same key (or content) names the same ticket."
    )


def routes(ctx: Context[IntakeSettings]) -> APIRouter:
    settings = ctx.settings
    limiter = RateLimiter(
        lambda: ctx.redis,
        scope="intake",
        timeout_seconds=settings.redis_timeout_seconds,
    )
    router = APIRouter(route_class=Utf8JsonRoute)

    @router.post(
        "/v1/tickets",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Submit a ticket from the web form",
        description="Answered 202 only once Kafka acknowledged the submission. The same "
        "`external_id` or `Idempotency-Key` twice is one ticket; without either, the same "
        "e-mail, subject and description within CARELOOP_INTAKE_DERIVED_KEY_WINDOW_SECONDS "
        "(default 10 minutes) are one ticket.",
        responses={
            **problems(400, 413, 422),
            429: {
                "model": RateLimited,
                "description": "Too many submissions from this address, for this e-mail or "
                "through this channel; retry after Retry-After seconds",
                "headers": _retry_after(),
            },
            503: {
                "model": OutcomeUnknown,
                "description": "Kafka did not acknowledge in time. The outcome is unknown: the "
                "ticket may still be created. A retry with the same Idempotency-Key or "
                "external_id (without one: the same e-mail, subject and description within "
                "the window) is safe: it is one ticket, never two.",
                "headers": _retry_after(),
            },
        },
    )
    async def submit(
        request: Request,
        submission: Submission,
        idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
    ) -> Accepted | JSONResponse:
        address = client_address(request, trusted_proxies=settings.trusted_proxies)
        verdict = await limiter.hit(_limits(settings, submission=submission, address=address))
        if not verdict.allowed:
            return too_many(verdict, what="submissions")
        ticket = await _ticket(ctx, submission, idempotency_key=idempotency_key)
        try:
            [duplicate] = await accept(ctx, [ticket])
        except TRANSIENT_DRIVER_ERRORS as exc:
            log.error("submission not acknowledged; outcome unknown", error=repr(exc))
            return _outcome_unknown(ticket.ticket_id, settings)
        return Accepted(ticket_id=ticket.ticket_id, duplicate=duplicate)

    return router


def _limits(settings: IntakeSettings, *, submission: Submission, address: str) -> list[Limit]:
    return [
        Limit("address", address, settings.rate_per_address, settings.rate_address_window_seconds),
        Limit(
            "email",
            mailbox_of(submission.email),
            settings.rate_per_email,
            settings.rate_email_window_seconds,
        ),
        Limit("source", WEB_SOURCE, settings.rate_per_source, settings.rate_source_window_seconds),
    ]


async def _ticket(
    ctx: Context[IntakeSettings], submission: Submission, *, idempotency_key: str | None
) -> TicketSubmitted:
    """The web submission as a ticket, named by the sender's key or else by its content."""
    received_at = now()
    window = None
    if sender_key(submission, idempotency_key) is None:
        window = await first_window(ctx, digest=content_digest(submission), at=received_at)
    return normalise(
        submission,
        channel=Channel.WEB,
        received_at=received_at,
        idempotency_key=idempotency_key,
        derived_window=window,
    )


async def first_window(ctx: Context[IntakeSettings], *, digest: str, at: datetime) -> int:
    """The window this content was first seen in (Redis), else the window `at` falls in.

    Keyed by the window of the first attempt, a retry just after a window's edge still names
    the first attempt's ticket. Without Redis, a retry is the same ticket unless a window edge
    falls between the attempts.
    """
    seconds = ctx.settings.derived_key_window_seconds
    fallback = window_of(at, seconds=seconds)
    try:
        async with asyncio.timeout(ctx.settings.redis_timeout_seconds):
            key = f"careloop:intake:derived:{digest}"
            found = await ctx.redis.eval(_FIRST_WINDOW, 1, key, fallback, seconds)
    except REDIS_UNAVAILABLE as exc:
        log.warning("derived-key window unavailable; using the clock's window", error=repr(exc))
        return fallback
    return int(found)


def _outcome_unknown(ticket_id: UUID, settings: IntakeSettings) -> JSONResponse:
    window = settings.derived_key_window_seconds
    body = OutcomeUnknown(
        detail="Kafka did not acknowledge the submission in time, so its outcome is unknown: "
        "the ticket may still be created. Retrying is safe: with the same Idempotency-Key or "
        f"external_id, or without one the same e-mail, subject and description within {window} s, "
        "it is one ticket, never two.",
        ticket_id=ticket_id,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=503, headers={"Retry-After": "1"})


def _retry_after() -> dict[str, Any]:
    return {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer"},
        }
    }
