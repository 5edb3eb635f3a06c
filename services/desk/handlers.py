"""desk's use cases: the events it consumes, and what the agent API and the learner's pages do."""

import asyncio
import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import structlog
from uuid6 import uuid7

from services.desk import callbacks, repo
from services.desk.domain import (
    Answer,
    Caller,
    Conflict,
    Invalid,
    LowScore,
    NotAllowed,
    NotFound,
    ResolutionCode,
    SearchKind,
    Status,
    answer_outcome,
    check_macro,
    check_may_see,
    check_may_work,
    check_merge,
    check_transfer,
    content_key,
    low_score_outcome,
    mentioned,
    phone_digits,
    render_macro,
    same_learner,
    search_kind,
    team_for,
    thread_contact,
)
from services.desk.links import Links
from services.desk.settings import DeskSettings
from shared import outbox, tokens
from shared.events import (
    Attachment,
    Category,
    Channel,
    CloseReason,
    Envelope,
    EscalationReason,
    Learner,
    LearnerContext,
    Mentioned,
    Priority,
    ReopenReason,
    SlaAtRisk,
    SlaBreached,
    SlaWarning,
    SurveyAnswered,
    SurveyLowScore,
    SurveyRequested,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketEscalated,
    TicketMerged,
    TicketMessageReceived,
    TicketNoteAdded,
    TicketPendingLearner,
    TicketQueued,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    TicketResumed,
    TicketRetriaged,
    TicketRouted,
    TicketSubmitted,
    TicketTransferred,
    TicketTriaged,
    new_event,
    now,
)
from shared.inbox import Handler
from shared.searchwords import indexed, query
from shared.service import Context, every

log = structlog.get_logger(__name__)
PRODUCER = "desk"
# Names the new ticket a message opens when it cannot join the ticket it refers to.
LINKED_NAMESPACE = uuid.UUID("3b0f6d0e-1f43-4e8e-9a0e-6c9b1b5a7c21")

# ---- events -------------------------------------------------------------------------------


@cache
def _links(secret: str, public_url: str, max_age_days: float) -> Links:
    return Links(secret=secret, public_url=public_url, max_age_days=max_age_days)


def links_for(settings: DeskSettings) -> Links:
    """The signer of learners' links, made once per configuration."""
    return _links(
        settings.link_secret.get_secret_value(), settings.public_url, settings.link_max_age_days
    )


def event_handlers(settings: DeskSettings) -> dict[str, Handler]:
    """What desk does with each event it consumes."""
    links = links_for(settings)

    async def on_submitted(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
        """Create each ticket once and announce it; or, for a learner message that continues a
        ticket (`message_id`), append it there. Idempotent by the ticket id and the message
        id, so it needs no inbox row.

        A submission with its sender's key and no thread (the bulk: other services, the web
        form with a key) takes the batched path; the rest are decided one by one, in order.
        """
        plain: list[Envelope[Any]] = []
        for event in events:
            t: TicketSubmitted = event.data
            if t.external_id is not None and t.message_id is None and not t.reply_to:
                plain.append(event)
            else:
                if plain:
                    await _create(conn, plain, links)
                    plain = []
                await _decide(conn, event, links, settings)
        await _create(conn, plain, links)

    return {
        TicketSubmitted.TYPE: on_submitted,
        TicketRouted.TYPE: on_routed,
        TicketTriaged.TYPE: on_triaged,
        TicketQueued.TYPE: on_queued,
        TicketAssigned.TYPE: on_assigned,
        SurveyLowScore.TYPE: on_low_score,
        SurveyAnswered.TYPE: on_survey_answered,
        SurveyRequested.TYPE: on_survey_requested,
        SlaWarning.TYPE: on_sla,
        SlaBreached.TYPE: on_sla,
        SlaAtRisk.TYPE: on_sla,
    }


async def _create(
    conn: asyncpg.Connection,
    events: Sequence[Envelope[Any]],
    links: Links,
    *,
    decided: Sequence[repo.NewTicket] | None = None,
) -> list[UUID]:
    """Create the tickets (`decided`: as desk decided them, else as submitted); announce each
    one created now; returns their ids."""
    by_id: dict[UUID, tuple[repo.NewTicket, Envelope[Any]]] = {}
    for i, e in enumerate(events):
        new = decided[i] if decided is not None else repo.NewTicket(e.data)
        by_id[new.ticket_id or e.data.ticket_id] = (new, e)
    created = await repo.create_tickets(conn, [n for n, _ in by_id.values()])
    out = []
    for row in created:
        new, cause = by_id[row["ticket_id"]]
        t: TicketSubmitted = cause.data
        context = row["learner_context"]
        out.append(
            new_event(
                TicketCreated(
                    ticket_id=row["ticket_id"],
                    number=row["number"],
                    channel=t.channel,
                    source=t.source,
                    learner=_learner_of(row["learner"], t.learner),
                    subject=t.subject,
                    description=t.description,
                    course_id=t.course_id,
                    language=t.language,
                    created_at=row["created_at"],
                    learner_context=None if context is None else _context(context),
                    related_ticket_id=new.related_ticket_id,
                    portal_url=links.portal_url(row["ticket_id"]),
                ),
                producer=PRODUCER,
                cause=cause,
            )
        )
    await outbox.add(conn, out)
    return [row["ticket_id"] for row in created]


def _learner_of(stored: dict[str, Any], submitted: Learner) -> Learner:
    """The learner as stored: the submitted one, with the learner id desk matched."""
    matched = stored.get("learner_id")
    if matched == submitted.learner_id:
        return submitted
    return msgspec.structs.replace(submitted, learner_id=matched)


def _context(stored: dict[str, Any]) -> LearnerContext:
    return msgspec.convert(stored, LearnerContext, strict=False)


async def _decide(
    conn: asyncpg.Connection, event: Envelope[Any], links: Links, settings: DeskSettings
) -> None:
    """One submission that may continue a ticket: a follow-up there, a new ticket linked to
    it, a duplicate of something stored, or a new ticket."""
    t: TicketSubmitted = event.data
    if t.message_id is not None and await repo.message_seen(conn, t.message_id):
        return
    ticket = await repo.lock_ticket(conn, t.ticket_id)
    if ticket is not None and t.message_id is None:
        return  # the same submission again
    if ticket is None and t.reply_to:
        ticket = await repo.lock_by_number(conn, t.reply_to)
    contact = thread_contact(t)
    if ticket is None and contact is not None:
        since = now() - timedelta(days=settings.follow_up_days)
        ticket = await repo.lock_latest_by_contact(
            conn, channel=t.channel, contact=contact, since=since
        )
    if ticket is not None:
        if ticket["status"] != Status.CLOSED and same_learner(ticket["learner"], t.learner):
            await add_learner_message(
                conn,
                ticket,
                message_id=t.message_id or t.ticket_id,
                channel=t.channel,
                learner=t.learner,
                body=t.description,
                attachments=t.attachments,
                received_at=t.submitted_at,
                links=links,
                cause=event,
            )
            return
        # A stranger's reply, or a message on a closed ticket: a new ticket, linked.
        await open_linked_ticket(conn, ticket, t, links, cause=event)
        return
    key = content_key(t)
    if key is not None:
        since = now() - timedelta(seconds=settings.duplicate_window_seconds)
        earlier = await repo.recent_with_content(conn, key, since)
        if earlier is not None:
            await repo.note_also_received(
                conn, earlier["ticket_id"], submission=t.ticket_id, channel=t.channel
            )
            return
    await _create(
        conn, [event], links, decided=[repo.NewTicket(t, thread_contact=contact, content_key=key)]
    )


async def open_linked_ticket(
    conn: asyncpg.Connection,
    ticket: asyncpg.Record,
    message: TicketSubmitted,
    links: Links,
    *,
    cause: Envelope[Any] | None = None,
) -> UUID:
    """A message that cannot join `ticket` (a stranger's, or one on a closed ticket) opens a
    new ticket linked to it, named by the message: delivered again, it opens that one once."""
    linked_id = uuid.uuid5(LINKED_NAMESPACE, str(message.message_id or message.ticket_id))
    new = repo.NewTicket(
        message,
        thread_contact=thread_contact(message),
        related_ticket_id=ticket["ticket_id"],
        ticket_id=linked_id,
    )
    await _create(conn, [cause or new_event(message, producer=PRODUCER)], links, decided=[new])
    return linked_id


async def add_learner_message(
    conn: asyncpg.Connection,
    ticket: asyncpg.Record,
    *,
    message_id: UUID,
    channel: Channel,
    learner: Learner,
    body: str,
    attachments: Sequence[Attachment],
    received_at: datetime,
    links: Links,
    cause: Envelope[Any] | None = None,
) -> bool:
    """A learner's message on their ticket (`ticket` locked by the caller), from any channel
    or the portal: stored once, reopens a resolved ticket, told to the assignee through
    `ticket.message_received`. Returns False when this message was stored already."""
    stored = await repo.insert_message(
        conn,
        message_id=message_id,
        ticket_id=ticket["ticket_id"],
        channel=channel,
        learner=learner,
        body=body,
        attachments=attachments,
        received_at=received_at,
    )
    if not stored:
        return False
    reopened = ticket["status"] == Status.RESOLVED
    await repo.add_history(
        conn,
        [(ticket["ticket_id"], "message_received", "learner", {"message_id": str(message_id)})],
    )
    if ticket["status"] == Status.PENDING_LEARNER:
        await _resume(conn, ticket, message_id=message_id, at=received_at, cause=cause)
    if reopened:
        await _reopen(
            conn, ticket, reason=ReopenReason.LEARNER_MESSAGE, actor="learner", cause=cause
        )
    await outbox.add(
        conn,
        [
            new_event(
                TicketMessageReceived(
                    ticket_id=ticket["ticket_id"],
                    number=ticket["number"],
                    message_id=message_id,
                    channel=channel,
                    learner=learner,
                    body=body,
                    attachments=tuple(attachments),
                    assignee_id=ticket["assignee_id"],
                    reopened=reopened,
                    portal_url=links.portal_url(ticket["ticket_id"]),
                    received_at=received_at,
                ),
                producer=PRODUCER,
                cause=cause,
            )
        ],
    )
    return True


async def _resume(
    conn: asyncpg.Connection,
    ticket: asyncpg.Record,
    *,
    message_id: UUID,
    at: datetime,
    cause: Envelope[Any] | None,
) -> None:
    """The learner answered a ticket pending on them: it is the assignee's again, and routing
    runs its SLA clocks on (`ticket.resumed`)."""
    await repo.set_status(conn, ticket["ticket_id"], Status.ASSIGNED)
    await repo.add_history(
        conn, [(ticket["ticket_id"], "resumed", "learner", {"message_id": str(message_id)})]
    )
    await outbox.add(
        conn,
        [
            new_event(
                TicketResumed(
                    ticket_id=ticket["ticket_id"],
                    number=ticket["number"],
                    message_id=message_id,
                    resumed_at=at,
                ),
                producer=PRODUCER,
                cause=cause,
            )
        ],
    )


async def set_pending(conn: asyncpg.Connection, *, ticket_id: UUID, agent: Caller) -> None:
    """The assignee (or a supervisor) waits on the learner: the ticket is pending_learner and
    its SLA clocks pause until the learner writes (R5.3); NotFound, NotAllowed, Conflict."""
    ticket = await _locked(conn, ticket_id)
    _check_work(agent, ticket)
    if ticket["status"] != Status.ASSIGNED:
        raise Conflict(f"a ticket that is {ticket['status']} cannot wait on the learner")
    paused_at = now()
    await repo.set_status(conn, ticket_id, Status.PENDING_LEARNER)
    await repo.add_history(conn, [(ticket_id, "pending_learner", agent.agent_id, {})])
    await outbox.add(
        conn,
        [
            new_event(
                TicketPendingLearner(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    agent_id=agent.agent_id,
                    paused_at=paused_at,
                ),
                producer=PRODUCER,
            )
        ],
    )


async def retriage(
    conn: asyncpg.Connection,
    *,
    ticket_id: UUID,
    agent: Caller,
    category: Category | None,
    priority: Priority | None,
    reason: str,
) -> asyncpg.Record:
    """A person corrects the triage (R3): the ticket takes the new category or priority, the
    review flag clears, the history keeps who, what before and after, and why; routing moves
    the ticket and its SLA follows `ticket.retriaged`. NotFound, NotAllowed, Conflict (closed,
    or nothing changes)."""
    ticket = await _locked(conn, ticket_id)
    check_holder(agent, ticket)
    if ticket["status"] in (Status.CLOSED, Status.NEW):
        raise Conflict(f"a ticket that is {ticket['status']} cannot be re-triaged")
    before = (ticket["category"], ticket["priority"])
    after = (category or before[0], priority or before[1])
    if after == before:
        raise Conflict("the ticket already has this category and priority")
    at = now()
    row = await repo.set_triage(conn, ticket_id, category=after[0], priority=after[1])
    detail = {
        "from": {"category": before[0], "priority": before[1]},
        "to": {"category": after[0], "priority": after[1]},
        "reason": reason,
    }
    await repo.add_history(conn, [(ticket_id, "retriaged", agent.agent_id, detail)])
    await outbox.add(
        conn,
        [
            new_event(
                TicketRetriaged(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    category=Category(after[0]),
                    priority=Priority(after[1]),
                    previous_category=before[0],
                    previous_priority=before[1],
                    by=agent.agent_id,
                    reason=reason,
                    retriaged_at=at,
                ),
                producer=PRODUCER,
            )
        ],
    )
    return row


async def on_sla(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """routing's SLA warnings, breaches and predictions go into the ticket's history (who
    was told, the target and its due time), once each (the inbox)."""
    await repo.add_history(conn, [sla_history(e) for e in events])


def sla_history(event: Envelope[Any]) -> repo.History:
    data = event.data
    detail: dict[str, Any] = {
        "target": data.target,
        "due_at": data.due_at.isoformat(),
        "priority": data.priority,
        "team": data.team,
        "assignee_id": data.assignee_id,
        "recipients": [r.agent_id for r in data.recipients],
    }
    if isinstance(data, SlaBreached):
        detail["level"] = data.level
    if isinstance(data, SlaAtRisk):
        detail["predicted_at"] = data.predicted_at.isoformat() if data.predicted_at else None
        detail["overflow_team"] = data.overflow_team
    return (data.ticket_id, event.type.replace(".", "_"), "routing", detail)


async def on_routed(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """A new ticket's triage and placement; only a ticket still new takes it (repo), so it
    needs no inbox row."""
    await repo.apply_routed(conn, [e.data for e in events])


async def on_triaged(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.apply_triage(conn, [e.data for e in events])


async def on_queued(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.apply_queued(conn, [e.data for e in events])


async def on_assigned(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    await repo.apply_assigned(conn, [e.data for e in events])


async def on_survey_requested(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """Keep the survey's link for the learner's page; setting it again changes nothing."""
    await repo.set_survey_urls(conn, [(e.data.ticket_id, e.data.survey_url) for e in events])


async def on_low_score(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """A low score reaches a supervisor whatever the ticket's state (domain.low_score_outcome)."""
    for event in events:
        low: SurveyLowScore = event.data
        ticket = await repo.lock_ticket(conn, low.ticket_id)
        if ticket is None:
            log.warning("low score for a ticket desk does not know", ticket_id=str(low.ticket_id))
            continue
        outcome = low_score_outcome(
            Status(ticket["status"]), needs_supervisor=ticket["needs_supervisor"]
        )
        if outcome is LowScore.REOPEN:
            await _reopen(conn, ticket, reason=ReopenReason.LOW_SCORE, actor="survey", cause=event)
        elif outcome is LowScore.ESCALATE:
            await _escalate(conn, ticket, low=low, cause=event)
        else:
            await repo.add_history(conn, [(low.ticket_id, "low_score", "survey", _score(low))])


def _score(low: SurveyLowScore) -> dict[str, Any]:
    return {"survey_id": str(low.survey_id), "overall": low.overall}


# Types applied without an inbox row, each idempotent by its ticket (see its handler). A
# re-placement (`ticket.assigned`, `ticket.queued`) is not: telling a stale copy from a newer
# placement would take routing's clocks agreeing, so those are claimed by event id.
IDEMPOTENT = (TicketSubmitted.TYPE, TicketRouted.TYPE, SurveyRequested.TYPE)


# ---- use cases shared by the API and the consumers ----------------------------------------


async def _reopen(
    conn: asyncpg.Connection,
    ticket: asyncpg.Record,
    *,
    reason: ReopenReason,
    actor: str,
    cause: Envelope[Any] | None = None,
) -> None:
    needs_supervisor = reason is ReopenReason.LOW_SCORE
    await repo.set_status(
        conn,
        ticket["ticket_id"],
        Status.REOPENED,
        assignee_id=None,
        needs_supervisor=needs_supervisor,
        confirm_token_sha256=None,
    )
    await repo.add_history(conn, [(ticket["ticket_id"], "reopened", actor, {"reason": reason})])
    await outbox.add(
        conn,
        [
            new_event(
                TicketReopened(
                    ticket_id=ticket["ticket_id"],
                    number=ticket["number"],
                    reason=reason,
                    previous_agent_id=ticket["assignee_id"],
                    needs_supervisor=needs_supervisor,
                    reopened_at=now(),
                ),
                producer=PRODUCER,
                cause=cause,
            )
        ],
    )


async def _escalate(
    conn: asyncpg.Connection,
    ticket: asyncpg.Record,
    *,
    low: SurveyLowScore,
    cause: Envelope[Any],
) -> None:
    """An open ticket goes to a supervisor: routing moves it, desk follows routing's events."""
    await repo.mark_needs_supervisor(conn, ticket["ticket_id"])
    await repo.add_history(
        conn,
        [
            (
                ticket["ticket_id"],
                "escalated",
                "survey",
                {"reason": EscalationReason.LOW_SCORE, **_score(low)},
            )
        ],
    )
    await outbox.add(
        conn,
        [
            new_event(
                TicketEscalated(
                    ticket_id=ticket["ticket_id"],
                    number=ticket["number"],
                    reason=EscalationReason.LOW_SCORE,
                    assignee_id=ticket["assignee_id"],
                    escalated_at=now(),
                ),
                producer=PRODUCER,
                cause=cause,
            )
        ],
    )


async def _close(
    conn: asyncpg.Connection,
    tickets: Sequence[asyncpg.Record],
    *,
    reason: CloseReason,
    actor: str,
    closed_at: datetime,
    callback_sample: float,
) -> None:
    await repo.close_many(conn, [t["ticket_id"] for t in tickets], closed_at)
    await callbacks.raise_on_close(
        conn, [t["ticket_id"] for t in tickets], closed_at, callback_sample
    )
    await repo.add_history(
        conn, [(t["ticket_id"], "closed", actor, {"reason": reason}) for t in tickets]
    )
    await outbox.add(
        conn,
        [
            new_event(
                TicketClosed(
                    ticket_id=t["ticket_id"],
                    number=t["number"],
                    reason=reason,
                    created_at=t["created_at"],
                    closed_at=closed_at,
                ),
                producer=PRODUCER,
            )
            for t in tickets
        ],
    )


AUTO_CLOSE_BATCH = 500


async def auto_close(ctx: Context[DeskSettings]) -> None:
    """Close resolved tickets the learner left unanswered for `auto_close_days` (R7.2)."""
    settings = ctx.settings

    async def step() -> bool:
        async with ctx.pool.acquire() as conn, conn.transaction():
            closed_at = now()
            cutoff = closed_at - timedelta(days=settings.auto_close_days)
            due = await repo.resolved_before(conn, cutoff, AUTO_CLOSE_BATCH)
            await _close(
                conn,
                due,
                reason=CloseReason.AUTO_CLOSED,
                actor="system",
                closed_at=closed_at,
                callback_sample=settings.callback_sample,
            )
        return len(due) == AUTO_CLOSE_BATCH

    await every(settings.auto_close_interval_seconds, step, what="auto-close")


# ---- the agent API and the learner's answer -----------------------------------------------


async def _locked(conn: asyncpg.Connection, ticket_id: UUID) -> asyncpg.Record:
    ticket = await repo.lock_ticket(conn, ticket_id)
    if ticket is None:
        raise NotFound("no such ticket")
    return ticket


def check_see(agent: Caller, ticket: asyncpg.Record) -> None:
    """NotFound unless `agent` may see the ticket (theirs, their teams', or they supervise)."""
    check_may_see(
        agent_id=agent.agent_id,
        role=agent.role,
        assignee_id=ticket["assignee_id"],
        teams=agent.teams,
        team=ticket["team"],
    )


def check_holder(agent: Caller, ticket: asyncpg.Record) -> None:
    """NotFound unless `agent` may see the ticket; NotAllowed unless it is theirs or they
    supervise (re-triage, transfer, merge)."""
    check_see(agent, ticket)
    if not agent.supervises and ticket["assignee_id"] != agent.agent_id:
        raise NotAllowed("this ticket is not assigned to you")


def _check_work(agent: Caller, ticket: asyncpg.Record) -> None:
    check_may_work(
        agent_id=agent.agent_id,
        role=agent.role,
        assignee_id=ticket["assignee_id"],
        status=Status(ticket["status"]),
        teams=agent.teams,
        team=ticket["team"],
    )


# Columns an agent has no use for: a token's hash, desk's own keys for matching messages, and
# the search words.
_INTERNAL_COLUMNS = frozenset(
    {"confirm_token_sha256", "thread_contact", "content_key", "search", "search_of"}
)


async def ticket_with_history(
    conn: asyncpg.Connection, ticket_id: UUID, agent: Caller
) -> dict[str, Any]:
    """One ticket, its history and its conversation (every learner message, on any channel,
    and every reply, in order), if `agent` may see it."""
    ticket = await repo.get_ticket(conn, ticket_id)
    if ticket is None:
        raise NotFound("no such ticket")
    check_see(agent, ticket)
    history = await repo.ticket_history(conn, ticket_id)
    conversation = await repo.conversation(conn, ticket_id)
    detail = {k: v for k, v in dict(ticket).items() if k not in _INTERNAL_COLUMNS}
    return {
        **detail,
        "history": [dict(h) for h in history],
        "conversation": [dict(c) for c in conversation if c["kind"] != "event"],
    }


async def reply(
    conn: asyncpg.Connection, *, ticket_id: UUID, agent: Caller, body: str, links: Links
) -> tuple[UUID, bool]:
    """Store an agent's reply and tell the learner; returns its id and whether it came first."""
    reply_id = uuid7()
    ticket = await _locked(conn, ticket_id)
    _check_work(agent, ticket)
    replied_at, first = await repo.insert_reply(
        conn, reply_id=reply_id, ticket_id=ticket_id, agent_id=agent.agent_id, body=body
    )
    await repo.add_history(
        conn, [(ticket_id, "replied", agent.agent_id, {"reply_id": str(reply_id)})]
    )
    await outbox.add(
        conn,
        [
            new_event(
                TicketReplied(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    reply_id=reply_id,
                    agent_id=agent.agent_id,
                    body=body,
                    first_response=first,
                    created_at=ticket["created_at"],
                    replied_at=replied_at,
                    portal_url=links.portal_url(ticket_id),
                ),
                producer=PRODUCER,
            )
        ],
    )
    return reply_id, first


async def resolve(
    conn: asyncpg.Connection,
    *,
    ticket_id: UUID,
    agent: Caller,
    resolution: str,
    public_url: str,
    links: Links,
    resolution_code: ResolutionCode = ResolutionCode.ANSWERED,
) -> None:
    """Resolve with a resolution code; the learner is e-mailed a link to confirm, whose token
    only the link keeps."""
    token = tokens.new_token()
    ticket = await _locked(conn, ticket_id)
    _check_work(agent, ticket)
    resolved_at = now()
    await repo.set_status(
        conn,
        ticket_id,
        Status.RESOLVED,
        resolved_at=resolved_at,
        confirm_token_sha256=tokens.digest(token),
        needs_supervisor=False,
        resolution_code=resolution_code.value,
    )
    await repo.add_history(
        conn,
        [
            (
                ticket_id,
                "resolved",
                agent.agent_id,
                {"resolution": resolution, "resolution_code": resolution_code},
            )
        ],
    )
    await outbox.add(
        conn,
        [
            new_event(
                TicketResolved(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    agent_id=agent.agent_id,
                    resolution=resolution,
                    confirm_url=f"{public_url}/confirm/{token}",
                    created_at=ticket["created_at"],
                    resolved_at=resolved_at,
                    portal_url=links.portal_url(ticket_id),
                    resolution_code=resolution_code.value,
                ),
                producer=PRODUCER,
            )
        ],
    )


async def log_call(
    conn: asyncpg.Connection, *, agent: Caller, call: TicketSubmitted, links: Links
) -> UUID:
    """A call an agent took and logged by hand: a hotline ticket like one the call-centre
    system posts, created here at once."""
    await repo.add_history(conn, [(call.ticket_id, "call_logged", agent.agent_id, {})])
    await _create(conn, [new_event(call, producer=PRODUCER)], links)
    return call.ticket_id


async def ticket_ref(conn: asyncpg.Connection, ref: str) -> UUID:
    """The ticket a path names, by id or by its `CL-` number; NotFound."""
    if ref.upper().startswith("CL-"):
        row = await repo.get_ticket_by_number(conn, ref.upper())
        if row is None:
            raise NotFound("no such ticket")
        return row["ticket_id"]
    try:
        return UUID(ref)
    except ValueError:
        raise NotFound("no such ticket") from None


async def confirm(
    conn: asyncpg.Connection, *, token: str, answer: Answer, callback_sample: float
) -> Status:
    """The learner's answer to "is it solved?" from the e-mailed link: closes or reopens;
    NotFound, Conflict."""
    ticket = await repo.lock_by_confirm_token(conn, tokens.digest(token))
    if ticket is None:
        raise NotFound("this link is no longer valid")
    return await _answer(conn, ticket, answer, callback_sample)


async def confirm_ticket(
    conn: asyncpg.Connection, *, ticket_id: UUID, answer: Answer, callback_sample: float
) -> Status:
    """The learner's answer from the ticket's page (its signed link is the credential):
    closes or reopens a resolved ticket; NotFound, Conflict (not waiting for an answer)."""
    return await _answer(conn, await _locked(conn, ticket_id), answer, callback_sample)


async def _answer(
    conn: asyncpg.Connection, ticket: asyncpg.Record, answer: Answer, callback_sample: float
) -> Status:
    outcome = answer_outcome(Status(ticket["status"]), answer)
    if outcome is Status.REOPENED:
        await _reopen(conn, ticket, reason=ReopenReason.NOT_SOLVED, actor="learner")
    else:
        await _close(
            conn,
            [ticket],
            reason=CloseReason.CONFIRMED,
            actor="learner",
            closed_at=now(),
            callback_sample=callback_sample,
        )
    return outcome


async def awaits_answer(conn: asyncpg.Connection, token: str) -> None:
    """Raise NotFound unless a resolved ticket waits for the learner's answer on this link."""
    ticket = await repo.by_confirm_token(conn, tokens.digest(token))
    if ticket is None or ticket["status"] != Status.RESOLVED:
        raise NotFound("this link is no longer valid")


# ---- what agents do to a ticket: notes, macros, transfers, merges (issue 9) ---------------


async def add_note(
    conn: asyncpg.Connection, *, ticket_id: UUID, agent: Caller, body: str
) -> dict[str, Any]:
    """An internal note on a ticket the agent may see; the agents it `@mentions` (those desk
    knows) are told through `ticket.note_added`. NotFound."""
    ticket = await _locked(conn, ticket_id)
    check_see(agent, ticket)
    found = await repo.agents_by_id(conn, mentioned(body))
    note = await repo.insert_note(
        conn,
        note_id=uuid7(),
        ticket_id=ticket_id,
        agent_id=agent.agent_id,
        body=body,
        mentions=[a["agent_id"] for a in found],
    )
    await repo.add_history(
        conn,
        [(ticket_id, "note_added", agent.agent_id, {"note_id": str(note["note_id"])})],
    )
    await outbox.add(
        conn,
        [
            new_event(
                TicketNoteAdded(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    note_id=note["note_id"],
                    agent_id=agent.agent_id,
                    body=body,
                    mentions=tuple(
                        Mentioned(agent_id=a["agent_id"], name=a["name"], email=a["email"])
                        for a in found
                        if a["agent_id"] != agent.agent_id
                    ),
                    added_at=note["created_at"],
                ),
                producer=PRODUCER,
            )
        ],
    )
    return dict(note)


def _check_supervisor(agent: Caller) -> None:
    if not agent.supervises:
        raise NotAllowed("only supervisors and admins manage macros")


async def list_macros(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(m) for m in await repo.list_macros(conn)]


async def save_macro(
    conn: asyncpg.Connection,
    *,
    agent: Caller,
    name: str,
    body: str,
    language: str | None,
    macro_id: UUID | None = None,
) -> dict[str, Any]:
    """Create a macro (no `macro_id`) or replace one; supervisors and admins only. A macro
    that would not render is Invalid; a name another macro has is a Conflict."""
    _check_supervisor(agent)
    check_macro(body)
    try:
        async with conn.transaction():
            row = await repo.save_macro(
                conn,
                macro_id=macro_id or uuid7(),
                name=name,
                body=body,
                language=language,
                by=agent.agent_id,
                create=macro_id is None,
            )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a macro named {name!r} exists already") from None
    if row is None:
        raise NotFound("no such macro")
    return dict(row)


async def delete_macro(conn: asyncpg.Connection, *, agent: Caller, macro_id: UUID) -> None:
    _check_supervisor(agent)
    if not await repo.delete_macro(conn, macro_id):
        raise NotFound("no such macro")


async def render_macro_for(
    conn: asyncpg.Connection, *, ticket_id: UUID, macro_id: UUID, agent: Caller
) -> str:
    """A macro's text for a ticket the agent may see, to put in the reply box (plain text)."""
    ticket = await repo.get_ticket(conn, ticket_id)
    if ticket is None:
        raise NotFound("no such ticket")
    check_see(agent, ticket)
    macro = await repo.get_macro(conn, macro_id)
    if macro is None:
        raise NotFound("no such macro")
    learner = ticket["learner"]
    return render_macro(
        macro["body"],
        {
            "learner": {"name": learner.get("name"), "email": learner.get("email")},
            "ticket": {
                "number": ticket["number"],
                "subject": ticket["subject"],
                "category": ticket["category"],
            },
            "agent": {"name": agent.name},
        },
    )


async def transfer(
    conn: asyncpg.Connection,
    *,
    ticket_id: UUID,
    agent: Caller,
    to_agent_id: str | None,
    to_team: str | None,
    reason: str,
) -> dict[str, Any]:
    """Hand a ticket to another agent or team with a reason (R6.2): to an agent, it is theirs
    at once; to a team, it waits in that team's queue until routing places it. The new holder
    sees everything (timeline) and the reason (history, event). NotFound, NotAllowed,
    Conflict, Invalid (an unknown agent or team)."""
    ticket = await _locked(conn, ticket_id)
    check_holder(agent, ticket)
    if to_agent_id is not None:
        found = await repo.agents_by_id(conn, [to_agent_id])
        if not found:
            raise Invalid(f"no agent {to_agent_id!r}")
        team = to_team or team_for(tuple(found[0]["teams"]), current=ticket["team"])
        if to_team is not None and to_team not in found[0]["teams"]:
            raise Invalid(f"{to_agent_id} is not in team {to_team}")
    else:
        assert to_team is not None
        if not await repo.team_exists(conn, to_team):
            raise Invalid(f"no team {to_team!r}")
        team = to_team
    check_transfer(
        status=Status(ticket["status"]),
        team=ticket["team"],
        assignee_id=ticket["assignee_id"],
        to_agent_id=to_agent_id,
        to_team=team,
    )
    if to_agent_id is None:
        status = Status.QUEUED
    elif ticket["status"] == Status.PENDING_LEARNER:
        status = Status.PENDING_LEARNER
    else:
        status = Status.ASSIGNED
    at = now()
    await repo.set_status(conn, ticket_id, status, team=team, assignee_id=to_agent_id)
    detail = {
        "from_agent": ticket["assignee_id"],
        "from_team": ticket["team"],
        "to_agent": to_agent_id,
        "to_team": team,
        "reason": reason,
    }
    await repo.add_history(conn, [(ticket_id, "transferred", agent.agent_id, detail)])
    await outbox.add(
        conn,
        [
            new_event(
                TicketTransferred(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    from_agent_id=ticket["assignee_id"],
                    from_team=ticket["team"],
                    to_agent_id=to_agent_id,
                    to_team=team,
                    priority=None if ticket["priority"] is None else Priority(ticket["priority"]),
                    reason=reason,
                    by=agent.agent_id,
                    transferred_at=at,
                ),
                producer=PRODUCER,
            )
        ],
    )
    return {"ticket_id": ticket_id, "team": team, "assignee_id": to_agent_id, "status": status}


# Names the message a merged ticket's first message becomes on the ticket it merges into.
MERGED_NAMESPACE = uuid.UUID("9d4b3c1e-58a2-4f0b-b5a4-2b1f4f0e6d17")


async def merge(
    conn: asyncpg.Connection, *, ticket_id: UUID, into_id: UUID, agent: Caller, links: Links
) -> dict[str, Any]:
    """Merge a duplicate into another ticket (R6.3): everything said on it moves there, it
    closes as merged, and the learner is told where their request continues. Both tickets
    locked in id order (two merges the other way round cannot deadlock). NotFound (either
    ticket out of the agent's reach), NotAllowed, Conflict (into itself, from or into a
    closed ticket)."""
    locked = {i: await _locked(conn, i) for i in sorted({ticket_id, into_id})}
    ticket, into = locked[ticket_id], locked[into_id]
    check_holder(agent, ticket)
    check_see(agent, into)
    check_merge(
        ticket_id=ticket_id,
        status=Status(ticket["status"]),
        into_id=into_id,
        into_status=Status(into["status"]),
    )
    at = now()
    moved = await repo.move_conversation(
        conn,
        from_id=ticket_id,
        into_id=into_id,
        description_id=uuid.uuid5(MERGED_NAMESPACE, str(ticket_id)),
    )
    await repo.set_status(
        conn,
        ticket_id,
        Status.CLOSED,
        closed_at=at,
        merged_into=into_id,
        resolution_code=ResolutionCode.DUPLICATE.value,
        confirm_token_sha256=None,
    )
    await repo.add_history(
        conn,
        [
            (
                ticket_id,
                "merged_into",
                agent.agent_id,
                {"into": str(into_id), "number": into["number"]},
            ),
            (ticket_id, "closed", agent.agent_id, {"reason": CloseReason.MERGED}),
            (
                into_id,
                "merged_from",
                agent.agent_id,
                {"from": str(ticket_id), "number": ticket["number"], "moved": moved},
            ),
        ],
    )
    await outbox.add(
        conn,
        [
            new_event(
                TicketMerged(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    into_ticket_id=into_id,
                    into_number=into["number"],
                    by=agent.agent_id,
                    moved=moved,
                    portal_url=links.portal_url(into_id),
                    merged_at=at,
                ),
                producer=PRODUCER,
            ),
            new_event(
                TicketClosed(
                    ticket_id=ticket_id,
                    number=ticket["number"],
                    reason=CloseReason.MERGED,
                    created_at=ticket["created_at"],
                    closed_at=at,
                ),
                producer=PRODUCER,
            ),
        ],
    )
    return {
        "ticket_id": ticket_id,
        "merged_into": into_id,
        "into_number": into["number"],
        "moved": moved,
    }


async def people(conn: asyncpg.Connection) -> dict[str, Any]:
    """Who a ticket can be handed to or a note can mention: every agent, and every team."""
    agents = [dict(a) for a in await repo.people(conn)]
    teams = sorted({t for a in agents for t in a["teams"]})
    return {"agents": agents, "teams": teams}


# ---- timeline and search -----------------------------------------------------------------


async def timeline(
    conn: asyncpg.Connection, *, ticket_id: UUID, agent: Caller
) -> list[dict[str, Any]]:
    """Everything the ticket went through, in order (R7.3), if the agent may see it."""
    ticket = await repo.get_ticket(conn, ticket_id)
    if ticket is None:
        raise NotFound("no such ticket")
    check_see(agent, ticket)
    return [
        {k: v for k, v in dict(r).items() if k != "seq"}
        for r in await repo.timeline(conn, ticket_id)
    ]


# An LMS learner id has no shape of its own (`L-1001`, `u_82731`, `1001`): a ticket number or
# any one word of letters, digits, `.`, `_` or `-` is also looked up, whole, among the
# learners' ids (a phone number's digits are looked up among the same contacts already).
_LEARNER_ID = re.compile(r"[\w.-]{1,100}")


async def search(
    conn: asyncpg.Connection, *, agent: Caller, q: str, limit: int = 50
) -> list[dict[str, Any]]:
    """Tickets by number, e-mail, phone, the learner's LMS id or name, or words (Chinese too),
    best first, among those the agent may see (supervisors and admins: all)."""
    teams = None if agent.supervises else agent.teams
    kind, value = search_kind(q)

    async def contact(value: str) -> list[asyncpg.Record]:
        return await repo.search_words(
            conn, tsquery=value, contact=True, teams=teams, agent_id=agent.agent_id, limit=limit
        )

    first: list[asyncpg.Record] = []
    if kind is SearchKind.NUMBER:
        first = await repo.search_number(conn, value, teams=teams, agent_id=agent.agent_id)
    elif kind is not SearchKind.TEXT:
        first = await contact(value)
    word = q.strip().lower()
    if kind in (SearchKind.NUMBER, SearchKind.TEXT) and _LEARNER_ID.fullmatch(word):
        first += await contact(word)
    # Bare digits are a ticket's number or a phone number, and words too (an order number or
    # a course code the learner wrote): `195151` also finds the tickets that mention it.
    tsquery = query(q) if kind is SearchKind.TEXT or q.strip().isdigit() else None
    worded = (
        await repo.search_words(
            conn, tsquery=tsquery, contact=False, teams=teams, agent_id=agent.agent_id, limit=limit
        )
        if tsquery
        else []
    )
    found: dict[UUID, dict[str, Any]] = {}
    for r in [*first, *worded]:
        found.setdefault(r["ticket_id"], dict(r))
    return list(found.values())[:limit]


SEARCH_BATCH = 200


def search_words_of(row: asyncpg.Record) -> repo.SearchWords:
    """A ticket's words for search: jieba's for Chinese; its learner's e-mail and phone (as
    search_kind reads them) and LMS id (lower case, as `search` looks it up) stored as they
    are."""
    learner = row["learner"]
    contacts = [
        c
        for c in (
            (learner.get("email") or "").lower(),
            phone_digits(learner.get("phone") or ""),
            (learner.get("learner_id") or "").lower(),
        )
        if c
    ]
    return repo.SearchWords(
        ticket_id=row["ticket_id"],
        of=row["updated_at"],
        subject=indexed(row["subject"]),
        name=indexed(learner.get("name") or ""),
        body=indexed(row["body"] or ""),
        contacts=contacts,
    )


async def index_search(ctx: Context[DeskSettings]) -> None:
    """Keep every ticket's search words current: off the hot path, a few seconds behind, for
    tickets created or whose text changed since (a learner's message, a merge)."""

    async def step() -> bool:
        async with ctx.pool.acquire() as conn:
            stale = await repo.stale_search(conn, SEARCH_BATCH)
            words = await asyncio.to_thread(lambda: [search_words_of(r) for r in stale])
            await repo.set_search(conn, words)
        return len(stale) == SEARCH_BATCH

    await every(ctx.settings.search_index_interval_seconds, step, what="search index")


async def on_survey_answered(conn: asyncpg.Connection, events: list[Envelope[Any]]) -> None:
    """The learner's survey answers join the ticket's history (its timeline), once each."""
    await repo.add_history(
        conn,
        [
            (
                e.data.ticket_id,
                "survey_answered",
                "learner",
                {
                    "survey_id": str(e.data.survey_id),
                    "overall": e.data.overall,
                    "response_speed": e.data.response_speed,
                    "problem_solving": e.data.problem_solving,
                    "attitude": e.data.attitude,
                    "comment": e.data.comment,
                },
            )
            for e in events
        ],
    )
