"""An article from an agent's reply (001 §三.1): "make an article from this reply" on a ticket's
page asks knowledge for a draft, and knowledge's answer lands in the ticket's history.

desk talks to knowledge as to every other service, through events: `article.draft_requested`
(careloop.tickets.v1) carries the reply, the ticket's category and language and who asked;
knowledge makes the draft as its POST /v1/articles/from-reply does (owned by that agent, for an
editor to publish) and answers `article.drafted` (careloop.knowledge.v1) with the article's
page. knowledge being down delays the draft, never the agent: the request waits in desk's
outbox and on the topic. The article's id is desk's, one per reply and agent, so a second
click makes no second draft.

An article is for every learner, so the draft never carries the one learner's personal data:
their name, e-mail address, phone and LMS id as the ticket knows them become placeholders, and
knowledge masks any other e-mail address or phone number in it (`shared.retention.masked`).
"""

from collections.abc import Mapping
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import asyncpg

from services.desk import repo
from shared import outbox
from shared.events import ArticleDrafted, ArticleDraftRequested, Category, Envelope, new_event, now
from shared.inbox import Handler
from shared.retention import masked

DRAFTED = "article_drafted"  # the ticket history's kind


def article_id_of(reply_id: UUID, agent_id: str) -> UUID:
    """The draft's id: the same for the same reply and agent, whoever computes it."""
    return uuid5(NAMESPACE_URL, f"careloop:article-from-reply:{reply_id}:{agent_id}")


def without_learner(text: str, learner: Mapping[str, Any], language: str | None) -> str:
    """`text` with the learner's name, contacts and LMS id as placeholders, and any other e-mail
    address or phone number masked. A one-character name is left: it would hit ordinary words."""
    placeholders = {
        "name": "[学员]" if language == "zh" else "[learner]",
        "email": "[email]",
        "phone": "[phone]",
        "learner_id": "[learner id]",
        "wechat_openid": "[wechat]",
        "weibo_uid": "[weibo]",
    }
    known = {k: str(learner[k]).strip() for k in placeholders if learner.get(k)}
    for key in sorted(known, key=lambda k: -len(known[k])):  # a longer value before its part
        if len(known[key]) > 1:
            text = text.replace(known[key], placeholders[key])
    # Masked here too, not only by knowledge: the reply travels on careloop.tickets.v1.
    return masked(text)


async def request_draft(
    conn: asyncpg.Connection, *, ticket: asyncpg.Record, reply_id: UUID, by: str
) -> UUID | None:
    """Stage the request for a draft of the ticket's reply `reply_id`; the article's id, or
    None when the ticket has no such reply."""
    body = await conn.fetchval(
        "SELECT body FROM replies WHERE reply_id = $1 AND ticket_id = $2",
        reply_id,
        ticket["ticket_id"],
    )
    if body is None:
        return None
    article_id = article_id_of(reply_id, by)
    language = ticket["language"] if ticket["language"] in ("zh", "en") else None
    asked = ArticleDraftRequested(
        ticket_id=ticket["ticket_id"],
        article_id=article_id,
        reply=without_learner(body, ticket["learner"], language),
        category=Category(ticket["category"] or Category.OTHER),
        language=language,
        by=by,
        requested_at=now(),
    )
    await outbox.add(conn, [new_event(asked, producer="desk")])
    return article_id


async def on_drafted(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """knowledge made the draft: the ticket's history says so, with the article's page."""
    drafted: list[ArticleDrafted] = [e.data for e in events]
    await repo.add_history(
        conn,
        [
            (
                d.ticket_id,
                DRAFTED,
                d.by,
                {"article_id": str(d.article_id), "title": d.title, "url": d.url},
            )
            for d in drafted
        ],
    )


def event_handlers() -> dict[str, Handler]:
    return {ArticleDrafted.TYPE: on_drafted}
