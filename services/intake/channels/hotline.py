"""Hotline: the call-centre system posts each call record to a signed webhook; a call is a ticket.

`POST /v1/hotline/calls` is signed like every partner webhook (shared.signing) with the
call centre's secret (source CARELOOP_HOTLINE_SOURCE). The caller's number becomes the
learner's phone, normalised as desk compares numbers when it matches a caller to a learner;
the ticket is named by the call's id, so the call centre re-posting a record is one ticket.
"""

from datetime import datetime
from typing import Annotated, Self

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.intake.channels.partner import (
    Published,
    SignedCalls,
    parse,
    publish,
    signed_call_responses,
    unauthenticated,
)
from services.intake.domain import detect_language, message_id_for, ticket_id_for
from services.intake.settings import IntakeSettings
from shared.events import Call, Channel, Learner, TicketSubmitted, now
from shared.http import Utf8JsonRoute
from shared.phones import normal_phone
from shared.ratelimit import Limit, RateLimiter, too_many
from shared.service import Context
from shared.settings import own
from shared.signing import SOURCE_PATTERN, Refused, SigningSettings
from shared.text import Line, Text

SUBJECT_LENGTH = 120


class HotlineSettings(BaseSettings):
    """CARELOOP_HOTLINE_*: which source's secret signs call records, and how many may come."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_", extra="ignore")

    source: Annotated[str, Field(pattern=SOURCE_PATTERN)] = own(
        "hotline",
        "source",
        "callcentre",
        "The source whose secret (CARELOOP_SOURCES_SECRETS) signs the call-centre's webhook.",
    )
    rate_per_source: Annotated[int, Field(ge=0)] = own(
        "hotline", "rate_per_source", 600, "Call records per window (0: off)."
    )
    rate_window_seconds: Annotated[int, Field(ge=1)] = own(
        "hotline", "rate_window_seconds", 60, "Window of the call-record limit."
    )


class HotlineCall(BaseModel):
    """One call as the call-centre system records it."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    call_id: Line = Field(
        min_length=1, max_length=200, description="The call centre's id: the same id is one ticket."
    )
    caller_number: str = Field(
        pattern=r"^\+?[0-9][0-9 ()-]{5,30}$", description="The caller's number as dialled."
    )
    caller_name: Line | None = Field(
        None, min_length=1, max_length=200, description="The caller's name, when the agent took it."
    )
    learner_id: Line | None = Field(
        None, max_length=100, description="When the IVR identified them."
    )
    agent: Line | None = Field(None, max_length=100, description="The agent who took the call.")
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    ivr_choice: Line | None = Field(None, max_length=100, description="e.g. `2-refunds`.")
    recording_url: Line | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")
    summary: Text | None = Field(
        None, min_length=1, max_length=2000, description="The agent's notes."
    )
    transcript: Text | None = Field(None, min_length=1, max_length=20_000)
    language: str | None = Field(None, pattern=r"^(zh|en)$", description="Detected when absent.")
    ticket_number: str | None = Field(
        None,
        pattern=r"^CL-[0-9]{6,}$",
        description="The ticket the caller called about, when they named it: the call is then "
        "a follow-up on that ticket (desk appends it, or opens a new linked ticket when the "
        "ticket is closed or the caller is not its learner).",
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.summary is None and self.transcript is None:
            raise ValueError("give a summary or a transcript: a ticket needs the caller's words")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


def call_ticket(call: HotlineCall, *, source: str, received_at: datetime) -> TicketSubmitted:
    """The ticket a call record makes: the caller's words, the call's metadata. A call about a
    named ticket is also a message (its id from the call's), so desk can append it there."""
    phone = normal_phone(call.caller_number)
    assert phone is not None  # the pattern requires digits
    words = "\n\n".join(t for t in (call.summary, call.transcript) if t)
    return TicketSubmitted(
        ticket_id=ticket_id_for(channel=Channel.HOTLINE, source=source, external_id=call.call_id),
        channel=Channel.HOTLINE,
        source=source,
        external_id=call.call_id,
        learner=Learner(name=call.caller_name or phone, phone=phone, learner_id=call.learner_id),
        subject=first_line(words, limit=SUBJECT_LENGTH),
        description=words,
        language=call.language or detect_language(words),
        submitted_at=received_at,
        reply_to=call.ticket_number,
        message_id=(
            message_id_for(Channel.HOTLINE, source, call.call_id) if call.ticket_number else None
        ),
        call=Call(
            caller=phone,
            agent=call.agent,
            started_at=call.started_at,
            ended_at=call.ended_at,
            ivr_choice=call.ivr_choice,
            recording_url=call.recording_url,
        ),
    )


def first_line(text: str, *, limit: int) -> str:
    """A subject from free text: its first non-blank line, cut at `limit` with an ellipsis."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def routes(
    ctx: Context[IntakeSettings],
    settings: HotlineSettings | None = None,
    signing: SigningSettings | None = None,
) -> APIRouter:
    own_settings = settings or HotlineSettings()
    source = own_settings.source
    calls = SignedCalls(ctx, signing or SigningSettings())
    limiter = RateLimiter(
        lambda: ctx.redis, scope="intake", timeout_seconds=ctx.settings.redis_timeout_seconds
    )
    router = APIRouter(
        route_class=Utf8JsonRoute, max_body_size=ctx.settings.http_max_body_bytes, tags=["hotline"]
    )

    @router.post(
        "/v1/hotline/calls",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Published,
        summary="The call centre posts a call record (signed webhook)",
        description="Signed with the call centre's secret like a partner webhook. The same "
        "call_id twice is one ticket. A summary or a transcript is required. With "
        "`ticket_number` the call continues that ticket.",
        responses=signed_call_responses(),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": HotlineCall.model_json_schema()}},
            }
        },
    )
    async def call_record(request: Request) -> Published | JSONResponse:
        body = await request.body()
        try:
            calls.verify(request, source, body)
        except Refused as refused:
            return unauthenticated(refused, scheme="CareloopSignature")
        ticket = call_ticket(parse(HotlineCall, body), source=source, received_at=now())

        async def store() -> Published | JSONResponse:
            limit = Limit(
                "source",
                f"hotline:{source}",
                own_settings.rate_per_source,
                own_settings.rate_window_seconds,
            )
            verdict = await limiter.hit([limit])
            if not verdict.allowed:
                return too_many(verdict, what="call records")
            return await publish(ctx, ticket, retry="the same call_id names the same ticket")

        return await calls.once(request, source, store)  # type: ignore[return-value]

    return router
