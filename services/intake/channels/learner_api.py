"""The learner API's write side: the app and the chat widget act for a signed-in learner.

The app's backend mints a learner token (shared.signing) with its source's secret; the
learner's device sends it as `Authorization: Bearer <token>`. Three calls:

- `POST /v1/learner/tickets` opens a ticket;
- `POST /v1/learner/tickets/{ticket}/messages` writes on one (by id or `CL-` number);
- `POST /v1/chat/messages` sends a chat message: a conversation is one ticket (named by its
  id), its first message opens it and every later one is appended to it.

Intake decides nothing about tickets: it names the ticket and the message, and desk decides
whether a message continues a ticket or opens a new one. Reading tickets is desk's.
"""

import hashlib
import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Path, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.intake.channels.hotline import SUBJECT_LENGTH, first_line
from services.intake.channels.partner import Published, Unauthenticated, publish, unauthenticated
from services.intake.domain import (
    derived_ticket_id,
    detect_language,
    message_id_for,
    ticket_id_for,
)
from services.intake.settings import IntakeSettings
from services.intake.web import IdempotencyKey, OutcomeUnknown, first_window
from shared.events import Channel, Learner, SubmittedAttachment, TicketSubmitted, now
from shared.http import Utf8JsonRoute
from shared.phones import normal_phone
from shared.problems import problems
from shared.ratelimit import Limit, RateLimited, RateLimiter, too_many
from shared.service import Context
from shared.settings import own
from shared.signing import LearnerClaims, Refused, SigningSettings, bearer, verify_learner_token
from shared.text import Line, Text

_NUMBER = re.compile(r"^CL-[0-9]{6,}$")


class LearnerApiSettings(BaseSettings):
    """CARELOOP_LEARNER_API_*: whose learner tokens intake takes, and how often."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_", extra="ignore")

    channels: dict[str, Channel] = own(
        "learner_api",
        "channels",
        {"app": Channel.APP, "chat": Channel.CHAT},
        "The sources whose learner tokens are accepted, each with the channel its tickets "
        'are on, as JSON: `{"app": "app", "chat": "chat"}`.',
    )
    rate_per_learner: Annotated[int, Field(ge=0)] = own(
        "learner_api", "rate_per_learner", 30, "Calls per learner per window (0: off)."
    )
    rate_learner_window_seconds: Annotated[int, Field(ge=1)] = own(
        "learner_api", "rate_learner_window_seconds", 60, "Window of the per-learner limit."
    )
    rate_per_source: Annotated[int, Field(ge=0)] = own(
        "learner_api", "rate_per_source", 3000, "Calls per source (app, chat) per window (0: off)."
    )
    rate_source_window_seconds: Annotated[int, Field(ge=1)] = own(
        "learner_api", "rate_source_window_seconds", 60, "Window of the per-source limit."
    )


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class NewTicket(_In):
    """A ticket the learner opens in the app."""

    subject: Line = Field(min_length=1, max_length=200)
    description: Text = Field(min_length=1, max_length=20_000)
    course_id: Line | None = Field(None, max_length=100)
    order_id: Line | None = Field(None, max_length=100)
    language: str | None = Field(None, pattern=r"^(zh|en)$", description="Detected when absent.")
    attachments: tuple[SubmittedAttachment, ...] = Field((), max_length=10)
    external_id: Line | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The app's id for it (or send Idempotency-Key): the same id from the same "
        "learner is one ticket.",
    )


class NewMessage(_In):
    """A message the learner writes on a ticket."""

    message_id: Line | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The app's id for the message (or send Idempotency-Key): the same id "
        "twice is one message.",
    )
    text: Text = Field(min_length=1, max_length=20_000)
    attachments: tuple[SubmittedAttachment, ...] = Field((), max_length=10)


class ChatMessage(_In):
    """One message of a chat conversation, as the chat widget sends it."""

    conversation_id: Line = Field(
        min_length=1, max_length=200, description="One conversation is one ticket."
    )
    message_id: Line = Field(
        min_length=1, max_length=200, description="The same id twice is one message."
    )
    text: Text = Field(min_length=1, max_length=20_000)
    sent_at: AwareDatetime = Field(description="When the learner sent it, with a time zone.")
    attachments: tuple[SubmittedAttachment, ...] = Field((), max_length=10)


# ---- pure: what each call publishes ---------------------------------------------------------


def learner_of(claims: LearnerClaims) -> Learner:
    return Learner(
        name=" ".join(claims.name.split()),
        email=claims.email.lower() if claims.email else None,
        phone=normal_phone(claims.phone),
        learner_id=claims.learner_id,
    )


def _scoped(claims: LearnerClaims, key: str) -> str:
    """A key a learner's device chose, as only that learner's: two learners picking the same
    Idempotency-Key must not name one ticket."""
    return f"{claims.learner_id}/{key}"


def new_ticket_digest(claims: LearnerClaims, ticket: NewTicket) -> str:
    """Who and what, for a ticket sent without a key: a retry of it hashes the same."""
    digest = hashlib.sha256()
    for part in (claims.source, claims.learner_id, " ".join(ticket.subject.split())):
        digest.update(part.encode())
        digest.update(b"\x00")  # validated text never holds NUL: parts cannot run together
    digest.update(ticket.description.encode())
    return digest.hexdigest()


def opened_ticket(
    claims: LearnerClaims,
    ticket: NewTicket,
    *,
    channel: Channel,
    key: str | None,
    derived_window: int | None,
    received_at: datetime,
) -> TicketSubmitted:
    """The ticket a learner opens: named by their key, else by its content within a window."""
    if key is not None:
        ticket_id = ticket_id_for(
            channel=channel, source=claims.source, external_id=_scoped(claims, key)
        )
    else:
        assert derived_window is not None
        digest = new_ticket_digest(claims, ticket)
        ticket_id = derived_ticket_id(channel=channel, digest=digest, window=derived_window)
    return TicketSubmitted(
        ticket_id=ticket_id,
        channel=channel,
        source=claims.source,
        external_id=key,
        learner=learner_of(claims),
        subject=" ".join(ticket.subject.split()),
        description=ticket.description,
        course_id=ticket.course_id,
        order_id=ticket.order_id,
        language=ticket.language or detect_language(ticket.subject, ticket.description),
        attachments=tuple(a.as_event() for a in ticket.attachments),
        submitted_at=received_at,
    )


def posted_message(
    claims: LearnerClaims,
    message: NewMessage,
    *,
    ticket: UUID | str,
    channel: Channel,
    native_id: str,
    received_at: datetime,
) -> TicketSubmitted:
    """A message on a ticket named by id (that ticket) or by number (`reply_to`; the ticket
    id is then the message's own, for desk to open a ticket with if the number names none)."""
    scoped = _scoped(claims, native_id)
    if isinstance(ticket, UUID):
        ticket_id, reply_to = ticket, None
    else:
        ticket_id = ticket_id_for(
            channel=channel, source=claims.source, external_id=f"message:{scoped}"
        )
        reply_to = ticket
    return TicketSubmitted(
        ticket_id=ticket_id,
        channel=channel,
        source=claims.source,
        external_id=native_id,
        learner=learner_of(claims),
        subject=first_line(message.text, limit=SUBJECT_LENGTH),
        description=message.text,
        language=detect_language(message.text),
        attachments=tuple(a.as_event() for a in message.attachments),
        submitted_at=received_at,
        message_id=message_id_for(channel, claims.source, scoped),
        reply_to=reply_to,
    )


def chat_ticket(
    claims: LearnerClaims, message: ChatMessage, *, received_at: datetime
) -> TicketSubmitted:
    """A chat message: its conversation names the ticket (so a conversation's messages share
    the Kafka key and stay in order), its own id names the message. It is dated when the
    learner sent it, unless that is after careloop received it (a fast clock)."""
    return TicketSubmitted(
        ticket_id=ticket_id_for(
            channel=Channel.CHAT, source=claims.source, external_id=message.conversation_id
        ),
        channel=Channel.CHAT,
        source=claims.source,
        external_id=message.conversation_id,
        learner=learner_of(claims),
        subject=first_line(message.text, limit=SUBJECT_LENGTH),
        description=message.text,
        language=detect_language(message.text),
        attachments=tuple(a.as_event() for a in message.attachments),
        submitted_at=min(message.sent_at, received_at),
        message_id=message_id_for(Channel.CHAT, claims.source, message.message_id),
    )


def ticket_ref(value: str) -> UUID | str:
    """A ticket as a path names it: its id, or its `CL-` number."""
    if _NUMBER.match(value):
        return value
    try:
        return UUID(value)
    except ValueError:
        raise RequestValidationError(
            [
                {
                    "loc": ("path", "ticket"),
                    "msg": "a ticket id (UUID) or number (CL- and at least six digits)",
                    "type": "value_error",
                }
            ]
        ) from None


# ---- routes ---------------------------------------------------------------------------------


def _responses() -> dict[int | str, dict[str, Any]]:
    retry = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    return {
        **problems(400, 413, 422),
        401: {
            "model": Unauthenticated,
            "description": "No learner token, or one that is forged, expired or from a source "
            "this API does not take",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        },
        429: {
            "model": RateLimited,
            "description": "Too many calls for this learner or source",
            "headers": retry,
        },
        503: {
            "model": OutcomeUnknown,
            "description": "Kafka did not acknowledge in time: the outcome is unknown; the "
            "same call again (same key or message id) is safe",
            "headers": retry,
        },
    }


def routes(
    ctx: Context[IntakeSettings],
    settings: LearnerApiSettings | None = None,
    signing: SigningSettings | None = None,
) -> APIRouter:
    own_settings = settings or LearnerApiSettings()
    signing = signing or SigningSettings()
    secrets = signing.secrets_in_use()
    accepted = {s: secrets[s] for s in own_settings.channels if s in secrets}
    limiter = RateLimiter(
        lambda: ctx.redis, scope="intake", timeout_seconds=ctx.settings.redis_timeout_seconds
    )
    router = APIRouter(
        route_class=Utf8JsonRoute,
        max_body_size=ctx.settings.http_max_body_bytes,
        tags=["learner API"],
    )

    def claims_of(request: Request) -> LearnerClaims:
        token = bearer(request.headers.get("authorization"))
        if token is None:
            raise Refused("send the learner token as Authorization: Bearer <token>")
        return verify_learner_token(
            token, accepted, max_age_seconds=signing.learner_token_max_age_seconds
        )

    async def limited(claims: LearnerClaims) -> JSONResponse | None:
        verdict = await limiter.hit(
            [
                Limit(
                    "learner",
                    f"{claims.source}:{claims.learner_id}",
                    own_settings.rate_per_learner,
                    own_settings.rate_learner_window_seconds,
                ),
                Limit(
                    "source",
                    f"learner-api:{claims.source}",
                    own_settings.rate_per_source,
                    own_settings.rate_source_window_seconds,
                ),
            ]
        )
        return None if verdict.allowed else too_many(verdict, what="calls")

    @router.post(
        "/v1/learner/tickets",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Published,
        summary="The learner opens a ticket (app)",
        description="`Authorization: Bearer <learner token>`. The same external_id or "
        "Idempotency-Key from the same learner is one ticket; without either, the same "
        "subject and description within CARELOOP_INTAKE_DERIVED_KEY_WINDOW_SECONDS are.",
        responses=_responses(),
    )
    async def open_ticket(
        request: Request,
        body: NewTicket,
        idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
    ) -> Published | JSONResponse:
        try:
            claims = claims_of(request)
        except Refused as refused:
            return unauthenticated(refused, scheme="Bearer")
        if (refusal := await limited(claims)) is not None:
            return refusal
        received_at = now()
        key = body.external_id or idempotency_key
        window = None
        if key is None:
            digest = new_ticket_digest(claims, body)
            window = await first_window(ctx, digest=digest, at=received_at)
        ticket = opened_ticket(
            claims,
            body,
            channel=own_settings.channels[claims.source],
            key=key,
            derived_window=window,
            received_at=received_at,
        )
        return await publish(ctx, ticket, retry="the same key names the same ticket")

    @router.post(
        "/v1/learner/tickets/{ticket}/messages",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Published,
        summary="The learner writes on a ticket (app)",
        description="`{ticket}` is the ticket's id or its CL- number. Give the message an id "
        "(`message_id`, or the Idempotency-Key header): the same id twice is one message. Desk "
        "appends it to the ticket (reopening it when resolved), or opens a new ticket linked "
        "to it when the ticket is closed or not this learner's.",
        responses=_responses(),
    )
    async def post_message(
        request: Request,
        ticket: Annotated[str, Path(max_length=100, description="A ticket id or CL- number")],
        body: NewMessage,
        idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
    ) -> Published | JSONResponse:
        try:
            claims = claims_of(request)
        except Refused as refused:
            return unauthenticated(refused, scheme="Bearer")
        ref = ticket_ref(ticket)
        native_id = body.message_id or idempotency_key
        if native_id is None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", "message_id"),
                        "msg": "give the message an id (message_id or the Idempotency-Key "
                        "header), so that a retry is one message",
                        "type": "missing",
                    }
                ]
            )
        if (refusal := await limited(claims)) is not None:
            return refusal
        message = posted_message(
            claims,
            body,
            ticket=ref,
            channel=own_settings.channels[claims.source],
            native_id=native_id,
            received_at=now(),
        )
        return await publish(ctx, message, retry="the same message id is one message")

    @router.post(
        "/v1/chat/messages",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Published,
        summary="A chat message (chat widget)",
        description="`Authorization: Bearer <learner token>`. A conversation is one ticket: its "
        "first message opens it, later ones are appended in order. The same message_id twice "
        "is one message.",
        responses=_responses(),
    )
    async def chat_message(request: Request, body: ChatMessage) -> Published | JSONResponse:
        try:
            claims = claims_of(request)
        except Refused as refused:
            return unauthenticated(refused, scheme="Bearer")
        if (refusal := await limited(claims)) is not None:
            return refusal
        message = chat_ticket(claims, body, received_at=now())
        return await publish(ctx, message, retry="the same message_id is one message")

    return router
