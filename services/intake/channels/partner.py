"""Partner webhooks: another system opens a ticket with a signed HTTP call.

`POST /v1/partners/{source}/tickets` takes what the system would otherwise publish on
careloop.inbound.v1 (an `InboundSubmission`, its `source` given by the path) and makes the
same ticket from it: the same (source, external_id) names the same ticket on either path.
The call is signed with the source's secret (shared.signing); a forged, stale or replayed
call is answered 401 and nothing is stored. What every signed channel shares (verifying,
parsing, publishing) lives here too; the hotline's webhook uses it.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

import structlog
from fastapi import APIRouter, Path, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.intake.domain import normalise
from services.intake.handlers import accept
from services.intake.settings import IntakeSettings
from services.intake.web import Accepted, OutcomeUnknown
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import Channel, InboundSubmission, TicketSubmitted, now
from shared.http import Utf8JsonRoute
from shared.problems import problems
from shared.ratelimit import Limit, RateLimited, RateLimiter, too_many
from shared.service import Context
from shared.settings import own
from shared.signing import (
    SIGNATURE_HEADER,
    SOURCE_PATTERN,
    TIMESTAMP_HEADER,
    Refused,
    ReplayGuard,
    SigningSettings,
    verify_signature,
)

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
_OBJECT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


class PartnerSettings(BaseSettings):
    """CARELOOP_PARTNERS_*: how much each partner system may send."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_", extra="ignore")

    rate_per_source: Annotated[int, Field(ge=0)] = own(
        "partners", "rate_per_source", 600, "Signed calls per source per window (0: off)."
    )
    rate_window_seconds: Annotated[int, Field(ge=1)] = own(
        "partners", "rate_window_seconds", 60, "Window of the per-source limit."
    )


class Unauthenticated(BaseModel):
    """A 401: the call's signature or token did not verify; nothing was stored."""

    detail: str


def unauthenticated(refused: Refused, *, scheme: str) -> JSONResponse:
    return JSONResponse(
        Unauthenticated(detail=refused.reason).model_dump(),
        status_code=401,
        headers={"WWW-Authenticate": f'{scheme} realm="careloop"'},
    )


def signed_call_responses() -> dict[int | str, dict[str, Any]]:
    """What a signed webhook can answer besides 202."""
    return {
        **problems(400, 413, 422),
        401: {
            "model": Unauthenticated,
            "description": f"Missing, forged, stale (outside the window) or replayed "
            f"{TIMESTAMP_HEADER} / {SIGNATURE_HEADER}; nothing was stored",
        },
        429: {
            "model": RateLimited,
            "description": "Too many calls from this source; retry after Retry-After seconds",
            "headers": _RETRY_AFTER,
        },
        503: {
            "model": OutcomeUnknown,
            "description": "Kafka did not acknowledge in time: the outcome is unknown. The same "
            "request again (even with the same signature) is safe: it names the same ticket.",
            "headers": _RETRY_AFTER,
        },
    }


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


def parse(model: type[M], body: bytes, **fixed: Any) -> M:
    """`body` (JSON) as `model`, with `fixed` fields set by the route (a source from the path);
    a 422 naming each problem, as FastAPI's own parsing gives it, otherwise."""
    try:
        fields = _OBJECT.validate_json(body)
        for name, value in fixed.items():
            if name in fields and fields[name] != value:
                raise RequestValidationError(
                    [
                        {
                            "loc": ("body", name),
                            "msg": f"must be {value!r} (from the path) or absent",
                            "type": "value_error",
                        }
                    ]
                )
            fields[name] = value
        return model.model_validate(fields)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from exc


class SignedCalls:
    """Verifies signed webhook calls: the signature, then (once the body is known to be
    storable) that it was not used before; a use whose call was not stored is released."""

    def __init__(self, ctx: Context[IntakeSettings], signing: SigningSettings) -> None:
        self._secrets = signing.secrets_in_use()
        self._window = signing.signature_window_seconds
        self._guard = ReplayGuard(
            lambda: ctx.redis,
            window_seconds=self._window,
            timeout_seconds=ctx.settings.redis_timeout_seconds,
        )

    def verify(self, request: Request, source: str, body: bytes) -> None:
        """Raise `Refused` unless `body` is signed with `source`'s secret within the window."""
        verify_signature(
            secret=self._secrets.get(source),
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            signature_header=request.headers.get(SIGNATURE_HEADER),
            body=body,
            window_seconds=self._window,
        )

    async def once(
        self,
        request: Request,
        source: str,
        then: Callable[[], Awaitable[JSONResponse | BaseModel]],
    ) -> JSONResponse | BaseModel:
        """Run `then` if this signature is used for the first time; when `then` stored nothing
        (429, 503), forget the use so that the sender may send the very same call again."""
        signature = request.headers[SIGNATURE_HEADER]
        try:
            await self._guard.first_use(source, signature)
        except Refused as refused:
            return unauthenticated(refused, scheme="CareloopSignature")
        answer = await then()
        if isinstance(answer, JSONResponse) and answer.status_code in (429, 503):
            await self._guard.release(source, signature)
        return answer


class Published(Accepted):
    """The submission is on Kafka (acknowledged)."""

    message_id: UUID | None = Field(
        None, description="The message's own id, when it may continue a ticket."
    )


async def publish(
    ctx: Context[IntakeSettings], ticket: TicketSubmitted, *, retry: str
) -> Published | JSONResponse:
    """Publish one ticket and wait for Kafka's ack; `retry` says what makes a retry safe."""
    try:
        [duplicate] = await accept(ctx, [ticket])
    except TRANSIENT_DRIVER_ERRORS as exc:
        log.error("submission not acknowledged; outcome unknown", error=repr(exc))
        body = OutcomeUnknown(
            detail="Kafka did not acknowledge the submission in time, so its outcome is "
            f"unknown: the ticket may still be created. Retrying is safe: {retry}.",
            ticket_id=ticket.ticket_id,
        )
        return JSONResponse(
            body.model_dump(mode="json"), status_code=503, headers={"Retry-After": "1"}
        )
    return Published(ticket_id=ticket.ticket_id, message_id=ticket.message_id, duplicate=duplicate)


def partner_ticket(submission: InboundSubmission) -> TicketSubmitted:
    """The ticket a partner's call makes: exactly what the same submission on
    careloop.inbound.v1 makes (services.intake.handlers.subscribe)."""
    return normalise(
        submission,
        channel=submission.channel or Channel.SERVICE,
        received_at=submission.received_at or now(),
    )


def routes(
    ctx: Context[IntakeSettings],
    settings: PartnerSettings | None = None,
    signing: SigningSettings | None = None,
) -> APIRouter:
    own_settings = settings or PartnerSettings()
    calls = SignedCalls(ctx, signing or SigningSettings())
    limiter = RateLimiter(
        lambda: ctx.redis, scope="intake", timeout_seconds=ctx.settings.redis_timeout_seconds
    )
    router = APIRouter(
        route_class=Utf8JsonRoute,
        max_body_size=ctx.settings.http_max_body_bytes,
        tags=["partners"],
    )

    @router.post(
        "/v1/partners/{source}/tickets",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Published,
        summary="A partner system opens a ticket (signed webhook)",
        description="The body is an `InboundSubmission` (careloop.inbound.v1) without `source`: "
        "the path names it. Sign it with the source's secret: "
        f"`{TIMESTAMP_HEADER}: <unix seconds>` and `{SIGNATURE_HEADER}: sha256=<hex "
        "HMAC-SHA256(secret, timestamp + '.' + raw body)>`, within 5 minutes of careloop's "
        "clock; each signature is accepted once. The same external_id twice is one ticket.",
        responses=signed_call_responses(),
    )
    async def partner_call(
        request: Request,
        source: Annotated[str, Path(pattern=SOURCE_PATTERN)],
    ) -> Published | JSONResponse:
        body = await request.body()
        try:
            calls.verify(request, source, body)
        except Refused as refused:
            return unauthenticated(refused, scheme="CareloopSignature")
        ticket = partner_ticket(parse(InboundSubmission, body, source=source))

        async def store() -> Published | JSONResponse:
            limit = Limit(
                "source",
                f"partner:{source}",
                own_settings.rate_per_source,
                own_settings.rate_window_seconds,
            )
            verdict = await limiter.hit([limit])
            if not verdict.allowed:
                return too_many(verdict, what="calls")
            return await publish(ctx, ticket, retry="the same external_id names the same ticket")

        return await calls.once(request, source, store)  # type: ignore[return-value]

    return router
