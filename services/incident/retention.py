"""incident's retention (R7.3): CARELOOP_INCIDENT_RETENTION_DAYS (default desk's) after a
learner's part in an incident or a course change settled, nothing in incident says who they
were.

- A ticket an incident links (the others go after CARELOOP_INCIDENT_TICKET_RETENTION_DAYS) is
  done once every incident linking it was resolved that long ago: its learner becomes the
  ticket's pseudonym (desk's), contacts in its subject and description are masked.
- A released notice of an incident or a course change, and a compensation the acting system
  answered: the learner becomes a pseudonym, the acting system's reason is masked.
- Course operations' decision on a learner's change request: contacts in its notes are masked.
- The LMS's snapshot of a learner (name and contacts) goes once not updated for the period.

What happened stays: counts, kinds, channels, times, the tickets' categories and courses.
Each row is done once (`pseudonymised_at`), so running the job again changes nothing.
"""

from datetime import datetime

import asyncpg

from shared.retention import masked, pseudonym


async def forget_tickets(conn: asyncpg.Connection, *, expired: datetime, limit: int) -> int:
    """Pseudonymise the linked tickets created before `expired` whose incidents were all
    resolved before it; returns how many."""
    due = await conn.fetch(
        """
        SELECT t.ticket_id, t.subject, t.description FROM tickets t
        WHERE t.pseudonymised_at IS NULL AND coalesce(t.created_at, t.seen_at) < $1
          AND NOT EXISTS (
              SELECT FROM links k JOIN incidents i USING (incident_id)
              WHERE k.ticket_id = t.ticket_id
                AND (i.status <> 'resolved' OR i.resolved_at >= $1))
        ORDER BY coalesce(t.created_at, t.seen_at) LIMIT $2 FOR UPDATE OF t SKIP LOCKED
        """,
        expired,
        limit,
    )
    if not due:
        return 0
    await conn.execute(
        """
        UPDATE tickets x
        SET learner = jsonb_build_object('name', r.pseudonym), learner_key = r.pseudonym,
            subject = r.subject, description = r.description, pseudonymised_at = now()
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
            AS r(ticket_id, pseudonym, subject, description)
        WHERE x.ticket_id = r.ticket_id
        """,
        [t["ticket_id"] for t in due],
        [pseudonym(t["ticket_id"]) for t in due],
        [_masked(t["subject"]) for t in due],
        [_masked(t["description"]) for t in due],
    )
    return len(due)


async def forget_notices(
    conn: asyncpg.Connection, *, table: str, expired: datetime, limit: int
) -> int:
    """Pseudonymise the learners of `table`'s (notices or change_notices) notices released and
    created before `expired`; returns how many. Each notice's learner key becomes a pseudonym
    of its own (it stays unique per announcement); its learner, the ticket's pseudonym when it
    has a ticket. `table` comes from code."""
    ticket = "ticket_id" if table == "notices" else "NULL::uuid"
    due = await conn.fetch(
        f"""
        SELECT notice_id, {ticket} AS ticket_id FROM {table}
        WHERE pseudonymised_at IS NULL AND released_at IS NOT NULL AND created_at < $1
          AND released_at < $1
        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
        """,
        expired,
        limit,
    )
    if not due:
        return 0
    await conn.execute(
        f"""
        UPDATE {table} x
        SET learner = jsonb_build_object('name', r.name), learner_key = r.key,
            pseudonymised_at = now()
        FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(notice_id, name, key)
        WHERE x.notice_id = r.notice_id
        """,
        [n["notice_id"] for n in due],
        [pseudonym(n["ticket_id"] or n["notice_id"]) for n in due],
        [pseudonym(n["notice_id"]) for n in due],
    )
    return len(due)


async def forget_compensations(conn: asyncpg.Connection, *, expired: datetime, limit: int) -> int:
    """Pseudonymise the learners of compensations released and answered before `expired`;
    returns how many. Each keeps its remedy id, kind, ticket, number, reference and times."""
    due = await conn.fetch(
        """
        SELECT remedy_id, ticket_id, rejected_reason FROM compensation_items
        WHERE pseudonymised_at IS NULL AND released_at IS NOT NULL AND released_at < $1
          AND (acknowledged_at < $1 OR (acknowledged_at IS NULL AND rejected_reason IS NOT NULL))
        ORDER BY released_at LIMIT $2 FOR UPDATE SKIP LOCKED
        """,
        expired,
        limit,
    )
    if not due:
        return 0
    await conn.execute(
        """
        UPDATE compensation_items x
        SET learner = jsonb_build_object('name', r.name), learner_key = r.key,
            rejected_reason = r.reason, pseudonymised_at = now()
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS r(remedy_id, name, key, reason)
        WHERE x.remedy_id = r.remedy_id
        """,
        [c["remedy_id"] for c in due],
        [pseudonym(c["ticket_id"]) for c in due],
        [pseudonym(c["remedy_id"]) for c in due],
        [_masked(c["rejected_reason"]) for c in due],
    )
    return len(due)


async def forget_decisions(conn: asyncpg.Connection, *, expired: datetime, limit: int) -> int:
    """Mask contacts in the notes of change decisions made before `expired`; returns how many."""
    due = await conn.fetch(
        """
        SELECT ticket_id, note, note_en FROM change_decisions
        WHERE pseudonymised_at IS NULL AND at < $1
        ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED
        """,
        expired,
        limit,
    )
    if not due:
        return 0
    await conn.execute(
        """
        UPDATE change_decisions x
        SET note = r.note, note_en = r.note_en, pseudonymised_at = now()
        FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(ticket_id, note, note_en)
        WHERE x.ticket_id = r.ticket_id
        """,
        [d["ticket_id"] for d in due],
        [masked(d["note"]) for d in due],
        [_masked(d["note_en"]) for d in due],
    )
    return len(due)


async def forget_learners(conn: asyncpg.Connection, *, expired: datetime, limit: int) -> int:
    """Drop the LMS's snapshots not updated since `expired`; returns how many. A learner the
    LMS describes again is kept anew."""
    status = await conn.execute(
        """
        DELETE FROM learners WHERE learner_id IN (
            SELECT learner_id FROM learners WHERE updated_at < $1
            ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        """,
        expired,
        limit,
    )
    return int(status.split()[-1])


def _masked(text: str | None) -> str | None:
    return None if text is None else masked(text)


async def run_once(conn: asyncpg.Connection, expired: datetime, limit: int) -> dict[str, int]:
    """One round: every kind of row that is due."""
    return {
        "tickets": await forget_tickets(conn, expired=expired, limit=limit),
        "notices": await forget_notices(conn, table="notices", expired=expired, limit=limit),
        "change_notices": await forget_notices(
            conn, table="change_notices", expired=expired, limit=limit
        ),
        "compensations": await forget_compensations(conn, expired=expired, limit=limit),
        "decisions": await forget_decisions(conn, expired=expired, limit=limit),
        "learners": await forget_learners(conn, expired=expired, limit=limit),
    }
