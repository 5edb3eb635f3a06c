"""SQL of the reports: their facts (written by the consumer, never committing), the period
aggregates they read, the kept reports and the improvement actions."""

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.metrics.reports.domain import Counts
from shared.inbox import last_per_key


def _columns(rows: Sequence[tuple[Any, ...]], width: int, *, key_width: int = 1) -> list[list[Any]]:
    """`rows` (the last one per key, its first `key_width` fields) as `width` column lists."""
    once = last_per_key(rows, lambda r: r[:key_width])
    return [list(c) for c in zip(*once, strict=True)] if once else [[] for _ in range(width)]


# ---- facts ---------------------------------------------------------------------------------


async def record_origins(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, str | None, str | None, str | None, str]]
) -> None:
    """(ticket_id, learner_key, tier, course_line, subject) from ticket.created."""
    await conn.execute(
        """
        INSERT INTO report_tickets AS f (ticket_id, learner_key, tier, course_line, subject)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
        ON CONFLICT (ticket_id) DO UPDATE SET
            learner_key = excluded.learner_key, tier = excluded.tier,
            course_line = excluded.course_line, subject = excluded.subject
        WHERE f.subject IS NULL
        """,
        *_columns(rows, 5),
    )


async def record_resolution_due(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, datetime]]
) -> None:
    """(ticket_id, resolution_due_at) of the first triage, as metrics keeps the first one."""
    await conn.execute(
        """
        INSERT INTO report_tickets AS f (ticket_id, resolution_due_at)
        SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
        ON CONFLICT (ticket_id) DO UPDATE SET resolution_due_at = excluded.resolution_due_at
        WHERE f.resolution_due_at IS NULL
        """,
        *_columns(rows, 2),
    )


async def record_resolutions(
    conn: asyncpg.Connection, rows: Sequence[tuple[UUID, datetime]]
) -> None:
    """(ticket_id, resolved_at): the first resolution and the latest, in any order."""
    await conn.execute(
        """
        INSERT INTO report_tickets AS f (ticket_id, resolved_at, last_resolved_at)
        SELECT r.ticket_id, min(r.at), max(r.at)
        FROM unnest($1::uuid[], $2::timestamptz[]) AS r(ticket_id, at) GROUP BY r.ticket_id
        ON CONFLICT (ticket_id) DO UPDATE SET
            resolved_at = least(f.resolved_at, excluded.resolved_at),
            last_resolved_at = greatest(f.last_resolved_at, excluded.last_resolved_at)
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
    )


async def record_reopens(conn: asyncpg.Connection, rows: Sequence[tuple[UUID, datetime]]) -> None:
    await conn.execute(
        """
        INSERT INTO report_reopens (ticket_id, reopened_at)
        SELECT * FROM unnest($1::uuid[], $2::timestamptz[]) ON CONFLICT DO NOTHING
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
    )


async def record_closes(conn: asyncpg.Connection, rows: Sequence[tuple[UUID, datetime]]) -> None:
    await conn.execute(
        """
        INSERT INTO report_tickets AS f (ticket_id, closed_at)
        SELECT r.ticket_id, max(r.at)
        FROM unnest($1::uuid[], $2::timestamptz[]) AS r(ticket_id, at) GROUP BY r.ticket_id
        ON CONFLICT (ticket_id) DO UPDATE SET closed_at = greatest(f.closed_at, excluded.closed_at)
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
    )


async def record_surveys(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[UUID, UUID, int, int, int, int, datetime]],
) -> None:
    """(survey_id, ticket_id, overall, response_speed, problem_solving, attitude, answered_at)."""
    await conn.execute(
        """
        INSERT INTO report_surveys (survey_id, ticket_id, overall, response_speed,
                                    problem_solving, attitude, answered_at)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::int[], $5::int[],
                             $6::int[], $7::timestamptz[])
        ON CONFLICT DO NOTHING
        """,
        *_columns(rows, 7),
    )


async def record_periodic(
    conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]], courses: Sequence[tuple[Any, ...]]
) -> None:
    """Periodic answers, (survey_id, overall, response_speed, problem_solving, attitude,
    teacher_level, teaching_method, teaching_attitude, answered_at), and their courses'
    scores, (survey_id, course_id, course_line, usefulness, difficulty, structure,
    answered_at)."""
    await conn.execute(
        """
        INSERT INTO report_periodic (survey_id, overall, response_speed, problem_solving,
            attitude, teacher_level, teaching_method, teaching_attitude, answered_at)
        SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[],
                             $7::int[], $8::int[], $9::timestamptz[])
        ON CONFLICT DO NOTHING
        """,
        *_columns(rows, 9),
    )
    await conn.execute(
        """
        INSERT INTO report_periodic_courses (survey_id, course_id, course_line, usefulness,
            difficulty, structure, answered_at)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[],
                             $6::int[], $7::timestamptz[])
        ON CONFLICT DO NOTHING
        """,
        *_columns(courses, 7, key_width=2),
    )


async def record_callbacks(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """(ticket_id, recorded_at, reason, reached, score)."""
    await conn.execute(
        """
        INSERT INTO report_callbacks (ticket_id, recorded_at, reason, reached, score)
        SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::bool[], $5::int[])
        ON CONFLICT DO NOTHING
        """,
        *_columns(rows, 5, key_width=2),
    )


# ---- a period's figures --------------------------------------------------------------------

# The tickets created in [$1, $2), with what the reports know of them. Resolved "now": closed,
# or resolved after its last reopening.
_COHORT = """
    WITH c AS (
        SELECT t.ticket_id, t.channel, t.category, t.priority, t.team, t.created_at,
               t.first_response_due_at, t.first_responded_at,
               f.learner_key, f.tier, f.course_line, f.subject, f.resolution_due_at,
               f.resolved_at, f.closed_at, o.last_reopened_at,
               (f.closed_at IS NOT NULL OR f.last_resolved_at >
                    coalesce(o.last_reopened_at, '-infinity')) AS resolved
        FROM tickets t
        LEFT JOIN report_tickets f USING (ticket_id)
        LEFT JOIN LATERAL (SELECT max(reopened_at) AS last_reopened_at FROM report_reopens r
                           WHERE r.ticket_id = t.ticket_id) o ON true
        WHERE t.created_at >= $1 AND t.created_at < $2
    )
"""


async def period_counts(conn: asyncpg.Connection, start: datetime, end: datetime) -> Counts:
    """Every count of domain.Counts over tickets created in [start, end) and surveys answered
    then; due times that have not come yet count neither way."""
    row = await conn.fetchrow(
        _COHORT
        + """
        SELECT count(*) AS tickets,
               count(*) FILTER (WHERE category = 'complaint') AS complaints,
               count(*) FILTER (WHERE resolved) AS resolved,
               count(*) FILTER (WHERE resolved_at IS NOT NULL) AS ever_resolved,
               count(*) FILTER (WHERE resolved_at IS NOT NULL AND last_reopened_at IS NULL)
                   AS resolved_first_time,
               count(*) FILTER (WHERE last_reopened_at IS NOT NULL) AS reopened,
               count(*) FILTER (WHERE first_responded_at <= first_response_due_at)
                   AS first_response_met,
               count(*) FILTER (WHERE first_response_due_at IS NOT NULL AND
                   (first_responded_at IS NOT NULL OR first_response_due_at < now()))
                   AS first_response_due,
               count(*) FILTER (WHERE resolved_at <= resolution_due_at) AS resolution_met,
               count(*) FILTER (WHERE resolution_due_at IS NOT NULL AND
                   (resolved_at IS NOT NULL OR resolution_due_at < now())) AS resolution_due,
               count(*) FILTER (WHERE EXISTS (
                   SELECT FROM report_tickets pf JOIN tickets pt USING (ticket_id)
                   WHERE pf.learner_key = c.learner_key AND pt.category = c.category
                     AND pt.ticket_id <> c.ticket_id
                     AND pt.created_at < c.created_at
                     AND pt.created_at >= c.created_at - interval '30 days')) AS repeats,
               count(*) FILTER (WHERE coalesce(least(resolved_at, closed_at), 'infinity') >= $2)
                   AS open_at_end,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM first_responded_at - created_at))
                   AS first_response_median_s,
               percentile_cont(0.9) WITHIN GROUP (
                   ORDER BY extract(epoch FROM first_responded_at - created_at))
                   AS first_response_p90_s,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM resolved_at - created_at)) AS resolution_median_s,
               percentile_cont(0.9) WITHIN GROUP (
                   ORDER BY extract(epoch FROM resolved_at - created_at)) AS resolution_p90_s
        FROM c
        """,
        start,
        end,
    )
    surveys = await conn.fetchrow(
        """
        SELECT count(*) AS surveys, count(*) FILTER (WHERE overall >= 4) AS satisfied,
               avg(overall)::float8 AS overall_avg
        FROM report_surveys WHERE answered_at >= $1 AND answered_at < $2
        """,
        start,
        end,
    )
    assert row is not None and surveys is not None
    return Counts(**dict(row), **dict(surveys))


async def breakdowns(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """Per channel, category, priority, team, learner group and course line: tickets,
    complaints and resolved ones (`dimension`, `value`, `tickets`, `complaints`, `resolved`)."""
    return await conn.fetch(
        _COHORT
        + """
        SELECT CASE WHEN GROUPING(channel) = 0 THEN 'channel'
                    WHEN GROUPING(category) = 0 THEN 'category'
                    WHEN GROUPING(priority) = 0 THEN 'priority'
                    WHEN GROUPING(team) = 0 THEN 'team'
                    WHEN GROUPING(tier) = 0 THEN 'tier'
                    ELSE 'course_line' END AS dimension,
               coalesce(channel, category, priority, team, tier, course_line, 'unknown')
                   AS value,
               count(*) AS tickets,
               count(*) FILTER (WHERE category = 'complaint') AS complaints,
               count(*) FILTER (WHERE resolved) AS resolved
        FROM c
        GROUP BY GROUPING SETS ((channel), (category), (priority), (team), (tier), (course_line))
        ORDER BY 1, 3 DESC, 2
        """,
        start,
        end,
    )


async def satisfaction_by(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """Surveys answered in [start, end) by the ticket's channel, category, learner group and
    course line, and overall (`dimension` 'all'): counts, satisfied and each score's mean."""
    return await conn.fetch(
        """
        SELECT CASE WHEN GROUPING(t.channel) = 0 THEN 'channel'
                    WHEN GROUPING(t.category) = 0 THEN 'category'
                    WHEN GROUPING(f.tier) = 0 THEN 'tier'
                    WHEN GROUPING(f.course_line) = 0 THEN 'course_line'
                    ELSE 'all' END AS dimension,
               coalesce(t.channel, t.category, f.tier, f.course_line, 'unknown') AS value,
               count(*) AS surveys,
               count(*) FILTER (WHERE s.overall >= 4) AS satisfied,
               avg(s.overall)::float8 AS overall,
               avg(s.response_speed)::float8 AS response_speed,
               avg(s.problem_solving)::float8 AS problem_solving,
               avg(s.attitude)::float8 AS attitude
        FROM report_surveys s
        LEFT JOIN tickets t USING (ticket_id)
        LEFT JOIN report_tickets f USING (ticket_id)
        WHERE s.answered_at >= $1 AND s.answered_at < $2
        GROUP BY GROUPING SETS ((t.channel), (t.category), (f.tier), (f.course_line), ())
        ORDER BY 1, 3 DESC, 2
        """,
        start,
        end,
    )


async def score_distribution(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT overall, count(*) AS n FROM report_surveys "
        "WHERE answered_at >= $1 AND answered_at < $2 GROUP BY 1",
        start,
        end,
    )
    return {r["overall"]: r["n"] for r in rows}


async def series(
    conn: asyncpg.Connection, start: datetime, end: datetime, *, step: str, zone: str
) -> list[asyncpg.Record]:
    """Per `step` ('hour', 'day' or 'week') of local time in `zone`: tickets created,
    complaints, and surveys answered and satisfied, every step of the range present."""
    return await conn.fetch(
        """
        WITH steps AS (
            SELECT generate_series(date_trunc($3, $1 AT TIME ZONE $4),
                                   ($2 AT TIME ZONE $4) - interval '1 second',
                                   ('1 ' || $3)::interval) AS at),
        created AS (
            SELECT date_trunc($3, created_at AT TIME ZONE $4) AS at, count(*) AS tickets,
                   count(*) FILTER (WHERE category = 'complaint') AS complaints
            FROM tickets WHERE created_at >= $1 AND created_at < $2 GROUP BY 1),
        answered AS (
            SELECT date_trunc($3, answered_at AT TIME ZONE $4) AS at, count(*) AS surveys,
                   count(*) FILTER (WHERE overall >= 4) AS satisfied
            FROM report_surveys WHERE answered_at >= $1 AND answered_at < $2 GROUP BY 1)
        SELECT steps.at, coalesce(tickets, 0) AS tickets, coalesce(complaints, 0) AS complaints,
               coalesce(surveys, 0) AS surveys, coalesce(satisfied, 0) AS satisfied
        FROM steps LEFT JOIN created USING (at) LEFT JOIN answered USING (at)
        ORDER BY steps.at
        """,
        start,
        end,
        step,
        zone,
    )


async def subjects(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> list[tuple[str, str]]:
    """(subject, category) of the tickets created in [start, end)."""
    rows = await conn.fetch(
        """
        SELECT f.subject, coalesce(t.category, 'other') AS category
        FROM tickets t JOIN report_tickets f USING (ticket_id)
        WHERE t.created_at >= $1 AND t.created_at < $2 AND f.subject IS NOT NULL
        """,
        start,
        end,
    )
    return [(r["subject"], r["category"]) for r in rows]


# ---- kept reports --------------------------------------------------------------------------


async def report_exists(conn: asyncpg.Connection, kind: str, start: date) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM reports WHERE kind = $1 AND period_start = $2)", kind, start
    )
    return found


async def keep_report(
    conn: asyncpg.Connection,
    *,
    kind: str,
    start: date,
    end: date,
    language: str,
    html: str,
    pdf: bytes,
    summary: str,
) -> bool:
    """Keep a period's report; False when one is kept already (another replica's)."""
    status = await conn.execute(
        """
        INSERT INTO reports (kind, period_start, period_end, language, html, pdf, summary)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
        """,
        kind,
        start,
        end,
        language,
        html,
        pdf,
        summary,
    )
    return status.endswith(" 1")


async def unsent_reports(conn: asyncpg.Connection, *, within_days: int) -> list[asyncpg.Record]:
    """Reports not e-mailed yet and made in the last `within_days` (a list configured later
    does not receive the backlog of every report kept before)."""
    return await conn.fetch(
        """
        SELECT kind, period_start, period_end, html, pdf, summary FROM reports
        WHERE emailed_at IS NULL AND created_at > now() - make_interval(days => $1)
        ORDER BY period_start, kind
        """,
        within_days,
    )


async def mark_emailed(
    conn: asyncpg.Connection, *, kind: str, start: date, recipients: Sequence[str]
) -> None:
    await conn.execute(
        "UPDATE reports SET emailed_at = now(), emailed_to = $3 "
        "WHERE kind = $1 AND period_start = $2",
        kind,
        start,
        list(recipients),
    )


async def list_reports(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT kind, period_start, period_end, language, created_at, emailed_at, emailed_to "
        "FROM reports ORDER BY period_start DESC, kind LIMIT $1",
        limit,
    )


async def report_file(
    conn: asyncpg.Connection, kind: str, start: date, column: str
) -> str | bytes | None:
    if column not in ("html", "pdf"):
        raise ValueError(column)
    found: str | bytes | None = await conn.fetchval(
        f"SELECT {column} FROM reports WHERE kind = $1 AND period_start = $2", kind, start
    )
    return found


# ---- improvement actions -------------------------------------------------------------------

ACTION_COLUMNS = (
    "action_id, problem, department, owner, target_metric, target_value, started_on, deadline, "
    "status, notes, created_by, created_at, updated_at"
)


async def create_action(
    conn: asyncpg.Connection, fields: dict[str, Any], *, by: str
) -> asyncpg.Record:
    names = list(fields)
    row = await conn.fetchrow(
        f"INSERT INTO improvement_actions ({', '.join(names)}, created_by) "
        f"VALUES ({', '.join(f'${i}' for i in range(1, len(names) + 2))}) "
        f"RETURNING {ACTION_COLUMNS}",
        *fields.values(),
        by,
    )
    assert row is not None
    return row


async def update_action(
    conn: asyncpg.Connection, action_id: int, fields: dict[str, Any]
) -> asyncpg.Record | None:
    """Set `fields` (names checked by the API's model); None when there is no such action."""
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    return await conn.fetchrow(
        f"UPDATE improvement_actions SET {sets}, updated_at = now() WHERE action_id = $1 "
        f"RETURNING {ACTION_COLUMNS}",
        action_id,
        *fields.values(),
    )


async def action(conn: asyncpg.Connection, action_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {ACTION_COLUMNS} FROM improvement_actions WHERE action_id = $1", action_id
    )


async def actions(
    conn: asyncpg.Connection, *, started_before: date | None = None, since: datetime | None = None
) -> list[asyncpg.Record]:
    """Every action, or those started before `started_before` that were not finished before
    `since` (what a period's report shows)."""
    return await conn.fetch(
        f"""
        SELECT {ACTION_COLUMNS} FROM improvement_actions
        WHERE ($1::date IS NULL OR started_on < $1)
          AND ($2::timestamptz IS NULL OR status NOT IN ('done', 'cancelled') OR updated_at >= $2)
        ORDER BY deadline, action_id
        """,
        started_before,
        since,
    )


# ---- the follow-up programme ---------------------------------------------------------------


async def periodic_scores(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> asyncpg.Record:
    """Periodic answers in [start, end): how many, how many satisfied (overall 4-5), and each
    dimension's mean."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS surveys, count(*) FILTER (WHERE overall >= 4) AS satisfied,
               avg(overall)::float8 AS overall, avg(response_speed)::float8 AS response_speed,
               avg(problem_solving)::float8 AS problem_solving,
               avg(attitude)::float8 AS attitude, avg(teacher_level)::float8 AS teacher_level,
               avg(teaching_method)::float8 AS teaching_method,
               avg(teaching_attitude)::float8 AS teaching_attitude
        FROM report_periodic WHERE answered_at >= $1 AND answered_at < $2
        """,
        start,
        end,
    )
    assert row is not None
    return row


async def course_scores(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """The courses' scores of periodic answers in [start, end), per course line, lowest
    usefulness first."""
    return await conn.fetch(
        """
        SELECT course_line, count(*) AS answers, avg(usefulness)::float8 AS usefulness,
               avg(difficulty)::float8 AS difficulty, avg(structure)::float8 AS structure
        FROM report_periodic_courses WHERE answered_at >= $1 AND answered_at < $2
        GROUP BY course_line ORDER BY 3, 2 DESC, 1
        """,
        start,
        end,
    )


async def callbacks(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """Call-backs made in [start, end), per reason: how many, reached, scored, the mean score
    and how many scored 1-2."""
    return await conn.fetch(
        """
        SELECT reason, count(*) AS made, count(*) FILTER (WHERE reached) AS reached,
               count(score) AS scored, avg(score)::float8 AS score,
               count(*) FILTER (WHERE score <= 2) AS low
        FROM report_callbacks WHERE recorded_at >= $1 AND recorded_at < $2
        GROUP BY reason ORDER BY reason
        """,
        start,
        end,
    )
