"""survey's retention (R7.3): CARELOOP_SURVEY_RETENTION_DAYS (default desk's) after a survey
was settled (answered, cancelled, held back by the quiet period, or sent and left unanswered),
nothing in it says who the learner was.

A survey keeps its kind, ticket, period, courses, status and times, and its answer keeps every
score; the learner's key (their LMS id or e-mail address) goes, a periodic survey's learner
becomes a pseudonym, and the free comments (the learner's own words) go. Each survey is done
once (`pseudonymised_at`), so running the job again changes nothing. A ticket's learner key
goes once no survey of that ticket is left to do, and the LMS's snapshot of a learner (name,
e-mail address) once the LMS has not updated it for the period and no survey waits for them.
"""

from datetime import datetime

import asyncpg

from shared.retention import pseudonym


async def forget_surveys(conn: asyncpg.Connection, *, expired: datetime, limit: int) -> int:
    """Pseudonymise the surveys settled before `expired` and drop their answers' comments;
    returns how many surveys."""
    due = await conn.fetch(
        """
        SELECT s.survey_id, s.kind FROM surveys s
        LEFT JOIN answers a USING (survey_id)
        LEFT JOIN periodic_answers p USING (survey_id)
        WHERE s.pseudonymised_at IS NULL AND s.status <> 'scheduled' AND s.created_at < $1
          AND coalesce(s.requested_at, s.created_at) < $1
          AND coalesce(a.answered_at, p.answered_at, s.created_at) < $1
        ORDER BY s.created_at LIMIT $2 FOR UPDATE OF s SKIP LOCKED
        """,
        expired,
        limit,
    )
    if not due:
        return 0
    ids = [s["survey_id"] for s in due]
    # A periodic survey must name a learner: a pseudonym of its own, unique as the period's
    # one survey per learner wants; a resolution survey needs none.
    await conn.execute(
        """
        UPDATE surveys s
        SET learner_id = CASE WHEN s.kind = 'periodic' THEN r.pseudonym END,
            learner_key = CASE WHEN s.kind = 'periodic' THEN 'id:' || r.pseudonym END,
            pseudonymised_at = now()
        FROM unnest($1::uuid[], $2::text[]) AS r(survey_id, pseudonym)
        WHERE s.survey_id = r.survey_id
        """,
        ids,
        [pseudonym(i) for i in ids],
    )
    for answers in ("answers", "periodic_answers"):
        await conn.execute(
            f"UPDATE {answers} SET comment = NULL "
            "WHERE survey_id = ANY($1::uuid[]) AND comment IS NOT NULL",
            ids,
        )
    return len(due)


async def forget_ticket_learners(conn: asyncpg.Connection, *, expired: datetime, limit: int) -> int:
    """Drop the learner keys of tickets seen before `expired` with no survey left to do or
    to pseudonymise; returns how many."""
    status = await conn.execute(
        """
        DELETE FROM ticket_learners WHERE ticket_id IN (
            SELECT t.ticket_id FROM ticket_learners t
            WHERE t.seen_at < $1
              AND NOT EXISTS (
                  SELECT FROM surveys s
                  WHERE s.ticket_id = t.ticket_id AND s.pseudonymised_at IS NULL)
            ORDER BY t.seen_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        """,
        expired,
        limit,
    )
    return int(status.split()[-1])


async def forget_learners(conn: asyncpg.Connection, *, expired: datetime, limit: int) -> int:
    """Drop the LMS's snapshots not updated since `expired` of learners no survey waits for;
    returns how many. A learner the LMS describes again is kept anew."""
    status = await conn.execute(
        """
        DELETE FROM learners WHERE learner_id IN (
            SELECT l.learner_id FROM learners l
            WHERE l.updated_at < $1
              AND NOT EXISTS (
                  SELECT FROM surveys s
                  WHERE s.learner_id = l.learner_id AND s.status = 'scheduled')
            ORDER BY l.updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        """,
        expired,
        limit,
    )
    return int(status.split()[-1])


async def run_once(conn: asyncpg.Connection, expired: datetime, limit: int) -> dict[str, int]:
    """One round: the surveys, then the tickets' learner keys and the learners, that are due."""
    return {
        "surveys": await forget_surveys(conn, expired=expired, limit=limit),
        "ticket_learners": await forget_ticket_learners(conn, expired=expired, limit=limit),
        "learners": await forget_learners(conn, expired=expired, limit=limit),
    }
