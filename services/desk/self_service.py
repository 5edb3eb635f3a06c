"""Self-service: the learner's page offers the articles knowledge suggested for the ticket, and
"this solved it" resolves and closes the ticket as self-served (knowledge counts it deflected).

The suggestions arrive on careloop.knowledge.v1 (`articles.suggested`, keyed by ticket): one for
a new ticket, and again, ranked in its category, once triage decided it or a person corrected
it. Only a list made later than the one held replaces it, so a redelivery or a late event
changes nothing and needs no inbox row.
"""

import json
from typing import Any
from uuid import UUID

import asyncpg

from services.desk import repo
from services.desk.domain import Conflict, ResolutionCode, Status
from services.desk.links import Links
from shared import outbox
from shared.events import (
    ArticlesSuggested,
    CloseReason,
    Envelope,
    TicketClosed,
    TicketResolved,
    new_event,
    now,
)
from shared.inbox import Handler

PRODUCER = "desk"
OFFERED = 3  # a page offers the best three: a shortlist, not a search
# A learner may close their own request as solved while nobody has answered it yet, or while
# it waits for them; a resolved ticket is closed with the confirmation answer instead.
SELF_SERVABLE = frozenset(
    {Status.NEW, Status.QUEUED, Status.ASSIGNED, Status.REOPENED, Status.PENDING_LEARNER}
)
IDEMPOTENT = frozenset({ArticlesSuggested.TYPE})


async def on_suggested(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    latest: dict[UUID, ArticlesSuggested] = {}
    for e in events:
        s: ArticlesSuggested = e.data
        held = latest.get(s.ticket_id)
        if held is None or held.suggested_at < s.suggested_at:
            latest[s.ticket_id] = s
    await conn.execute(
        """
        UPDATE tickets t SET suggested_articles = o.articles::jsonb, suggested_at = o.at
        FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS o(ticket_id, articles, at)
        WHERE t.ticket_id = o.ticket_id AND (t.suggested_at IS NULL OR t.suggested_at < o.at)
        """,
        list(latest),
        [
            json.dumps(
                [
                    {"article_id": str(a.article_id), "title": a.title, "url": a.url}
                    for a in s.articles[:OFFERED]
                ],
                ensure_ascii=False,
            )
            for s in latest.values()
        ],
        [s.suggested_at for s in latest.values()],
    )


def event_handlers() -> dict[str, Handler]:
    return {ArticlesSuggested.TYPE: on_suggested}


def offered(ticket: asyncpg.Record) -> list[dict[str, str]]:
    """The articles the ticket's page offers (none once it is resolved or closed)."""
    if Status(ticket["status"]) not in SELF_SERVABLE:
        return []
    return list(ticket["suggested_articles"] or [])


async def solved_by_article(
    conn: asyncpg.Connection, ticket: asyncpg.Record, *, article_id: str, links: Links
) -> None:
    """The learner says an offered article solved it: the ticket is resolved as self-served
    and closed as confirmed at once (the learner answered already), in the caller's
    transaction, the ticket locked. Conflict when it is not open or the article was not
    offered."""
    article = next((a for a in offered(ticket) if a["article_id"] == article_id), None)
    if article is None:
        raise Conflict("this ticket offers no such article now")
    ticket_id, at = ticket["ticket_id"], now()
    await repo.set_status(
        conn,
        ticket_id,
        Status.CLOSED,
        resolved_at=at,
        closed_at=at,
        resolution_code=ResolutionCode.SELF_SERVED.value,
    )
    detail = {"resolution_code": ResolutionCode.SELF_SERVED, "article": article}
    await repo.add_history(
        conn,
        [
            (ticket_id, "resolved", "learner", detail),
            (ticket_id, "closed", "learner", {"reason": CloseReason.CONFIRMED}),
        ],
    )
    portal_url = links.portal_url(ticket_id)
    await outbox.add(
        conn,
        [
            new_event(
                TicketResolved(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    agent_id=ticket["assignee_id"] or "learner",
                    resolution=f"{article['title']} {article['url']}",
                    confirm_url=portal_url,
                    created_at=ticket["created_at"],
                    resolved_at=at,
                    portal_url=portal_url,
                    resolution_code=ResolutionCode.SELF_SERVED.value,
                ),
                producer=PRODUCER,
            ),
            new_event(
                TicketClosed(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    reason=CloseReason.CONFIRMED,
                    created_at=ticket["created_at"],
                    closed_at=at,
                ),
                producer=PRODUCER,
            ),
        ],
    )
