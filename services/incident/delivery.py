"""What leaves incident besides its events: learner notices (an incident's or a course
change's) released to notify at each provider's pace, compensation remedies to the acting
systems, and the response group's e-mails and chat-robot messages.

A notice is released in the transaction that marks it released and stages its event, under a
transaction-scoped advisory lock (one releaser at a time across replicas, so the rate is the
installation's, not each replica's): a crash before the commit releases nothing, one after it
released everything it marked, so each learner's notice (and remedy) goes out once however
often the service dies. The event's id is the notice's (derived from the remedy's), so a relay
re-sent after a crash is the same event to its consumer.
"""

import time
import uuid
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import msgspec
import structlog
from prometheus_client import Counter

from services.incident import repo
from services.incident.changes import handlers as change_handlers
from services.incident.changes import repo as change_repo
from services.incident.domain import (
    Wording,
    dingtalk_signed,
    notice_text,
    robot_refusal,
    webhook_payload,
)
from services.incident.handlers import keyed
from services.incident.settings import IncidentSettings
from shared import outbox
from shared.events import (
    CoinKind,
    CouponIssued,
    Envelope,
    EventData,
    ExtensionGranted,
    IncidentNoticeRequested,
    Learner,
    NoticeKind,
    now,
)
from shared.service import Context, every

log = structlog.get_logger(__name__)

NOTICES = Counter(
    "careloop_incident_notices_total",
    "Learner notices released to notify, by channel.",
    ["channel"],
)
REMEDIES = Counter(
    "careloop_incident_remedies_total",
    "Compensation remedies issued on careloop.remedies.v1 (one per learner and batch).",
)
PAGES = Counter(
    "careloop_incident_pages_total",
    "Response-group messages by how they went: sent, retried, failed (given up).",
    ["target", "outcome"],
)
NOTICE_LOCK = 0x1C1D  # pg_try_advisory_xact_lock key of the notice releaser
RELEASE_SECONDS = 0.2
PAGE_BATCH = 20
REMEDY_BATCH = 1000
# A remedy's event id is derived from its id: relayed twice, it is still one event.
REMEDY_EVENTS = uuid.UUID("3f0b8f8e-7c1d-4b7a-9a53-2d6e1c9b4a10")


def remedy_event(row: Any) -> Envelope[Any]:
    """One learner's compensation for the acting system: `case_id` is the compensation
    batch, `ticket_id` and `number` the learner's linked ticket."""
    learner = msgspec.convert(row["learner"], Learner)
    common: dict[str, Any] = {
        "ticket_id": row["ticket_id"],
        "case_id": row["batch_id"],
        "remedy_id": row["remedy_id"],
        "number": row["number"],
        "learner_id": learner.learner_id,
        "learner": learner,
        "approved_by": (row["approved_by"],),
        "approved_at": row["approved_at"],
    }
    data: EventData
    if row["kind"] == "coupon":
        data = CouponIssued(
            **common, kind=CoinKind.COUPON, value=row["amount"], currency=row["currency"]
        )
    elif row["kind"] == "points":
        data = CouponIssued(**common, kind=CoinKind.POINTS, value=str(row["points"]))
    else:
        data = ExtensionGranted(**common, course_id=row["course_id"], days=row["days"])
    event = keyed(data, row["ticket_id"])
    event_id = uuid.uuid5(REMEDY_EVENTS, str(row["remedy_id"]))
    return msgspec.structs.replace(event, event_id=event_id, correlation_id=event_id)


class Bucket:
    """A token bucket per channel: `rate` notices a second, at most one second's worth at once."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = time.monotonic()

    def allowance(self) -> int:
        t = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (t - self.at) * self.rate)
        self.at = t
        return int(self.tokens)

    def spend(self, n: int) -> None:
        self.tokens -= n


class Delivery:
    def __init__(self, ctx: Context[IncidentSettings]) -> None:
        self._ctx = ctx
        self._s = ctx.settings
        self._buckets: dict[str, Bucket] = {}

    # ---- learner notices --------------------------------------------------------------------

    async def release_notices(self, _: Context[IncidentSettings]) -> None:
        await every(RELEASE_SECONDS, self.release_once, what="notice release")

    async def release_once(self) -> bool:
        """Release what each channel's bucket allows, and approved remedies a batch at a time;
        True when more remedies wait (they are not paced: the acting systems queue them)."""
        released: dict[str, int] = {}
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", NOTICE_LOCK):
                return False
            pending = set(await repo.outreach.pending_channels(conn))
            pending |= set(await change_repo.pending_channels(conn))
            for channel in sorted(pending):
                bucket = self._buckets.setdefault(channel, Bucket(self._s.rate_of(channel)))
                allowed = bucket.allowance()
                if allowed < 1:
                    continue
                rows = await repo.outreach.take_notices(conn, channel, allowed)
                events = [self._notice(r) for r in rows]
                # Course changes' notices share the channel's pace, after incident notices.
                more = await change_repo.take_notices(conn, channel, allowed - len(rows))
                events += [change_handlers.notice_event(self._s, r) for r in more]
                await outbox.add(conn, events)
                bucket.spend(len(events))
                released[channel] = len(events)
            remedies = await repo.outreach.take_remedies(conn, REMEDY_BATCH)
            await outbox.add(conn, [remedy_event(r) for r in remedies])
        for channel, n in released.items():
            NOTICES.labels(channel).inc(n)
        REMEDIES.inc(len(remedies))
        return len(remedies) == REMEDY_BATCH

    def _notice(self, row: Any) -> Any:
        status_url = self._s.status_url(row["number"], lang=row["locale"])
        title, body = notice_text(
            kind=row["kind"],
            locale=row["locale"],
            title=Wording(row["title"], row["title_en"]),
            message=Wording(row["body"], row["body_en"]),
            status_url=status_url,
        )
        learner = msgspec.convert(row["learner"], Learner)
        event = keyed(
            IncidentNoticeRequested(
                ticket_id=row["ticket_id"],
                notice_id=row["notice_id"],
                incident_id=row["incident_id"],
                kind=NoticeKind(row["kind"]),
                learner=learner,
                channel=row["channel"],
                locale=row["locale"],
                title=title,
                body=body,
                status_url=status_url,
                requested_at=now(),
            ),
            row["incident_id"],
        )
        return msgspec.structs.replace(event, event_id=row["notice_id"])

    # ---- the response group -----------------------------------------------------------------

    async def send_pages(self, _: Context[IncidentSettings]) -> None:
        await every(1.0, self.send_pages_once, what="response group messages")

    async def send_pages_once(self) -> bool:
        """Send the due messages; a failure is retried with a growing pause, and given up
        after CARELOOP_INCIDENT_PAGE_ATTEMPTS (its error stays on the incident's report)."""
        outcomes: list[tuple[str, str]] = []
        async with self._ctx.pool.acquire() as conn, conn.transaction():
            due = await repo.outreach.due_pages(conn, PAGE_BATCH)
            for page in due:
                target = "webhook" if page["target"] == "webhook" else "email"
                try:
                    await self._send(page)
                except (aiosmtplib.SMTPException, OSError, TimeoutError, httpx.HTTPError) as exc:
                    give_up = page["attempts"] + 1 >= self._s.page_attempts
                    await repo.outreach.page_failed(
                        conn,
                        page["page_id"],
                        error=repr(exc),
                        give_up=give_up,
                        retry_seconds=min(300.0, 2.0 ** page["attempts"]),
                    )
                    outcomes.append((target, "failed" if give_up else "retried"))
                    log.warning("response group message failed", target=target, error=repr(exc))
                    continue
                await repo.outreach.page_sent(conn, page["page_id"])
                outcomes.append((target, "sent"))
        for target, outcome in outcomes:
            PAGES.labels(target, outcome).inc()
        return len(due) == PAGE_BATCH

    async def _send(self, page: Any) -> None:
        if page["target"] == "webhook":
            await self._post(page)
            return
        message = EmailMessage()
        message["From"] = self._s.mail_from
        message["To"] = page["target"].removeprefix("email:")
        message["Subject"] = page["subject"]
        message.set_content(page["body"])
        await aiosmtplib.send(
            message,
            hostname=self._s.smtp_host,
            port=self._s.smtp_port,
            username=self._s.smtp_username,
            password=self._s.smtp_password.get_secret_value() if self._s.smtp_password else None,
            start_tls=self._s.smtp_starttls,
            timeout=10,
        )

    async def _post(self, page: Any) -> None:
        assert self._s.webhook_url is not None  # a webhook page is made only with a URL
        url = self._s.webhook_url.get_secret_value()
        if self._s.webhook_format == "dingtalk" and self._s.webhook_secret is not None:
            url = dingtalk_signed(
                url,
                self._s.webhook_secret.get_secret_value(),
                timestamp_ms=int(time.time() * 1000),
            )
        payload = webhook_payload(
            self._s.webhook_format,
            subject=page["subject"],
            body=page["body"],
            urgent=page["urgent"],
        )
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(url, json=payload)
        answer.raise_for_status()
        try:
            refused = robot_refusal(self._s.webhook_format, answer.json())
        except ValueError as exc:
            raise httpx.DecodingError(f"the robot answered no JSON: {answer.text[:200]}") from exc
        if refused:
            raise httpx.HTTPError(refused)
