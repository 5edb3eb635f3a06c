"""intake's edges: the web form API and the careloop.inbound.v1 consumer."""

import asyncio
from typing import Annotated, Any
from uuid import UUID

import structlog
from aiokafka import ConsumerRecord
from fastapi import APIRouter, Header, HTTPException, status
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel, ValidationError

from services.intake.domain import normalise
from services.intake.settings import IntakeSettings
from shared import telemetry, topics
from shared.errors import TRANSIENT_DRIVER_ERRORS
from shared.events import (
    Channel,
    Envelope,
    InboundSubmission,
    Submission,
    TicketSubmitted,
    new_event,
    now,
)
from shared.inbox import batch_subscriber_options, dead_letter_message
from shared.kafka import outgoing, publish_confirmed
from shared.service import Context

log = structlog.get_logger(__name__)
PRODUCER = "intake"


class Accepted(BaseModel):
    ticket_id: UUID
    duplicate: bool


def _seen_key(ticket_id: UUID) -> str:
    return f"careloop:intake:seen:{ticket_id}"


async def accept(ctx: Context[IntakeSettings], tickets: list[TicketSubmitted]) -> list[bool]:
    """Publish the tickets not seen before and wait for Kafka's ack; returns which were duplicates.

    Redis only saves a re-publish: desk creates a ticket once per id whatever intake sends.
    """
    keys = [_seen_key(t.ticket_id) for t in tickets]
    try:
        seen = [v is not None for v in await ctx.redis.mget(keys)]
    except TRANSIENT_DRIVER_ERRORS as exc:
        log.warning("dedupe window unavailable", error=repr(exc))
        seen = [False] * len(tickets)
    fresh = [t for t, s in zip(tickets, seen, strict=True) if not s]
    events: list[Envelope[Any]] = [new_event(t, producer=PRODUCER) for t in fresh]
    await asyncio.wait_for(
        publish_confirmed(ctx.broker, [outgoing(e) for e in events]),
        timeout=ctx.settings.publish_timeout_seconds,
    )
    try:
        ttl = ctx.settings.dedupe_ttl_seconds
        async with ctx.redis.pipeline(transaction=False) as pipe:
            for t in fresh:
                if t.external_id is not None:
                    pipe.set(_seen_key(t.ticket_id), "1", ex=ttl)
            await pipe.execute()
    except TRANSIENT_DRIVER_ERRORS as exc:
        log.warning("dedupe window not updated", error=repr(exc))
    return seen


def http_routes(ctx: Context[IntakeSettings]) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/tickets",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Submit a ticket from the web form",
        responses={503: {"description": "Kafka did not acknowledge; safe to retry."}},
    )
    async def submit(
        submission: Submission,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Accepted:
        ticket = normalise(
            submission, channel=Channel.WEB, received_at=now(), idempotency_key=idempotency_key
        )
        try:
            [duplicate] = await accept(ctx, [ticket])
        except TRANSIENT_DRIVER_ERRORS as exc:
            log.error("submission not acknowledged", error=repr(exc))
            raise HTTPException(
                503, "the ticket was not stored; retry", headers={"Retry-After": "1"}
            ) from exc
        return Accepted(ticket_id=ticket.ticket_id, duplicate=duplicate)

    return router


def subscribe(ctx: Context[IntakeSettings]) -> None:
    """Consume careloop.inbound.v1; invalid submissions go to its dead-letter topic with the reason."""

    @ctx.broker.subscriber(
        topics.INBOUND,
        **batch_subscriber_options(ctx.settings, "intake"),
        title="intake:inbound",
    )
    async def on_inbound(message: KafkaMessage) -> None:
        raw = message.raw_message
        records: tuple[ConsumerRecord[Any, Any], ...] = raw if isinstance(raw, tuple) else (raw,)
        tickets, rejected = [], []
        for record in records:
            try:
                submission = InboundSubmission.model_validate_json(record.value)
            except ValidationError as exc:
                rejected.append(
                    dead_letter_message(record, error=_describe(exc), consumer="intake")
                )
                continue
            tickets.append(normalise(submission, channel=Channel.SERVICE, received_at=now()))
        if rejected:
            log.warning("inbound submissions rejected", count=len(rejected))
            await publish_confirmed(ctx.broker, rejected)
            telemetry.DEAD_LETTERS.labels("intake", topics.dlq(topics.INBOUND)).inc(len(rejected))
        if tickets:
            await accept(ctx, tickets)


def _describe(exc: ValidationError) -> str:
    """`field: problem; …`, the form a sender can act on."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}" for err in exc.errors()
    )
