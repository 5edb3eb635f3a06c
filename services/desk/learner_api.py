"""The learner API's read side: the app and the chat widget list a learner's tickets and read
one with its conversation. Writing (opening a ticket, posting a message) goes through intake.

The caller holds a learner token its source minted (shared.signing); a learner sees only
tickets desk matched to their learner id, and anyone else's ticket is answered like one that
does not exist (404), so ids and numbers cannot be probed.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query
from pydantic import BaseModel

from services.desk import handlers, repo
from services.desk.domain import NotFound, Status
from services.desk.portal import EVENTS_SHOWN
from services.desk.settings import DeskSettings
from shared.http import Utf8JsonRoute
from shared.params import DIGITS
from shared.problems import problems
from shared.service import Context
from shared.signing import LearnerClaims, Refused, SigningSettings, bearer, verify_learner_token


class LearnerTicket(BaseModel):
    ticket_id: UUID
    number: str
    status: Status
    subject: str
    channel: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    portal_url: str


class FileLink(BaseModel):
    name: str
    content_type: str | None = None
    size: int | None = None
    url: str | None = None


class ConversationItem(BaseModel):
    kind: Literal["description", "message", "reply", "event"]
    at: datetime
    author: Literal["learner", "agent", "careloop"]
    agent: str | None = None
    channel: str | None = None
    body: str | None = None
    event: str | None = None
    attachments: list[FileLink] = []


class LearnerTicketDetail(LearnerTicket):
    conversation: list[ConversationItem]


def learner_conversation(rows: Sequence[Mapping[str, Any]]) -> list[ConversationItem]:
    """What the learner may read of a ticket: their messages, the replies, and the events the
    portal shows (with the resolution's text); internal notes of triage and escalation stay out."""
    items = []
    for row in rows:
        kind = row["kind"]
        if kind == "event":
            if row["body"] not in EVENTS_SHOWN:
                continue
            detail = row["detail"] or {}
            items.append(
                ConversationItem(
                    kind=kind,
                    at=row["at"],
                    author="careloop",
                    event=row["body"],
                    body=detail.get("resolution") if row["body"] == "resolved" else None,
                )
            )
            continue
        mine = kind in ("description", "message")
        items.append(
            ConversationItem(
                kind=kind,
                at=row["at"],
                author="learner" if mine else "agent",
                agent=None if mine else row["author"],
                channel=row["channel"],
                body=row["body"],
                attachments=[FileLink(**a) for a in row["attachments"] or ()],
            )
        )
    return items


def routes(ctx: Context[DeskSettings]) -> APIRouter:
    signing = SigningSettings()
    links = handlers.links_for(ctx.settings)
    router = APIRouter(
        route_class=Utf8JsonRoute,
        tags=["learner"],
        max_body_size=ctx.settings.http_max_body_bytes,
    )

    def learner(authorization: Annotated[str | None, Header()] = None) -> LearnerClaims:
        token = bearer(authorization)
        if token is None:
            raise HTTPException(
                401,
                "a learner token is required: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return verify_learner_token(
                token,
                signing.secrets_in_use(),
                max_age_seconds=signing.learner_token_max_age_seconds,
            )
        except Refused as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc

    Learner = Annotated[LearnerClaims, Depends(learner)]

    def summary(row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **{k: row[k] for k in LearnerTicket.model_fields if k != "portal_url"},
            "portal_url": links.portal_url(row["ticket_id"]),
        }

    @router.get(
        "/v1/learner/tickets",
        summary="The signed-in learner's tickets, newest first",
        responses=problems(401, 422, 503),
    )
    async def my_tickets(
        who: Learner, limit: Annotated[int, Query(ge=1, le=200), DIGITS] = 50
    ) -> list[LearnerTicket]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.tickets_of_learner(conn, who.learner_id, limit=limit)
        return [LearnerTicket(**summary(r)) for r in rows]

    @router.get(
        "/v1/learner/tickets/{ref}",
        summary="One of the learner's tickets, by id or CL- number, with its conversation",
        responses=problems(401, 404, 422, 503),
    )
    async def my_ticket(
        who: Learner,
        ref: Annotated[str, Path(max_length=100, description="A ticket id or its CL- number")],
    ) -> LearnerTicketDetail:
        async with ctx.pool.acquire() as conn:
            try:
                ticket_id = await handlers.ticket_ref(conn, ref)
            except NotFound as exc:
                raise HTTPException(404, "no such ticket") from exc
            ticket = await repo.get_ticket(conn, ticket_id)
            if ticket is None or ticket["learner_id"] != who.learner_id:
                raise HTTPException(404, "no such ticket")
            rows = await repo.conversation(conn, ticket_id)
        return LearnerTicketDetail(**summary(ticket), conversation=learner_conversation(rows))

    return router
