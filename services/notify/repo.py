"""SQL for notify's schema. Nothing here commits: the caller owns the transaction."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from shared import outbox
from shared.events import Envelope


async def upsert_contacts(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(
        """
        INSERT INTO recipients (ticket_id, number, name, email, language, subject, created_at)
        SELECT r.ticket_id, r.number, r.name, r.email, r.language, r.subject, r.created_at
        FROM jsonb_to_recordset($1::jsonb) AS r(ticket_id uuid, number text, name text, email text,
             language text, subject text, created_at timestamptz)
        ON CONFLICT (ticket_id) DO UPDATE SET number = excluded.number, name = excluded.name,
            email = excluded.email, language = excluded.language, subject = excluded.subject,
            created_at = excluded.created_at
        """,
        list(rows),
    )


async def upsert_triage(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(
        """
        INSERT INTO recipients (ticket_id, priority, first_response_due_at)
        SELECT r.ticket_id, r.priority, r.first_response_due_at
        FROM jsonb_to_recordset($1::jsonb) AS r(ticket_id uuid, priority text,
             first_response_due_at timestamptz)
        ON CONFLICT (ticket_id) DO UPDATE SET priority = excluded.priority,
            first_response_due_at = excluded.first_response_due_at
        """,
        list(rows),
    )


async def queue_confirmations(conn: asyncpg.Connection, ticket_ids: Sequence[UUID]) -> None:
    """One confirmation per ticket; `claim` holds it back until triage is known or overdue."""
    await conn.execute(
        """
        INSERT INTO deliveries (delivery_key, ticket_id, kind)
        SELECT 'confirmation:' || ticket_id, ticket_id, 'confirmation' FROM recipients
        WHERE ticket_id = ANY($1::uuid[]) AND email IS NOT NULL
        ORDER BY ticket_id
        ON CONFLICT (delivery_key) DO NOTHING
        """,
        list(ticket_ids),
    )


async def add_deliveries(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO deliveries (delivery_key, ticket_id, kind, payload)
        SELECT r.delivery_key, r.ticket_id, r.kind, r.payload
        FROM jsonb_to_recordset($1::jsonb) AS r(delivery_key text, ticket_id uuid, kind text,
             payload jsonb)
        ON CONFLICT (delivery_key) DO NOTHING
        """,
        list(rows),
    )


async def claim(
    conn: asyncpg.Connection,
    *,
    token: UUID,
    limit: int,
    lease_seconds: int,
    triage_grace_seconds: float,
    exclude: Sequence[int] = (),
) -> list[asyncpg.Record]:
    """Lease due deliveries whose recipient is known, with what rendering them needs.

    A confirmation waits for the triage (its priority and due time) for at most the grace
    period; after that it goes with the general promise rather than not at all.

    No lease ends sooner than `lease_seconds` after PostgreSQL (re)started: a sender that got
    the SMTP server's 250 while the database was down keeps its lease for that long after the
    database is back, time enough to record "sent" before anyone else may take the delivery.
    `exclude` are deliveries this process sent and is still recording.
    """
    return await conn.fetch(
        """
        UPDATE deliveries d
        SET claimed_until = now() + make_interval(secs => $2), attempts = d.attempts + 1,
            claim_token = $4
        FROM (
            SELECT d2.id, r.number, r.name, r.email, r.language, r.subject, r.created_at,
                   r.priority, r.first_response_due_at
            FROM deliveries d2 JOIN recipients r USING (ticket_id)
            WHERE d2.status = 'pending' AND d2.next_attempt_at <= now()
              AND (d2.claimed_until IS NULL
                   OR greatest(d2.claimed_until,
                               pg_postmaster_start_time() + make_interval(secs => $2)) < now())
              AND r.email IS NOT NULL AND r.number IS NOT NULL
              AND (d2.kind <> 'confirmation' OR r.priority IS NOT NULL
                   OR d2.created_at < now() - make_interval(secs => $3))
              AND d2.id <> ALL($5::bigint[])
            ORDER BY d2.id
            LIMIT $1
            FOR UPDATE OF d2 SKIP LOCKED
        ) c
        WHERE d.id = c.id
        RETURNING d.id, d.delivery_key, d.ticket_id, d.kind, d.payload, d.attempts, c.number,
                  c.name, c.email, c.language, c.subject, c.created_at, c.priority,
                  c.first_response_due_at
        """,
        limit,
        lease_seconds,
        triage_grace_seconds,
        token,
        list(exclude),
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


async def mark_sent(conn: asyncpg.Connection, delivery_id: int, event: Envelope[Any]) -> None:
    """Mark sent and stage `event` in one statement: one round trip right after the SMTP 250,
    which is the whole window in which a crash can cause a duplicate e-mail. Marking a
    delivery that is already sent changes nothing and stages nothing."""
    await conn.execute(
        f"""
        WITH sent AS (
            UPDATE deliveries SET status = 'sent', sent_at = now(), claimed_until = NULL,
                   claim_token = NULL
            WHERE id = $1 AND status = 'pending' RETURNING id
        )
        {outbox.INSERT} SELECT $2, $3, $4, $5, $6 FROM sent
        """,
        delivery_id,
        *outbox.row(event),
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
