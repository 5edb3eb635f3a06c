"""Reports made on their own: each replica looks every few minutes for a day, week or month
that has ended without its report; one replica at a time (an advisory lock) makes it, keeps it
(one row per kind and period) and e-mails it once to the configured list."""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from services.metrics.reports import mail, render, repo
from services.metrics.reports.gather import Report, gather
from services.metrics.reports.labels import translator
from services.metrics.reports.periods import Period, last_complete
from services.metrics.reports.settings import ReportSettings
from shared.service import Context, every

log = structlog.get_logger(__name__)
LOCK = "metrics.reports"
# A report kept without being e-mailed (the list was empty, or SMTP was down for long) is
# still sent within this many days; older ones stay kept only.
MAIL_WITHIN_DAYS = 7


@dataclass(frozen=True, slots=True)
class Made:
    report: Report
    html: str
    pdf: bytes
    summary: str


def summary(report: Report, *, language: str) -> str:
    """The e-mail's text: the summary KPIs, each with its change since the previous period."""
    word = translator(language)
    lines = [
        f"{word(report.period.kind)} {report.period.start} – {report.period.last_day}",
        "",
    ]
    for key in render.SUMMARY:
        value = render.number(key, report.kpis[key])
        lines.append(f"{word(key)}: {value} {render.delta(key, report.changes[key])}".rstrip())
    overdue = [a for a in report.actions if a.overdue]
    if overdue:
        lines += ["", f"{word('actions')} – {word('overdue')}:"]
        lines += [f"- {a.row['problem']} ({a.row['owner']}, {a.row['deadline']})" for a in overdue]
    return "\n".join(lines) + "\n"


async def make_report(
    conn: asyncpg.Connection, period: Period, settings: ReportSettings, *, now: datetime
) -> Made:
    """Gather, then draw and print in a thread: the charts and the PDF take seconds of CPU that
    the consumer's event loop must not wait for."""
    report = await gather(
        conn,
        period,
        zone=settings.zone,
        now=now,
        action_window_days=settings.action_window_days,
    )
    page = await asyncio.to_thread(render.html, report, language=settings.language)
    document = await asyncio.to_thread(render.pdf, page)
    return Made(report, page, document, summary(report, language=settings.language))


async def due_reports(pool: asyncpg.Pool, settings: ReportSettings, *, now: datetime) -> int:
    """Make what is due and e-mail what is unsent; returns how many reports this call made.
    Another replica holding the lock is doing it: nothing to do here."""
    made = 0
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", LOCK):
            return 0
        try:
            for kind in settings.kinds:
                period = last_complete(
                    kind, now - timedelta(minutes=settings.delay_minutes), settings.zone
                )
                if await repo.report_exists(conn, kind, period.start):
                    continue
                new = await make_report(conn, period, settings, now=now)
                made += await repo.keep_report(
                    conn,
                    kind=kind,
                    start=period.start,
                    end=period.end,
                    language=settings.language,
                    html=new.html,
                    pdf=new.pdf,
                    summary=new.summary,
                )
                log.info("report made", kind=kind, start=str(period.start))
            if settings.recipient_list:
                await _send_unsent(conn, settings)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", LOCK)
    return made


async def _send_unsent(conn: asyncpg.Connection, settings: ReportSettings) -> None:
    for row in await repo.unsent_reports(conn, within_days=MAIL_WITHIN_DAYS):
        msg = mail.message(
            settings,
            kind=row["kind"],
            start=row["period_start"],
            end=row["period_end"] - timedelta(days=1),
            html=row["html"],
            pdf=row["pdf"],
            summary=row["summary"],
        )
        await mail.send(settings, msg)
        # A crash between the two sends it again: at least once, never lost.
        await repo.mark_emailed(
            conn, kind=row["kind"], start=row["period_start"], recipients=settings.recipient_list
        )
        log.info("report e-mailed", kind=row["kind"], start=str(row["period_start"]))


async def run_schedule(ctx: Context[Any]) -> None:
    """The metrics app's background task (CARELOOP_REPORTS_SCHEDULE empty: it only idles)."""
    settings = ReportSettings()

    async def step() -> bool:
        try:
            await due_reports(ctx.pool, settings, now=datetime.now(UTC))
        except (OSError, mail.SMTPException) as exc:  # SMTP away: kept, e-mailed next round
            log.warning("reports not e-mailed; retrying", error=repr(exc))
        except Exception:  # the schedule must outlive one report's failure
            log.exception("report not made; trying again next round")
        return False

    await every(settings.check_seconds, step, what="reports")
