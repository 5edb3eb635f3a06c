"""notify's event handlers: ticket events become deliveries (`senders` and `http_senders`
work them off).

ticket.created, ticket.routed, replied, resolved, survey.requested and routing's SLA events
are idempotent by the event's own key (a contact and its confirmation per ticket, the first
triage per ticket, a delivery per delivery key, an SLA e-mail per event and agent), so none of
them costs an inbox row: `IDEMPOTENT` lists them.
ticket.assigned and ticket.queued are not: whether they become a message depends on when the
confirmation went, so a late redelivery could decide differently; the inbox applies them once.
"""

from typing import Any

import asyncpg

from services.notify import repo
from services.notify.cases import on_case_concluded
from services.notify.domain import Contacts, choose_channel
from services.notify.settings import NotifySettings
from shared.events import (
    ArticlesSuggested,
    CaseConcluded,
    Envelope,
    NotificationKind,
    SlaAtRisk,
    SlaBreached,
    SlaWarning,
    SurveyRequested,
    TicketAssigned,
    TicketCreated,
    TicketQueued,
    TicketReplied,
    TicketResolved,
    TicketRouted,
    TicketTriaged,
)
from shared.inbox import Handler

SELF_SERVED = "self_served"
OFFERED = 3  # articles a confirmation offers at most


def contact(t: TicketCreated, *, available: frozenset[str]) -> repo.Contact:
    """Who a new ticket's messages go to, on which channel, in which language: the learner's
    own locale when the LMS told desk, else the language of the ticket."""
    learner, context = t.learner, t.learner_context
    contacts = Contacts(
        email=learner.email,
        phone=learner.phone,
        wechat_openid=learner.wechat_openid,
        weibo_uid=learner.weibo_uid,
    )
    return repo.Contact(
        ticket_id=t.ticket_id,
        number=t.number,
        name=learner.name,
        email=learner.email,
        phone=learner.phone,
        wechat_openid=learner.wechat_openid,
        weibo_uid=learner.weibo_uid,
        channel=str(t.channel),
        reply_channel=choose_channel(
            ticket_channel=str(t.channel),
            preferred=context.preferred_channel if context else None,
            contacts=contacts,
            available=available,
        ),
        portal_url=t.portal_url,
        language=str(context.locale) if context and context.locale else t.language,
        subject=t.subject,
        created_at=t.created_at,
    )


async def on_triaged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """ticket.routed, or ticket.triaged of older records: what the confirmation promises,
    and whether an agent has the ticket or it waits in a queue."""
    await repo.add_triage(
        conn,
        [
            repo.Triage(
                ticket_id=e.data.ticket_id,
                priority=str(e.data.priority),
                first_response_due_at=e.data.first_response_due_at,
                agent_id=getattr(e.data, "agent_id", None),  # ticket.triaged has none
            )
            for e in events
        ],
    )


def _delivery(
    kind: NotificationKind,
    key: str,
    e: Envelope[Any],
    *,
    portal_url: str | None = None,
    **payload: Any,
) -> repo.NewDelivery:
    """A delivery of `kind` keyed by `key`; the event's portal link, when it has one, is
    fresher than the one the ticket was created with (which the message uses otherwise)."""
    if portal_url:
        payload["portal_url"] = portal_url
    return repo.NewDelivery(
        delivery_key=f"{kind}:{key}",
        ticket_id=e.data.ticket_id,
        kind=kind,
        payload=payload,
    )


async def on_replied(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.add_deliveries(
        conn,
        [
            _delivery(
                NotificationKind.REPLY,
                str(e.data.reply_id),
                e,
                body=e.data.body,
                portal_url=e.data.portal_url,
            )
            for e in events
        ],
    )


async def on_resolved(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    # Keyed by the event's id: a ticket resolved twice (after a reopening) asks twice. A
    # learner who said an offered article solved it is not asked again.
    await repo.add_deliveries(
        conn,
        [
            _delivery(
                NotificationKind.CONFIRM_REQUEST,
                str(e.event_id),
                e,
                resolution=e.data.resolution,
                confirm_url=e.data.confirm_url,
                portal_url=e.data.portal_url,
            )
            for e in events
            if e.data.resolution_code != SELF_SERVED
        ],
    )


async def on_articles(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """knowledge's suggestions for a new ticket, which its confirmation offers (the best
    three at most: a message, not a search page)."""
    await repo.add_articles(
        conn,
        [
            (
                e.data.ticket_id,
                [{"title": a.title, "url": a.url} for a in e.data.articles[:OFFERED]],
            )
            for e in events
        ],
    )


async def on_survey(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.add_deliveries(
        conn,
        [
            _delivery(
                NotificationKind.SURVEY, str(e.data.survey_id), e, survey_url=e.data.survey_url
            )
            for e in events
        ],
    )


SLA_KINDS = {
    SlaWarning.TYPE: NotificationKind.SLA_WARNING,
    SlaBreached.TYPE: NotificationKind.SLA_BREACHED,
    SlaAtRisk.TYPE: NotificationKind.SLA_AT_RISK,
}


async def on_sla(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """routing's SLA warnings (to the assignee), escalations (to supervisors, to management)
    and at-risk predictions (to supervisors): an e-mail to each recipient with an address,
    keyed by the event and the agent."""
    await repo.add_agent_deliveries(
        conn,
        [
            repo.AgentDelivery(
                delivery_key=f"{kind}:{e.event_id}:{r.agent_id}",
                ticket_id=e.data.ticket_id,
                kind=kind,
                payload=sla_payload(e, name=r.name or r.agent_id),
                address=r.email,
            )
            for e in events
            for kind in [SLA_KINDS[e.type]]
            for r in e.data.recipients
            if r.email
        ],
    )


def sla_payload(e: Envelope[Any], *, name: str) -> dict[str, Any]:
    """What an agent's SLA e-mail says: the template values beside the ticket's own."""
    data = e.data
    return {
        "name": name,
        "target": str(data.target),
        "due_at": data.due_at.isoformat(),
        "priority": str(data.priority),
        "team": data.team,
        "assignee_id": data.assignee_id or "",
        "level": getattr(data, "level", 0),
        "overflow_team": getattr(data, "overflow_team", None) or "",
    }


def event_handlers(settings: NotifySettings) -> dict[str, Handler]:
    """Every consumed event type's handler, with the channels this deployment answers on
    and the window within which a progress message is merged into the confirmation."""
    available = frozenset(settings.channels)

    async def on_created(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        await repo.add_contacts_and_confirmations(
            conn, [contact(e.data, available=available) for e in events]
        )

    async def on_placed(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """ticket.assigned (an agent has it: who, and when to expect a reply) or
        ticket.queued (it waits for one: the expected wait)."""
        await repo.add_progress(
            conn,
            [
                repo.Progress(
                    delivery_key=f"{kind}:{e.event_id}",
                    ticket_id=e.data.ticket_id,
                    kind=kind,
                    agent_id=getattr(e.data, "agent_id", None),  # ticket.queued has none
                )
                for e in events
                for kind in [
                    NotificationKind.ASSIGNED
                    if e.type == TicketAssigned.TYPE
                    else NotificationKind.QUEUED
                ]
            ],
            merge_seconds=settings.progress_merge_seconds,
        )

    return {
        TicketCreated.TYPE: on_created,
        TicketRouted.TYPE: on_triaged,
        TicketTriaged.TYPE: on_triaged,
        TicketAssigned.TYPE: on_placed,
        TicketQueued.TYPE: on_placed,
        TicketReplied.TYPE: on_replied,
        TicketResolved.TYPE: on_resolved,
        CaseConcluded.TYPE: on_case_concluded,
        ArticlesSuggested.TYPE: on_articles,
        SurveyRequested.TYPE: on_survey,
        SlaWarning.TYPE: on_sla,
        SlaBreached.TYPE: on_sla,
        SlaAtRisk.TYPE: on_sla,
    }


IDEMPOTENT = frozenset(
    {
        TicketCreated.TYPE,
        TicketRouted.TYPE,
        TicketTriaged.TYPE,
        TicketReplied.TYPE,
        TicketResolved.TYPE,
        CaseConcluded.TYPE,  # a delivery per case
        ArticlesSuggested.TYPE,
        SurveyRequested.TYPE,
        *SLA_KINDS,
    }
)
