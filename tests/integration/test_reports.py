"""Reports against the real stack: events through the broker into metrics' handlers (with the
reports' facts), a month's report rendered from its tables to HTML and PDF, kept and e-mailed
once to the SMTP sink with the PDF attached, and improvement actions over the HTTP API.

Every ticket here lives in March 2025 (Shanghai), a month no other test writes to, so the
figures are exactly these tickets'.
"""

import asyncio
import re
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.metrics.app import HANDLERS
from services.metrics.reports import api
from services.metrics.reports.periods import month_of
from services.metrics.reports.schedule import due_reports, make_report
from services.metrics.reports.settings import ReportSettings
from shared import http, people
from shared.agents import load_seed
from shared.events import (
    CallbackReason,
    CallbackRecorded,
    Category,
    Channel,
    CloseReason,
    CourseScores,
    Envelope,
    EventData,
    Learner,
    LearnerContext,
    LearnerCourse,
    Priority,
    ReopenReason,
    SurveyAnswered,
    SurveyPeriodicAnswered,
    TicketClosed,
    TicketCreated,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    TicketRouted,
    new_event,
)
from shared.service import new_context
from shared.settings import CommonSettings, Environment
from tests.integration.inprocess import AGENTS, environment
from tests.integration.metrics_feed import metrics_database, metrics_feed
from tests.support import RunningStack, eventually

SHANGHAI = ZoneInfo("Asia/Shanghai")
MARCH = month_of(date(2025, 3, 1))
SUE = {"Authorization": "Bearer test-sue-token"}  # a supervisor
ANA = {"Authorization": "Bearer test-ana-token"}  # an agent

Deliver = Callable[[list[Envelope[Any]]], Awaitable[None]]


def at(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=SHANGHAI)


class Ticket:
    """One ticket's events in March 2025, built as desk, routing and survey would."""

    def __init__(
        self,
        day: int,
        *,
        channel: Channel,
        category: Category,
        subject: str,
        learner: str,
        tier: str = "standard",
        course: str = "PY-101",
    ) -> None:
        self.id = uuid.uuid4()
        self.created_at = at(day)
        self.events: list[Envelope[Any]] = [
            self._event(
                TicketCreated(
                    ticket_id=self.id,
                    number="CL-700001",
                    channel=channel,
                    learner=Learner(name="Lin", email=f"{learner}@example.com"),
                    subject=subject,
                    description="details",
                    course_id=course,
                    language="zh",
                    created_at=self.created_at,
                    learner_context=LearnerContext(
                        learner_id=learner,
                        tier=tier,
                        courses=(LearnerCourse(course_id=course),),
                        updated_at=self.created_at,
                    ),
                )
            ),
            self._event(
                TicketRouted(
                    ticket_id=self.id,
                    channel=channel,
                    category=category,
                    priority=Priority.HIGH,
                    team="complaints" if category is Category.COMPLAINT else "tech_support",
                    language="zh",
                    first_response_due_at=self.created_at + timedelta(hours=1),
                    resolution_due_at=self.created_at + timedelta(days=2),
                    agent_id="ana",
                    routed_at=self.created_at,
                )
            ),
        ]

    def _event(self, data: EventData) -> Envelope[Any]:
        return new_event(data, producer="test")

    def replied(self, after: timedelta) -> "Ticket":
        self.events.append(
            self._event(
                TicketReplied(
                    ticket_id=self.id,
                    number="CL-700001",
                    reply_id=uuid.uuid4(),
                    agent_id="ana",
                    body="On it",
                    first_response=True,
                    created_at=self.created_at,
                    replied_at=self.created_at + after,
                )
            )
        )
        return self

    def resolved(self, after: timedelta) -> "Ticket":
        self.events.append(
            self._event(
                TicketResolved(
                    ticket_id=self.id,
                    number="CL-700001",
                    agent_id="ana",
                    resolution="Fixed",
                    confirm_url="http://127.0.0.1/confirm",
                    created_at=self.created_at,
                    resolved_at=self.created_at + after,
                )
            )
        )
        return self

    def reopened(self, after: timedelta) -> "Ticket":
        self.events.append(
            self._event(
                TicketReopened(
                    ticket_id=self.id,
                    number="CL-700001",
                    reason=ReopenReason.NOT_SOLVED,
                    previous_agent_id="ana",
                    needs_supervisor=False,
                    reopened_at=self.created_at + after,
                )
            )
        )
        return self

    def closed(self, after: timedelta) -> "Ticket":
        self.events.append(
            self._event(
                TicketClosed(
                    ticket_id=self.id,
                    number="CL-700001",
                    reason=CloseReason.CONFIRMED,
                    created_at=self.created_at,
                    closed_at=self.created_at + after,
                )
            )
        )
        return self

    def answered(self, overall: int, after: timedelta) -> "Ticket":
        self.events.append(
            self._event(
                SurveyAnswered(
                    survey_id=uuid.uuid4(),
                    ticket_id=self.id,
                    overall=overall,
                    response_speed=overall,
                    problem_solving=overall,
                    attitude=overall,
                    answered_at=self.created_at + after,
                )
            )
        )
        return self


def march_tickets() -> list[Ticket]:
    """Five tickets: 4 resolved now (80 %), one of them after a reopening (first-contact 3 of
    4), one complaint, one repeat of the same learner's problem, three surveys (5, 2, 4)."""
    h = timedelta(hours=1)
    return [
        Ticket(3, channel=Channel.WEB, category=Category.TECHNICAL, subject="视频播放卡顿",
               learner="lin", tier="vip")
        .replied(h / 3).resolved(5 * h).closed(8 * h).answered(5, 6 * h),
        Ticket(5, channel=Channel.WECHAT, category=Category.COMPLAINT, subject="投诉退款太慢",
               learner="wu", course="IELTS-7")
        .replied(5 * h),
        Ticket(10, channel=Channel.EMAIL, category=Category.PAYMENT_REFUND, subject="申请退款",
               learner="zhao")
        .replied(h / 2).resolved(24 * h).reopened(48 * h).resolved(72 * h).answered(2, 73 * h),
        Ticket(20, channel=Channel.WEB, category=Category.TECHNICAL, subject="视频播放卡顿!",
               learner="lin", tier="vip")
        .replied(h / 4).resolved(3 * h).answered(4, 4 * h),
        Ticket(22, channel=Channel.APP, category=Category.TECHNICAL, subject="App闪退",
               learner="qian")
        .replied(h / 2).resolved(20 * h),
    ]  # fmt: skip


def march_follow_ups(tickets: list[Ticket]) -> list[Envelope[Any]]:
    """Two periodic answers in March (overall 5 and 2; IELTS rated twice, PY once), one in
    February, and three call-backs: two sampled (one reached, scored 4), one complaint's
    (reached, scored 2)."""

    def periodic(day: datetime, overall: int, courses: list[tuple[str, int]]) -> Envelope[Any]:
        return new_event(
            SurveyPeriodicAnswered(
                survey_id=uuid.uuid4(),
                learner_id=f"L-{uuid.uuid4().hex[:6]}",
                period="2025-01+3m",
                overall=overall,
                response_speed=overall,
                problem_solving=overall,
                attitude=overall,
                teacher_level=4,
                teaching_method=3,
                teaching_attitude=5,
                courses=tuple(
                    CourseScores(course_id=c, usefulness=u, difficulty=3, structure=4)
                    for c, u in courses
                ),
                answered_at=day,
            ),
            producer="survey",
        )

    def called(ticket: Ticket, reason: CallbackReason, score: int | None) -> Envelope[Any]:
        return new_event(
            CallbackRecorded(
                ticket_id=ticket.id,
                number="CL-700001",
                reason=reason,
                reached=score is not None,
                score=score,
                by="ana",
                recorded_at=ticket.created_at + timedelta(days=2),
            ),
            producer="desk",
        )

    return [
        periodic(at(4), 5, [("IELTS-7", 4), ("PY-101", 5)]),
        periodic(at(18), 2, [("ielts-9", 2)]),
        periodic(at(4) - timedelta(days=30), 1, [("IELTS-7", 1)]),  # February's
        called(tickets[0], CallbackReason.SAMPLE, 4),
        called(tickets[2], CallbackReason.SAMPLE, None),
        called(tickets[1], CallbackReason.COMPLAINT, 2),
    ]


@pytest.fixture(scope="module")
async def metrics_pool(stack: RunningStack) -> AsyncIterator[asyncpg.Pool]:
    async with metrics_database(stack) as pool:
        yield pool


@pytest.fixture(scope="module")
async def march(settings: CommonSettings, metrics_pool: asyncpg.Pool) -> list[Ticket]:
    """March's tickets, published to a topic of their own and applied by metrics' handlers
    with the reports' facts, as the metrics service applies them."""
    tickets = march_tickets()
    events = [e for t in tickets for e in t.events] + march_follow_ups(tickets)
    async with metrics_feed(settings, metrics_pool, handlers=HANDLERS, timeout=60) as publish:
        await publish(events)
        await publish(events)  # again, as a relay re-sends after a crash
    return tickets


def report_settings(stack: RunningStack, **changed: str) -> ReportSettings:
    """The reports' settings as the metrics process reads them, from its environment."""
    with environment(
        {
            "CARELOOP_REPORTS_RECIPIENTS": "managers@example.com,ops@example.com",
            "CARELOOP_REPORTS_SCHEDULE": "monthly",
            "CARELOOP_REPORTS_ACTION_WINDOW_DAYS": "14",
            "CARELOOP_SMTP_PORT": str(stack.stack.smtp_port),
            **changed,
        }
    ):
        return ReportSettings()


def row(html: str, kpi: str) -> str:
    found = re.search(rf'<tr data-kpi="{kpi}">(.*?)</tr>', html, re.S)
    assert found is not None, kpi
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found[1])).strip()


def table(html: str, table_id: str) -> list[list[str]]:
    """The table's cells, row by row, as text."""
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert found is not None, table_id
    return [
        [
            unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", c))).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)
        ]
        for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", found[1], re.S)
    ]


def pages(pdf: bytes) -> int:
    """The page objects of a PDF, in its compressed object streams too."""
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
    inflated = b"".join(zlib.decompress(s) for s in streams if s[:1] == b"x")
    return len(re.findall(rb"/Type\s*/Page\b", pdf + inflated))


async def test_a_month_renders_to_html_with_its_numbers_and_to_a_pdf(
    march: list[Ticket], metrics_pool: asyncpg.Pool, stack: RunningStack
) -> None:
    settings = report_settings(stack, CARELOOP_REPORTS_LANGUAGE="en")

    async with metrics_pool.acquire() as conn:
        made = await make_report(conn, MARCH, settings, now=datetime.now(UTC))

    html = made.html
    assert row(html, "tickets").startswith("Tickets 5 0")  # February had none
    assert row(html, "resolution_rate").startswith("Resolution rate 80.0 %")
    assert row(html, "first_contact_resolution").startswith("First-contact resolution 75.0 %")
    assert row(html, "reopen_rate").startswith("Reopen rate 25.0 %")
    assert row(html, "repeat_rate").startswith("Repeat problems 20.0 %")
    assert row(html, "complaints").startswith("Complaints 1")
    assert row(html, "satisfaction").startswith("Satisfaction (4–5 of 5) 66.7 %")
    # first responses: 4 of 5 by the hour they were due (the complaint's took five hours)
    assert row(html, "first_response_sla").startswith("First-response SLA met 80.0 %")
    assert "视频播放卡顿" in html  # the top problem: two tickets worded alike
    assert html.count('src="data:image/svg+xml;base64,') == 6
    # the follow-up programme: March's two periodic answers, not February's
    assert table(html, "periodic") == [
        ["Surveys answered", "Satisfied", "Overall", "Response speed", "Problem solving",
         "Attitude", "Teacher's level", "Teaching method", "Teaching attitude"],
        ["2", "50.0 %", "3.50", "3.50", "3.50", "3.50", "4.00", "3.00", "5.00"],
    ]  # fmt: skip
    assert table(html, "courses")[1:] == [["IELTS", "2", "3.00", "3.00", "4.00"],
                                          ["PY", "1", "5.00", "3.00", "4.00"]]  # fmt: skip
    assert table(html, "callbacks")[1:] == [
        ["Closed complaints", "1", "100.0 %", "1", "2.00", "1"],
        ["Sampled closed tickets", "2", "50.0 %", "1", "4.00", "0"],
    ]
    assert made.pdf.startswith(b"%PDF-")
    assert pages(made.pdf) >= 2


async def test_the_monthly_report_is_kept_and_emailed_once_with_its_pdf(
    march: list[Ticket], metrics_pool: asyncpg.Pool, stack: RunningStack
) -> None:
    settings = report_settings(stack)
    april_first = datetime(2025, 4, 1, 1, 0, tzinfo=SHANGHAI)

    made = await asyncio.gather(
        due_reports(metrics_pool, settings, now=april_first),
        due_reports(metrics_pool, settings, now=april_first),  # a second replica
    )
    again = await due_reports(metrics_pool, settings, now=april_first + timedelta(hours=1))

    assert sorted(made) == [0, 1] and again == 0

    async def sent() -> list[Any]:
        return [m for m in stack.mails() if "2025-03-01" in str(m["Subject"])]

    mails = await eventually(sent, timeout=10)
    assert len(mails) == 1
    mail = mails[0]
    assert mail["Subject"] == "客服月报 Monthly service report 2025-03-01 – 2025-03-31"
    assert set(str(mail["To"]).split(", ")) == {"managers@example.com", "ops@example.com"}
    pdf = next(p for p in mail.iter_attachments() if p.get_content_type() == "application/pdf")
    assert pdf.get_filename() == "careloop-monthly-2025-03-01.pdf"
    assert pdf.get_content().startswith(b"%PDF-")
    body = mail.get_body(("plain",)).get_content()
    assert "问题解决率 Resolution rate: 80.0 %" in body
    kept = await metrics_pool.fetchrow(
        "SELECT period_end, emailed_at, emailed_to FROM reports "
        "WHERE kind = 'monthly' AND period_start = '2025-03-01'"
    )
    assert kept is not None and kept["period_end"] == date(2025, 4, 1)
    assert kept["emailed_at"] is not None
    assert sorted(kept["emailed_to"]) == ["managers@example.com", "ops@example.com"]


@pytest.fixture(scope="module")
async def client(
    stack: RunningStack, settings: CommonSettings, metrics_pool: asyncpg.Pool
) -> AsyncIterator[httpx.AsyncClient]:
    """The reports' routes as the metrics app serves them, over its real pool."""
    local = settings.model_copy(update={"env": Environment.LOCAL, "agents_file": AGENTS})
    ctx = new_context("metrics", local)
    ctx._pool = metrics_pool
    async with metrics_pool.acquire() as conn:  # as the app's start does, before desk speaks
        await people.seed(conn, load_seed(AGENTS).agents)
    with environment({"CARELOOP_REPORTS_ACTION_WINDOW_DAYS": "14"}):
        app = FastAPI()
        app.include_router(api.routes(ctx))
    http.install(app, max_body_bytes=local.http_max_body_bytes)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as c:
        yield c


ACTION = {
    "problem": "退款处理慢 Refunds take too long",
    "department": "财务部 Finance",
    "owner": "Chen",
    "target_metric": "resolution_rate",
    "target_value": 95,
    "started_on": "2025-03-16",
    "deadline": "2025-03-25",
    "status": "in_progress",
}


async def test_only_supervisors_and_admins_track_improvement_actions(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post("/v1/improvement-actions", json=ACTION)).status_code == 401
    as_agent = await client.post("/v1/improvement-actions", json=ACTION, headers=ANA)
    assert as_agent.status_code == 403
    assert as_agent.json() == {"detail": "only a supervisor or an admin may do this"}


async def test_an_action_is_refused_naming_the_field_that_is_wrong(
    client: httpx.AsyncClient,
) -> None:
    unknown = await client.post(
        "/v1/improvement-actions", json={**ACTION, "target_metric": "happiness"}, headers=SUE
    )
    backwards = await client.post(
        "/v1/improvement-actions", json={**ACTION, "deadline": "2025-03-01"}, headers=SUE
    )

    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "target_metric"]
    assert backwards.status_code == 422
    assert backwards.json()["detail"][0]["loc"] == ["body", "deadline"]


async def test_an_action_shows_its_metric_before_and_after_in_the_api_and_the_report(
    march: list[Ticket],
    client: httpx.AsyncClient,
    metrics_pool: asyncpg.Pool,
    stack: RunningStack,
) -> None:
    created = await client.post("/v1/improvement-actions", json=ACTION, headers=SUE)
    assert created.status_code == 201, created.text
    action_id = created.json()["action_id"]
    assert created.json()["created_by"] == "sue"

    found = (await client.get(f"/v1/improvement-actions/{action_id}", headers=SUE)).json()

    # 14 days before 16 March: tickets of the 3rd, 5th and 10th, two resolved; after: both
    m = found["measurement"]
    assert m["before"] == pytest.approx(200 / 3)
    assert m["after"] == pytest.approx(100.0)
    assert (m["verdict"], m["target_met"], m["overdue"]) == ("better", True, True)
    async with metrics_pool.acquire() as conn:
        made = await make_report(
            conn,
            MARCH,
            report_settings(stack, CARELOOP_REPORTS_LANGUAGE="en"),
            now=datetime.now(UTC),
        )
    shown = re.search(rf'<tr data-action="{action_id}">(.*?)</tr>', made.html, re.S)
    assert shown is not None
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", shown[1]))
    assert "Overdue" in text and "66.7 %" in text and "100.0 %" in text and "▲ 33.3 pp" in text

    done = await client.patch(
        f"/v1/improvement-actions/{action_id}", json={"status": "done"}, headers=SUE
    )
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["measurement"]["overdue"]) == ("done", False)
    missing = await client.patch(
        "/v1/improvement-actions/999999", json={"status": "done"}, headers=SUE
    )
    assert missing.status_code == 404


async def test_a_kept_report_is_listed_and_downloaded(
    march: list[Ticket], client: httpx.AsyncClient, metrics_pool: asyncpg.Pool, stack: RunningStack
) -> None:
    settings = report_settings(stack, CARELOOP_REPORTS_RECIPIENTS="")
    await due_reports(metrics_pool, settings, now=datetime(2025, 4, 1, 2, tzinfo=SHANGHAI))

    listed = (await client.get("/v1/reports", headers=SUE)).json()
    march_report = next(r for r in listed if r["period_start"] == "2025-03-01")
    pdf = await client.get(march_report["pdf"], headers=SUE)
    html = await client.get(march_report["html"], headers=SUE)
    missing = await client.get("/v1/reports/monthly/2024-01-01.pdf", headers=SUE)

    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-type"] == "application/pdf"
    assert html.status_code == 200 and '<tr data-kpi="tickets">' in html.text
    assert missing.status_code == 404
