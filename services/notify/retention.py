"""notify's retention (R7.3): once a ticket has been quiet for CARELOOP_NOTIFY_RETENTION_DAYS
(no delivery pending, none created or sent within the period), who its learner is goes.

Its recipient keeps the ticket's pseudonym (the same as desk's), its language, channels and
triage; the contacts and the portal link go and contacts in the subject are masked. Its
deliveries keep their kind, channel, status, attempts and times; the address and the name go,
and contacts are masked in the texts (a reply, a note, a resolution, a case's outcome) and in
the last error. A ticket-less notice's recipient (keyed by the notice) is done the same way.
Each row is done once (`pseudonymised_at`), so running the job again changes nothing.
"""

from datetime import datetime
from typing import Any

import asyncpg

from shared.retention import masked, pseudonym

# Payload keys that hold what a person wrote; the rest are codes, numbers and links.
PAYLOAD_TEXTS = ("body", "resolution")

# A ticket (or notice) is quiet when no delivery of it is pending, created or sent since $1.
_QUIET = """
    NOT EXISTS (
        SELECT FROM deliveries o
        WHERE o.ticket_id = {0}.ticket_id
          AND (o.status = 'pending' OR o.created_at >= $1 OR o.sent_at >= $1))
"""


async def forget_recipients(conn: asyncpg.Connection, *, expired: datetime, limit: int) -> int:
    """Pseudonymise the recipients of tickets quiet since `expired`; returns how many."""
    due = await conn.fetch(
        f"""
        SELECT ticket_id, subject FROM recipients r
        WHERE r.pseudonymised_at IS NULL AND r.seen_at < $1
          AND (r.created_at IS NULL OR r.created_at < $1) AND {_QUIET.format("r")}
        ORDER BY r.seen_at LIMIT $2 FOR UPDATE SKIP LOCKED
        """,
        expired,
        limit,
    )
    if not due:
        return 0
    await conn.execute(
        """
        UPDATE recipients x
        SET name = r.pseudonym, subject = r.subject, email = NULL, phone = NULL,
            wechat_openid = NULL, weibo_uid = NULL, portal_url = NULL, pseudonymised_at = now()
        FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(ticket_id, pseudonym, subject)
        WHERE x.ticket_id = r.ticket_id
        """,
        [r["ticket_id"] for r in due],
        [pseudonym(r["ticket_id"]) for r in due],
        [None if r["subject"] is None else masked(r["subject"]) for r in due],
    )
    return len(due)


async def forget_deliveries(conn: asyncpg.Connection, *, expired: datetime, limit: int) -> int:
    """Pseudonymise the settled deliveries of tickets quiet since `expired`; returns how many.
    (A quiet ticket has no pending delivery; `status <> 'pending'` is for the index.)"""
    due = await conn.fetch(
        f"""
        SELECT id, payload, last_error FROM deliveries d
        WHERE d.pseudonymised_at IS NULL AND d.status <> 'pending' AND {_QUIET.format("d")}
        ORDER BY d.id LIMIT $2 FOR UPDATE SKIP LOCKED
        """,
        expired,
        limit,
    )
    if not due:
        return 0
    await conn.execute(
        """
        UPDATE deliveries x
        SET payload = r.payload, last_error = r.last_error, address = NULL,
            pseudonymised_at = now()
        FROM unnest($1::bigint[], $2::jsonb[], $3::text[]) AS r(id, payload, last_error)
        WHERE x.id = r.id
        """,
        [r["id"] for r in due],
        [_payload(r["payload"]) for r in due],
        [None if r["last_error"] is None else masked(r["last_error"]) for r in due],
    )
    return len(due)


def _payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A delivery's template values without the name it greeted and with contacts masked in
    its texts."""
    return {
        k: masked(v) if k in PAYLOAD_TEXTS and isinstance(v, str) else v
        for k, v in payload.items()
        if k != "name"
    }


async def run_once(conn: asyncpg.Connection, expired: datetime, limit: int) -> dict[str, int]:
    """One round: the recipients, then the deliveries, that are due."""
    return {
        "recipients": await forget_recipients(conn, expired=expired, limit=limit),
        "deliveries": await forget_deliveries(conn, expired=expired, limit=limit),
    }
