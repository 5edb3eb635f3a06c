"""SQL for notify's schema. Nothing here commits: the caller owns the transaction."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared import outbox
from shared.events import Envelope
from shared.inbox import last_per_key


@dataclass(frozen=True, slots=True)
class Contact:
    """Who a new ticket's messages go to, as ticket.created tells it."""

    ticket_id: UUID
    number: str
    name: str
    email: str | None
    phone: str | None
    wechat_openid: str | None
    weibo_uid: str | None
    channel: str  # the ticket came in on
    reply_channel: str | None  # careloop answers on; None: it cannot reach the learner
    portal_url: str | None
    language: str
    subject: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Triage:
    """What a confirmation promises: the ticket's priority and first-response due time."""

    ticket_id: UUID
    priority: str
    first_response_due_at: datetime
    agent_id: str | None  # who routing gave the ticket to; None: it waits in a queue
    incident_url: str | None = None  # held for an open incident: its status page


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress message (assigned, queued) owed to a ticket's learner."""

    delivery_key: str
    ticket_id: UUID
    kind: str
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    delivery_key: str
    ticket_id: UUID
    kind: str
    payload: dict[str, Any]  # the kind's template values


def _columns(rows: Sequence[Any], *names: str) -> list[list[Any]]:
    return [[getattr(r, n) for r in rows] for n in names]


async def add_contacts_and_confirmations(
    conn: asyncpg.Connection, contacts: Sequence[Contact]
) -> None:
    """Record each ticket's contact and queue its one confirmation on the ticket's answer
    channel (none for a learner careloop cannot reach), in one statement.

    Applying the same contacts again writes the same values and queues nothing new (the
    confirmation is keyed by its ticket), whatever was recorded for those tickets meanwhile.
    """
    await conn.execute(
        """
        WITH r AS (
            INSERT INTO recipients AS r (ticket_id, number, name, email, phone, wechat_openid,
                                         weibo_uid, channel, reply_channel, portal_url,
                                         language, subject, created_at)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                 $11::text[], $12::text[], $13::timestamptz[])
            ON CONFLICT (ticket_id) DO UPDATE SET number = excluded.number,
                name = excluded.name, email = excluded.email, phone = excluded.phone,
                wechat_openid = excluded.wechat_openid, weibo_uid = excluded.weibo_uid,
                channel = excluded.channel, reply_channel = excluded.reply_channel,
                portal_url = excluded.portal_url, language = excluded.language,
                subject = excluded.subject, created_at = excluded.created_at
            RETURNING ticket_id, reply_channel
        )
        INSERT INTO deliveries (delivery_key, ticket_id, kind, channel)
        SELECT 'confirmation:' || ticket_id, ticket_id, 'confirmation', reply_channel FROM r
        WHERE reply_channel IS NOT NULL ORDER BY ticket_id
        ON CONFLICT (delivery_key) DO NOTHING
        """,
        *_columns(
            last_per_key(contacts, key=lambda c: c.ticket_id),
            "ticket_id",
            "number",
            "name",
            "email",
            "phone",
            "wechat_openid",
            "weibo_uid",
            "channel",
            "reply_channel",
            "portal_url",
            "language",
            "subject",
            "created_at",
        ),
    )


async def add_triage(conn: asyncpg.Connection, triage: Sequence[Triage]) -> None:
    """Record each ticket's triage and placement; the first one recorded stays, so a
    duplicate or a stale copy arriving later changes nothing."""
    await conn.execute(
        """
        INSERT INTO recipients AS r (ticket_id, priority, first_response_due_at, agent_id,
                                     incident_url)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[])
        ON CONFLICT (ticket_id) DO UPDATE SET priority = excluded.priority,
            first_response_due_at = excluded.first_response_due_at,
            agent_id = coalesce(excluded.agent_id, r.agent_id),
            incident_url = excluded.incident_url
        WHERE r.priority IS NULL
        """,
        *_columns(
            first_per_key(triage),
            "ticket_id",
            "priority",
            "first_response_due_at",
            "agent_id",
            "incident_url",
        ),
    )


async def add_articles(
    conn: asyncpg.Connection, offers: Sequence[tuple[UUID, list[dict[str, str]]]]
) -> None:
    """Record the articles knowledge suggested for each ticket ([] when none fit), which its
    confirmation offers; the first offer recorded stays."""
    first = dict(reversed(offers))  # one per ticket: a statement may touch a row only once
    await conn.execute(
        """
        INSERT INTO recipients AS r (ticket_id, articles)
        SELECT t, a::jsonb FROM unnest($1::uuid[], $2::text[]) AS o(t, a)
        ON CONFLICT (ticket_id) DO UPDATE SET articles = excluded.articles
        WHERE r.articles IS NULL
        """,
        list(first),
        [json.dumps(a, ensure_ascii=False) for a in first.values()],
    )


async def add_deliveries(conn: asyncpg.Connection, rows: Sequence[NewDelivery]) -> None:
    """Queue each delivery once on its ticket's answer channel: a key seen before is
    skipped, and so is a delivery to a learner careloop cannot reach. While the ticket's
    recipient is unknown the delivery waits without a channel (the recipient's, once known)."""
    await conn.execute(
        """
        INSERT INTO deliveries (delivery_key, ticket_id, kind, payload, channel)
        SELECT n.key, n.ticket_id, n.kind, n.payload, r.reply_channel
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::jsonb[])
             AS n(key, ticket_id, kind, payload)
        LEFT JOIN recipients r ON r.ticket_id = n.ticket_id
        WHERE r.number IS NULL OR r.reply_channel IS NOT NULL
        ON CONFLICT (delivery_key) DO NOTHING
        """,
        *_columns(rows, "delivery_key", "ticket_id", "kind", "payload"),
    )


@dataclass(frozen=True, slots=True)
class AgentDelivery:
    """An e-mail to an agent about a ticket (an SLA warning or escalation) at `address`."""

    delivery_key: str
    ticket_id: UUID
    kind: str
    payload: dict[str, Any]
    address: str


async def add_agent_deliveries(conn: asyncpg.Connection, rows: Sequence[AgentDelivery]) -> None:
    """Queue each agent e-mail once (by its key), whether or not careloop can reach the
    ticket's learner; it goes once the ticket's recipient (its number) is known."""
    await conn.execute(
        """
        INSERT INTO deliveries (delivery_key, ticket_id, kind, payload, channel, address)
        SELECT n.key, n.ticket_id, n.kind, n.payload, 'email', n.address
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[])
             AS n(key, ticket_id, kind, payload, address)
        ORDER BY n.key
        ON CONFLICT (delivery_key) DO NOTHING
        """,
        *_columns(rows, "delivery_key", "ticket_id", "kind", "payload", "address"),
    )


@dataclass(frozen=True, slots=True)
class Notice:
    """An incident's message to one learner, on the channel and at the address it names.
    `ticket_id` None: the learner has no ticket (enrolled in an affected course)."""

    notice_id: UUID
    ticket_id: UUID | None
    name: str
    channel: str
    address: str
    language: str
    payload: dict[str, Any]
    requested_at: datetime


async def add_notices(conn: asyncpg.Connection, notices: Sequence[Notice]) -> None:
    """Queue each notice once (keyed by its id), in two statements however many there are.

    A notice about a ticket goes in that ticket's conversation (its e-mail thread), once
    notify knows the ticket. A ticket-less notice gets a recipient of its own, keyed by the
    notice's id, with no number: its messages belong to no ticket.
    """
    ticketless = [n for n in notices if n.ticket_id is None]
    await conn.execute(
        """
        INSERT INTO recipients (ticket_id, number, name, language, subject, reply_channel,
                                created_at)
        SELECT n, '', name, language, '', channel, at
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
             AS t(n, name, language, channel, at)
        ORDER BY n
        ON CONFLICT (ticket_id) DO NOTHING
        """,
        *_columns(ticketless, "notice_id", "name", "language", "channel", "requested_at"),
    )
    await conn.execute(
        """
        INSERT INTO deliveries (delivery_key, ticket_id, kind, payload, channel, address)
        SELECT 'incident_notice:' || n, coalesce(t, n), 'incident_notice', p, channel, address
        FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[], $4::text[], $5::text[])
             AS x(n, t, p, channel, address)
        ORDER BY n
        ON CONFLICT (delivery_key) DO NOTHING
        """,
        *_columns(notices, "notice_id", "ticket_id", "payload", "channel", "address"),
    )


async def add_progress(
    conn: asyncpg.Connection, rows: Sequence[Progress], *, merge_seconds: float
) -> None:
    """Record who has each ticket now, and queue its progress message, in one statement.

    A progress message goes only once the ticket's confirmation went more than
    `merge_seconds` ago: until then the confirmation says it (a pending confirmation is
    written when it is sent, and names the agent recorded here), so a learner never gets a
    second message about a ticket in the same breath as the first.
    """
    await conn.execute(
        """
        WITH n AS (
            SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[])
                AS n(key, ticket_id, kind, agent_id)
        ), placed AS (
            UPDATE recipients r SET agent_id = last.agent_id
            FROM unnest($5::uuid[], $6::text[]) AS last(ticket_id, agent_id)
            WHERE r.ticket_id = last.ticket_id
        )
        INSERT INTO deliveries (delivery_key, ticket_id, kind, payload, channel)
        SELECT n.key, n.ticket_id, n.kind, jsonb_build_object('agent_id', n.agent_id),
               r.reply_channel
        FROM n JOIN recipients r USING (ticket_id)
        JOIN deliveries c ON c.delivery_key = 'confirmation:' || n.ticket_id
        WHERE r.reply_channel IS NOT NULL AND c.status = 'sent'
          AND c.sent_at < now() - make_interval(secs => $7)
        ORDER BY n.key
        ON CONFLICT (delivery_key) DO NOTHING
        """,
        *_columns(rows, "delivery_key", "ticket_id", "kind", "agent_id"),
        *_columns(last_per_key(rows, key=lambda p: p.ticket_id), "ticket_id", "agent_id"),
        merge_seconds,
    )


def first_per_key(triage: Sequence[Triage]) -> list[Triage]:
    """The first triage per ticket: one statement may touch a row only once."""
    first: dict[UUID, Triage] = {}
    for t in triage:
        first.setdefault(t.ticket_id, t)
    return list(first.values())


# A delivery's lease may be taken when it was never leased or its lease ran out; no lease
# runs out sooner than the lease time after PostgreSQL (re)started (see `claim`).
_LEASE_FREE = """(d.claimed_until IS NULL
    OR greatest(d.claimed_until, pg_postmaster_start_time() + make_interval(secs => $2)) < now())"""


def _ready(articles_grace: str) -> str:
    """A confirmation waits for the triage for at most the triage grace period ($3 seconds),
    and for knowledge's suggested articles for at most theirs (the parameter named)."""
    return f"""(d.kind <> 'confirmation' OR (
        (r.priority IS NOT NULL OR d.created_at < now() - make_interval(secs => $3))
        AND (r.articles IS NOT NULL
             OR d.created_at < now() - make_interval(secs => {articles_grace}))))"""


async def claim(
    conn: asyncpg.Connection,
    *,
    token: UUID,
    limit: int,
    senders: int,
    lease_seconds: int,
    triage_grace_seconds: float,
    articles_grace_seconds: float,
    exclude: Sequence[int] = (),
) -> list[asyncpg.Record]:
    """Lease due deliveries whose recipient is known, with what rendering them needs, in one
    statement.

    A sender takes its fair share of what is waiting (a `senders`th, at most `limit`), so
    that a burst's tail is spread over every connection instead of queueing behind one.

    A confirmation waits for the triage (its priority and due time) for at most the grace
    period; after that it goes with the general promise rather than not at all.

    No lease ends sooner than `lease_seconds` after PostgreSQL (re)started: a sender that got
    the SMTP server's 250 while the database was down keeps its lease for that long after the
    database is back, time enough to record "sent" before anyone else may take the delivery.
    `exclude` are deliveries this process sent and is still recording.
    """
    return await conn.fetch(
        f"""
        UPDATE deliveries d
        SET claimed_until = now() + make_interval(secs => $2), attempts = d.attempts + 1,
            claim_token = $4
        FROM (
            SELECT d.id, r.number, r.name, coalesce(d.address, r.email) AS email, r.language,
                   r.subject, r.created_at, r.priority, r.first_response_due_at, r.agent_id,
                   r.portal_url, r.articles, r.incident_url
            FROM deliveries d JOIN recipients r USING (ticket_id)
            WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND {_LEASE_FREE}
              AND (d.channel = 'email' OR d.channel IS NULL)
              AND coalesce(d.channel, r.reply_channel) = 'email'
              AND coalesce(d.address, r.email) IS NOT NULL
              AND r.number IS NOT NULL AND {_ready("$7")} AND d.id <> ALL($5::bigint[])
            ORDER BY d.id
            LIMIT (SELECT greatest(1, ceil(count(*) / $6::numeric))::bigint FROM (
                SELECT FROM deliveries
                WHERE status = 'pending' AND claimed_until IS NULL AND next_attempt_at <= now()
                  AND (channel = 'email' OR channel IS NULL)
                LIMIT $1::bigint * $6::bigint) waiting)
            FOR UPDATE OF d SKIP LOCKED
        ) c
        WHERE d.id = c.id
        RETURNING d.id, d.delivery_key, d.ticket_id, d.kind, d.payload, d.attempts, c.number,
                  c.name, c.email, c.language, c.subject, c.created_at, c.priority,
                  c.first_response_due_at, c.agent_id, c.portal_url, c.articles, c.incident_url
        """,
        limit,
        lease_seconds,
        triage_grace_seconds,
        token,
        list(exclude),
        senders,
        articles_grace_seconds,
    )


async def claim_http(
    conn: asyncpg.Connection,
    *,
    token: UUID,
    channels: Sequence[str],
    limit: int,
    lease_seconds: int,
    triage_grace_seconds: float,
    articles_grace_seconds: float,
) -> list[asyncpg.Record]:
    """Lease due deliveries on `channels` (those answered over HTTP), each with its channel,
    the learner's address there, and what rendering it needs; the same lease and triage
    rules as `claim`."""
    return await conn.fetch(
        f"""
        UPDATE deliveries d
        SET claimed_until = now() + make_interval(secs => $2), attempts = d.attempts + 1,
            claim_token = $4
        FROM (
            SELECT d.id, coalesce(d.channel, r.reply_channel) AS channel,
                   coalesce(d.address, CASE coalesce(d.channel, r.reply_channel)
                        WHEN 'sms' THEN r.phone WHEN 'wechat' THEN r.wechat_openid
                        WHEN 'weibo' THEN r.weibo_uid END) AS address,
                   r.number, r.name, r.language, r.subject, r.created_at, r.priority,
                   r.first_response_due_at, r.agent_id, r.portal_url, r.articles, r.incident_url
            FROM deliveries d JOIN recipients r USING (ticket_id)
            WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND {_LEASE_FREE}
              AND (d.channel = ANY($5::text[]) OR d.channel IS NULL)
              AND coalesce(d.channel, r.reply_channel) = ANY($5::text[])
              AND r.number IS NOT NULL AND {_ready("$6")}
            ORDER BY d.id
            LIMIT $1
            FOR UPDATE OF d SKIP LOCKED
        ) c
        WHERE d.id = c.id
        RETURNING d.id, d.delivery_key, d.ticket_id, d.kind, d.payload, d.attempts, c.channel,
                  c.address, c.number, c.name, c.language, c.subject, c.created_at,
                  c.priority, c.first_response_due_at, c.agent_id, c.portal_url, c.articles,
                  c.incident_url
        """,
        limit,
        lease_seconds,
        triage_grace_seconds,
        token,
        list(channels),
        articles_grace_seconds,
    )


async def seconds_to_next(
    conn: asyncpg.Connection,
    *,
    lease_seconds: int,
    triage_grace_seconds: float,
    articles_grace_seconds: float,
    channels: Sequence[str],
    exclude: Sequence[int] = (),
) -> float | None:
    """How long until a claim on `channels` can take a delivery that is waiting now: for its retry time,
    its lease to run out or its triage grace to pass; None when nothing waits for time (what
    waits for an event, a new delivery or a triage, is woken by the database's NOTIFY)."""
    return await conn.fetchval(
        """
        SELECT extract(epoch FROM min(greatest(
            d.next_attempt_at,
            CASE WHEN d.claimed_until IS NOT NULL
                 THEN greatest(d.claimed_until,
                               pg_postmaster_start_time() + make_interval(secs => $1)) END,
            CASE WHEN d.kind = 'confirmation' AND r.priority IS NULL
                 THEN d.created_at + make_interval(secs => $2) END,
            CASE WHEN d.kind = 'confirmation' AND r.articles IS NULL
                 THEN d.created_at + make_interval(secs => $5) END)) - now())::float8
        FROM deliveries d JOIN recipients r USING (ticket_id)
        WHERE d.status = 'pending' AND (d.channel = ANY($4::text[]) OR d.channel IS NULL)
          AND coalesce(d.channel, r.reply_channel) = ANY($4::text[])
          AND r.number IS NOT NULL AND d.id <> ALL($3::bigint[])
        """,
        lease_seconds,
        triage_grace_seconds,
        list(exclude),
        list(channels),
        articles_grace_seconds,
    )


async def renew(
    conn: asyncpg.Connection, delivery_ids: Sequence[int], *, token: UUID, lease_seconds: int
) -> set[int]:
    """Extend the lease on those of `delivery_ids` still held under `token`; returns them."""
    rows = await conn.fetch(
        """
        UPDATE deliveries SET claimed_until = now() + make_interval(secs => $3)
        WHERE id = ANY($1::bigint[]) AND claim_token = $2 AND status = 'pending'
        RETURNING id
        """,
        list(delivery_ids),
        token,
        lease_seconds,
    )
    return {r["id"] for r in rows}


async def release(
    conn: asyncpg.Connection,
    delivery_ids: Sequence[int],
    *,
    token: UUID,
    delay_seconds: float,
    error: str,
) -> None:
    """Hand back leased deliveries that were not attempted: their attempt does not count."""
    await conn.execute(
        """
        UPDATE deliveries SET claimed_until = NULL, claim_token = NULL, last_error = $4,
               attempts = greatest(attempts - 1, 0),
               next_attempt_at = now() + make_interval(secs => $3)
        WHERE id = ANY($1::bigint[]) AND claim_token = $2 AND status = 'pending'
        """,
        list(delivery_ids),
        token,
        delay_seconds,
        error,
    )


async def mark_sent(conn: asyncpg.Connection, sent: Sequence[tuple[int, Envelope[Any]]]) -> None:
    """Mark the deliveries sent and stage each one's event, all in one statement: one commit
    for the 250s of every connection. A delivery already marked changes nothing and stages
    nothing."""
    ids = [delivery_id for delivery_id, _ in sent]
    rows = [outbox.row(event) for _, event in sent]
    await conn.execute(
        f"""
        WITH m AS (
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::uuid[], $5::text[],
                                 $6::bytea[]) AS m(id, topic, key, event_id, event_type, payload)
        ), sent AS (
            UPDATE deliveries d SET status = 'sent', sent_at = now(), claimed_until = NULL,
                   claim_token = NULL
            FROM m WHERE d.id = m.id AND d.status = 'pending' RETURNING d.id
        )
        {outbox.INSERT}
        SELECT m.topic, m.key, m.event_id, m.event_type, m.payload FROM m JOIN sent USING (id)
        ORDER BY m.id
        """,
        ids,
        *(list(column) for column in zip(*rows, strict=True)),
    )


async def mark_retry(
    conn: asyncpg.Connection, delivery_id: int, *, token: UUID, delay_seconds: float, error: str
) -> None:
    """Try again after `delay_seconds`, if the lease under `token` is still ours."""
    await conn.execute(
        """
        UPDATE deliveries SET claimed_until = NULL, claim_token = NULL, last_error = $4,
               next_attempt_at = now() + make_interval(secs => $3)
        WHERE id = $1 AND claim_token = $2 AND status = 'pending'
        """,
        delivery_id,
        token,
        delay_seconds,
        error,
    )


async def mark_failed(
    conn: asyncpg.Connection, delivery_id: int, *, token: UUID, error: str
) -> bool:
    """Give the delivery up, if the lease under `token` is still ours; whether it was."""
    done = await conn.fetchval(
        """
        UPDATE deliveries SET status = 'failed', claimed_until = NULL, claim_token = NULL,
               last_error = $3
        WHERE id = $1 AND claim_token = $2 AND status = 'pending' RETURNING true
        """,
        delivery_id,
        token,
        error,
    )
    return bool(done)
