"""notify's event handlers: ticket events become deliveries (`senders` and `http_senders`
work them off).

ticket.created, ticket.routed, replied, resolved, merged, note_added, survey.requested,
routing's SLA events and incident notices are idempotent by the event's own key (a contact
and its confirmation per ticket, the first triage per ticket, a delivery per delivery key, an
agent's e-mail per event and agent, a notice per notice id), so none of them costs an inbox
row: `IDEMPOTENT` lists them.
ticket.assigned and ticket.queued are not: whether they become a message depends on when the
confirmation went, so a late redelivery could decide differently; the inbox applies them once.
"""

from typing import Any

import asyncpg

from services.notify import repo
from services.notify.cases import on_case_concluded
from services.notify.domain import Contacts, choose_channel, learner_subject, notice_words
from services.notify.settings import NotifySettings
from shared.events import (
    ArticlesSuggested,
    CaseConcluded,
    CourseChangeNoticeRequested,
    Envelope,
    IncidentNoticeRequested,
    NotificationKind,
    SlaAtRisk,
    SlaBreached,
    SlaWarning,
    SurveyPeriodicRequested,
    SurveyRequested,
    TicketAssigned,
    TicketCreated,
    TicketMerged,
    TicketNoteAdded,
    TicketQueued,
    TicketReplied,
    TicketResolved,
    TicketRouted,
    TicketTriaged,
)
from shared.inbox import Handler

SELF_SERVED = "self_served"
# Resolved with its incident: the learner's one message is the incident's resolution notice.
BY_INCIDENT = "incident"
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
    language = str(context.locale) if context and context.locale else t.language
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
        language=language,
        subject=learner_subject(t.subject, source=t.source, language=language),
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
                incident_url=getattr(e.data, "incident_url", None),
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
    # learner who said an offered article solved it is not asked again, nor is one whose
    # ticket its incident resolved (the incident's resolution notice tells them).
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
            if e.data.resolution_code not in (SELF_SERVED, BY_INCIDENT)
        ],
    )


async def on_merged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """The learner of a duplicate is told the number their request continues under, on
    their channel (the duplicate's own ticket.closed, reason merged, sends nothing)."""
    await repo.add_deliveries(
        conn,
        [
            _delivery(
                NotificationKind.MERGED,
                str(e.event_id),
                e,
                number=e.data.number,
                into_number=e.data.into_number,
                portal_url=e.data.portal_url,
            )
            for e in events
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


def notice(n: IncidentNoticeRequested, *, available: frozenset[str]) -> repo.Notice:
    """An incident notice as a delivery (`learner_notice`)."""
    return learner_notice(
        n,
        available=available,
        what=f"incident notice {n.notice_id}",
        words={
            "title": n.title,
            "body": notice_words(n.body, n.status_url),
            "status_url": n.status_url,
        },
    )


def change_notice(n: CourseChangeNoticeRequested, *, available: frozenset[str]) -> repo.Notice:
    """A course change's notice, sent as an incident's is; its link is the learner's reply page
    (`reply`), and an answer to the learner's own request has none."""
    return learner_notice(
        n,
        available=available,
        what=f"course change notice {n.notice_id}",
        words={
            "title": n.title,
            "body": notice_words(n.body, n.reply_url) if n.reply_url else n.body,
            "status_url": n.reply_url or "",
            "reply": n.reply_url is not None,
        },
    )


def learner_notice(
    n: IncidentNoticeRequested | CourseChangeNoticeRequested | SurveyPeriodicRequested,
    *,
    available: frozenset[str],
    what: str,
    words: dict[str, Any],
) -> repo.Notice:
    """A notice as a delivery: on the channel its sender named when notify answers there and
    has the learner's contact, else on the channel a ticket of theirs would be answered on. A
    notice that can reach the learner nowhere is refused (a dead letter)."""
    learner = n.learner
    if isinstance(n, SurveyPeriodicRequested):  # about no ticket: no channel of its own
        notice_id, ticket_channel = n.survey_id, ""
    else:
        notice_id, ticket_channel = n.notice_id, n.channel
    contacts = Contacts(
        email=learner.email,
        phone=learner.phone,
        wechat_openid=learner.wechat_openid,
        weibo_uid=learner.weibo_uid,
    )
    addresses = {
        channel: address
        for channel, address in (
            ("email", learner.email),
            ("sms", learner.phone),
            ("wechat", learner.wechat_openid),
            ("weibo", learner.weibo_uid),
        )
        if address
    }
    channel = choose_channel(
        ticket_channel=ticket_channel,
        preferred=None,
        contacts=contacts,
        available=available,
    )
    if channel is None:
        raise ValueError(
            f"{what}: the learner has no contact on any channel notify "
            f"answers on ({', '.join(sorted(available))})"
        )
    return repo.Notice(
        notice_id=notice_id,
        ticket_id=n.ticket_id,
        name=learner.name,
        channel=channel,
        address=addresses[channel],
        language=n.locale,
        payload={"name": learner.name, "language": n.locale, **words},
        requested_at=n.requested_at,
    )


PERIODIC_TITLE = {
    "zh": "【学习回访】请告诉我们您的学习体验",
    "en": "[Follow-up] Tell us how your learning goes",
}
PERIODIC_BODY = {
    "zh": "感谢您在这里学习。我们每季度请在读学员为课程、老师和我们的服务打分，只需两分钟。",
    "en": "Thank you for learning with us. Each quarter we ask our learners to rate their courses, "
    "their teachers and our service; it takes two minutes.",
}
PERIODIC_LINK = {"zh": "填写问卷：", "en": "Answer here:"}


def periodic_survey(s: SurveyPeriodicRequested, *, available: frozenset[str]) -> repo.Notice:
    """The follow-up programme's periodic survey, sent as a ticket-less notice (one per survey
    id) on the learner's channel, in their language, with the survey's link."""
    return learner_notice(
        s,
        available=available,
        what=f"periodic survey {s.survey_id}",
        words={
            "title": PERIODIC_TITLE[s.locale],
            "body": PERIODIC_BODY[s.locale],
            "status_url": s.survey_url,
            "link_words": PERIODIC_LINK[s.locale],
        },
    )


def event_handlers(settings: NotifySettings) -> dict[str, Handler]:
    """Every consumed event type's handler, with the channels this deployment answers on,
    the window within which a progress message is merged into the confirmation, and the
    workspace a mention links to."""
    available = frozenset(settings.channels)
    workspace = settings.desk_url.rstrip("/")

    async def on_note_added(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """An e-mail to each agent an internal note mentions (desk leaves the author out),
        keyed by the note's event and the agent, with the note and its ticket's link in the
        workspace."""
        await repo.add_agent_deliveries(
            conn,
            [
                repo.AgentDelivery(
                    delivery_key=f"{NotificationKind.MENTION}:{e.event_id}:{m.agent_id}",
                    ticket_id=e.data.ticket_id,
                    kind=NotificationKind.MENTION,
                    payload={
                        "name": m.name or m.agent_id,
                        "number": e.data.number,
                        "by": e.data.agent_id,
                        "body": e.data.body,
                        "workspace_url": f"{workspace}/tickets/{e.data.number}",
                    },
                    address=m.email,
                )
                for e in events
                for m in e.data.mentions
                if m.email
            ],
        )

    async def on_notice(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        await repo.add_notices(conn, [notice(e.data, available=available) for e in events])

    async def on_change_notice(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        await repo.add_notices(conn, [change_notice(e.data, available=available) for e in events])

    async def on_periodic_survey(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        await repo.add_notices(conn, [periodic_survey(e.data, available=available) for e in events])

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
        TicketMerged.TYPE: on_merged,
        TicketNoteAdded.TYPE: on_note_added,
        IncidentNoticeRequested.TYPE: on_notice,
        CourseChangeNoticeRequested.TYPE: on_change_notice,
        CaseConcluded.TYPE: on_case_concluded,
        ArticlesSuggested.TYPE: on_articles,
        SurveyRequested.TYPE: on_survey,
        SurveyPeriodicRequested.TYPE: on_periodic_survey,
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
        TicketMerged.TYPE,  # a delivery per event
        TicketNoteAdded.TYPE,  # an e-mail per event and agent
        IncidentNoticeRequested.TYPE,  # a delivery per notice
        CourseChangeNoticeRequested.TYPE,  # a delivery per notice
        CaseConcluded.TYPE,  # a delivery per case
        ArticlesSuggested.TYPE,
        SurveyRequested.TYPE,
        SurveyPeriodicRequested.TYPE,  # a delivery per survey
        *SLA_KINDS,
    }
)
