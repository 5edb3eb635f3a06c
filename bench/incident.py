"""The incident phase: a bulk notice and a compensation batch to N learners, through
incident's public API, each learner's message counted where it leaves incident.

The bench plays the systems around incident: the LMS (N learner snapshots enrolled in one
course, on careloop.learners.v1), desk (one ticket.created per learner on careloop.tickets.v1,
which the open incident links on arrival: a compensation batch goes to the linked tickets'
learners), notify (it reads careloop.incidents.v1 for the incident.notice_requested events)
and the acting systems (careloop.remedies.v1 for coupon.issued). Only incident runs, on a
stack of its own, so the figures are incident's and not the ticket path's.

Reached is counted per learner on the topic: a learner reached once has exactly one notice id
(one remedy id); a second id for the same learner is a learner reached twice. The same event
id read again is a copy the outbox relay re-sent after a crash, which its consumer drops by
that id (notify delivers a notice once per notice id): counted apart, as `resent`.

The fault suite (chaos/bulk.py) runs the same workload with incident SIGKILLed during it.
"""

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from bench.stack import BenchStack, cpu_seconds, port
from bench.submit import Submitter
from deploy.local.harness import ServiceProcess, running_stack
from shared import topics
from shared.events import (
    Channel,
    CouponIssued,
    Envelope,
    IncidentNoticeRequested,
    Learner,
    TicketCreated,
    decode,
    new_event,
    now,
)

AGENTS = Path(__file__).with_name("incident-agents.yaml")
REQUESTER = "bench-s1-token"  # opens the incident, announces, asks for the compensation
APPROVER = "bench-s2-token"  # a second supervisor approves it
# Per channel per second: far above any provider's limit, so that the phase measures what
# incident itself sustains; the chaos run paces the release as a deployment would.
UNPACED = 50_000.0
# The learners' channels (see `snapshot`), and the service's default pace of each.
CHANNEL_SHARES = {"email": 0.7, "wechat": 0.2, "sms": 0.1}
DEFAULT_RATES = {"email": 200.0, "wechat": 100.0, "sms": 50.0}
API_TIMEOUT = 300.0  # an announcement or an approval for 100,000 learners is one transaction


def learner_id(run: str, i: int) -> str:
    return f"{run}-{i:06d}"


def contacts(run: str, i: int) -> dict[str, str]:
    """How learner i is reached: seven in ten by e-mail, two prefer WeChat, one has only a
    phone (SMS), so that a release runs on three providers' buckets."""
    lid = learner_id(run, i)
    if i % 10 == 9:
        return {"phone": f"+86139{i:08d}"}
    if i % 10 in (7, 8):
        return {"email": f"{lid}@example.com", "wechat_openid": f"o{lid}"}
    return {"email": f"{lid}@example.com"}


def snapshot(run: str, i: int, course: str) -> tuple[bytes, bytes]:
    """Learner i as the LMS publishes it (key, bare JSON), enrolled in `course`."""
    lid = learner_id(run, i)
    body: dict[str, Any] = {
        "learner_id": lid,
        "name": f"学员 {i}",
        **contacts(run, i),
        "locale": "en" if i % 4 == 0 else "zh",
        "courses": [{"course_id": course, "title": "直播课"}],
        "updated_at": now().isoformat(),
    }
    if "wechat_openid" in body:
        body["preferred_channel"] = "wechat"
    return lid.encode(), json.dumps(body, ensure_ascii=False).encode()


def ticket(run: str, i: int, course: str) -> tuple[bytes, bytes]:
    """Learner i's ticket about the broken course, as desk publishes ticket.created."""
    lid = learner_id(run, i)
    ticket_id = uuid.uuid5(uuid.NAMESPACE_URL, f"careloop-bench:{lid}")
    event = new_event(
        TicketCreated(
            ticket_id=ticket_id,
            number=f"CL-B{i:06d}",
            channel=Channel.APP,
            learner=Learner(name=f"学员 {i}", learner_id=lid, **contacts(run, i)),
            subject="直播课进不去",
            description="直播间一直黑屏，进不去",
            course_id=course,
            language="zh",
            created_at=now(),
        ),
        producer="desk",
    )
    return event.key.encode(), event.to_json()


# ---- counting on the topic ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reach:
    """How the learners were reached, per learner: `twice` learners got more than one message
    id, `strangers` messages went to learners not asked for; `resent` copies of one id."""

    expected: int
    reached: int
    missing: int
    twice: int
    strangers: int
    resent: int

    @property
    def exactly_once(self) -> bool:
        return self.reached == self.expected and not (self.missing or self.twice or self.strangers)


def reach(
    expected: set[str], ids: Mapping[str, set[uuid.UUID]], copies: Counter[uuid.UUID]
) -> Reach:
    """`ids`: each learner's distinct message ids seen; `copies`: how often each id was read."""
    return Reach(
        expected=len(expected),
        reached=sum(1 for lid in expected if ids.get(lid)),
        missing=sum(1 for lid in expected if not ids.get(lid)),
        twice=sum(1 for lid in expected if len(ids.get(lid, ())) > 1),
        strangers=sum(len(got) for lid, got in ids.items() if lid not in expected),
        resent=sum(n - 1 for n in copies.values()),
    )


Which = Callable[[Envelope[Any]], str | None]


@dataclass
class TopicWatch:
    """Reads a topic from its start as its consumer would, keeping each learner's message ids
    (the events `which` names a learner for) and when each new id first arrived."""

    bootstrap: str
    topic: str
    types: frozenset[str]
    which: Which
    ids: dict[str, set[uuid.UUID]] = field(default_factory=dict)
    copies: Counter[uuid.UUID] = field(default_factory=Counter)
    last_new_at: float = 0.0  # time.monotonic() of the newest distinct id

    @property
    def distinct(self) -> int:
        return len(self.copies)

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=20_000)
                for records in batches.values():
                    for r in records:
                        self._take(r.value)
        finally:
            await consumer.stop()

    def _take(self, raw: bytes) -> None:
        event = decode(raw, only=self.types)
        if event is None:
            return
        lid = self.which(event)
        if lid is None:
            return
        if event.event_id not in self.copies:
            self.ids.setdefault(lid, set()).add(event.event_id)
            self.last_new_at = time.monotonic()
        self.copies[event.event_id] += 1

    def reach(self, expected: set[str]) -> Reach:
        return reach(expected, self.ids, self.copies)


def notices_of(incident_id: uuid.UUID) -> Which:
    def which(e: Envelope[Any]) -> str | None:
        n: IncidentNoticeRequested = e.data
        return n.learner.learner_id if n.incident_id == incident_id else None

    return which


def remedies_of(batch_id: uuid.UUID) -> Which:
    def which(e: Envelope[Any]) -> str | None:
        c: CouponIssued = e.data
        return c.learner_id if c.case_id == batch_id else None

    return which


async def settled(
    watch: TopicWatch, n: int, *, grace: float, timeout: float, progress: Callable[[int], None]
) -> None:
    """Until `n` distinct ids arrived and nothing new came for `grace` seconds (a late second
    id would show), or `timeout` seconds without a new id."""
    quiet_since = time.monotonic()
    seen = -1
    while True:
        if watch.distinct != seen:
            seen, quiet_since = watch.distinct, time.monotonic()
            progress(seen)
        quiet = time.monotonic() - quiet_since
        if (seen >= n and quiet >= grace) or quiet >= timeout:
            return
        await asyncio.sleep(0.2)


# ---- the workload -----------------------------------------------------------------------------


@dataclass
class Bulk:
    """One run's learners, course and incident on a stack whose incident answers at `url`."""

    bootstrap: str
    dsn: str
    url: str
    n: int
    run: str = field(default_factory=lambda: f"b{secrets.token_hex(3)}")
    incident_id: uuid.UUID | None = None

    @property
    def course(self) -> str:
        return f"LIVE-{self.run}"

    @property
    def learners(self) -> set[str]:
        return {learner_id(self.run, i) for i in range(self.n)}

    async def publish(
        self, topic: str, make: Callable[[str, int, str], tuple[bytes, bytes]]
    ) -> None:
        submitter = Submitter(self.bootstrap)
        await submitter.start(topic)
        try:
            for start in range(0, self.n, 5000):
                chunk = [
                    make(self.run, i, self.course) for i in range(start, min(self.n, start + 5000))
                ]
                await asyncio.gather(*await submitter.send(topic, chunk))
        finally:
            await submitter.stop()

    async def count(self, sql: str, *args: Any) -> int:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            found: int = await conn.fetchval(sql, *args)
        finally:
            await conn.close()
        return found

    async def wait_for(
        self, sql: str, *args: Any, stall: float, progress: Callable[[int], None]
    ) -> float:
        """Poll `sql` (a count) until it reaches n, or fail when it stood still for `stall`
        seconds; the seconds it took."""
        start = moved = time.monotonic()
        got = -1
        while got < self.n:
            if (count := await self.count(sql, *args)) != got:
                got, moved = count, time.monotonic()
                progress(got)
            elif time.monotonic() - moved > stall:
                raise TimeoutError(f"{got:,} of {self.n:,}, none more for {stall:.0f} s: {sql}")
            await asyncio.sleep(0.5)
        return time.monotonic() - start

    async def enrol(self, progress: Callable[[int], None]) -> float:
        """The LMS's snapshots, until incident holds every learner."""
        start = time.monotonic()
        await self.publish(topics.LEARNERS, snapshot)
        await self.wait_for(
            "SELECT count(*) FROM incident.learners WHERE courses && ARRAY[$1]",
            self.course,
            stall=60,
            progress=progress,
        )
        return time.monotonic() - start

    async def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(timeout=API_TIMEOUT) as client:
            answer = await client.request(
                method, self.url + path, json=body, headers={"authorization": f"Bearer {token}"}
            )
        if answer.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json()

    async def open_incident(self) -> uuid.UUID:
        row = await self.call(
            "POST",
            "/v1/incidents",
            REQUESTER,
            {
                "title": "直播课无法进入",
                "title_en": "Live classes will not open",
                "severity": "sev1",
                "criteria": {"courses": [self.course]},
            },
        )
        self.incident_id = uuid.UUID(row["incident_id"])
        return self.incident_id

    async def announce(self) -> int:
        answer = await self.call(
            "POST",
            f"/v1/incidents/{self.incident_id}/announcements",
            REQUESTER,
            {
                "audience": "enrolled",
                "message": "直播服务器故障，正在抢修",
                "message_en": "The live-class servers are down; we are fixing them",
            },
        )
        return int(answer["learners"])

    async def link_tickets(self, progress: Callable[[int], None]) -> float:
        """desk's ticket.created for every learner, until the incident linked them all."""
        start = time.monotonic()
        await self.publish(topics.TICKETS, ticket)
        await self.wait_for(
            "SELECT count(*) FROM incident.links WHERE incident_id = $1 AND unlinked_at IS NULL",
            self.incident_id,
            stall=60,
            progress=progress,
        )
        return time.monotonic() - start

    async def compensate(self) -> tuple[uuid.UUID, int]:
        """A coupon for every linked learner, asked for by one supervisor, approved by another:
        the batch and how many learners it reaches."""
        batch = await self.call(
            "POST",
            f"/v1/incidents/{self.incident_id}/compensations",
            REQUESTER,
            {"kind": "coupon", "amount": "20.00", "currency": "CNY", "reason": "直播事故补偿"},
        )
        approved = await self.call(
            "POST", f"/v1/compensations/{batch['batch_id']}/approve", APPROVER
        )
        return uuid.UUID(batch["batch_id"]), int(approved["learners"])

    async def released(self, what: str, batch_id: uuid.UUID | None = None) -> int:
        """Notices (or a batch's remedies) incident marked released: in the outbox, committed."""
        if what == "notices":
            return await self.count(
                "SELECT count(*) FROM incident.notices WHERE incident_id = $1 "
                "AND released_at IS NOT NULL",
                self.incident_id,
            )
        return await self.count(
            "SELECT count(*) FROM incident.compensation_items WHERE batch_id = $1 "
            "AND released_at IS NOT NULL",
            batch_id,
        )


# ---- the bench phase --------------------------------------------------------------------------


@contextlib.contextmanager
def incident_stack(
    logs: Path, *, rates: Mapping[str, float], base: int = 24000
) -> Iterator[BenchStack]:
    """A fresh stack with incident alone, releasing notices at `rates` per channel; its ports
    are `base` (shifted by CARELOOP_TEST_PORT_SHIFT) plus the harness's offsets, incident's
    HTTP port `base` + 88."""
    folder = logs / "incident"
    folder.mkdir(parents=True, exist_ok=True)
    http_port = port(base + 88)
    with running_stack(port(base)) as stack:
        env = {
            **stack.env,
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            "CARELOOP_LOG_LEVEL": "WARNING",
            "CARELOOP_INCIDENT_HTTP_PORT": str(http_port),
            "CARELOOP_INCIDENT_NOTICE_RATES": json.dumps({**rates, "other": max(rates.values())}),
        }
        service = ServiceProcess("incident", http_port, env, folder / "incident.log")
        bench = BenchStack(stack, [service])
        try:
            service.start()
            service.wait_healthy()
            yield bench
        finally:
            bench.stop_services()


def _cpu_ms(pids: dict[str, int], before: dict[str, float], n: int) -> dict[str, float]:
    after = cpu_seconds(pids)
    return {name: (after[name] - before[name]) * 1000 / n for name in pids}


async def measure(stack: BenchStack, *, n: int, progress: Any) -> dict[str, Any]:
    """Enrol n learners, announce to them, then compensate them; each step's rate is from the
    API call to the last learner's distinct message on the topic."""
    bulk = Bulk(stack.bootstrap, stack.dsn, f"http://127.0.0.1:{stack.services[0].port}", n)
    bar = progress.add_task("learner snapshots", total=n)
    enrol_seconds = await bulk.enrol(lambda d: progress.update(bar, completed=d))
    incident_id = await bulk.open_incident()
    figures: dict[str, Any] = {
        "learners": n,
        "enrol_seconds": enrol_seconds,
        "shares": CHANNEL_SHARES,
        "rates": DEFAULT_RATES,
    }
    stop = asyncio.Event()
    notices = TopicWatch(
        stack.bootstrap,
        topics.INCIDENTS,
        frozenset({IncidentNoticeRequested.TYPE}),
        notices_of(incident_id),
    )
    watching = asyncio.create_task(notices.run(stop))
    try:
        bar = progress.add_task("notices on the topic", total=n)
        pids = stack.pids()
        before, start = cpu_seconds(pids), time.monotonic()
        accepted = await bulk.announce()
        answered = time.monotonic() - start
        await settled(
            notices, n, grace=3, timeout=120, progress=lambda d: progress.update(bar, completed=d)
        )
        figures["notices"] = step(
            notices.reach(bulk.learners),
            accepted=accepted,
            answered=answered,
            seconds=notices.last_new_at - start,
            cpu=_cpu_ms(pids, before, n),
        )
    finally:
        stop.set()
        await watching
    bar = progress.add_task("tickets linked", total=n)
    figures["link_seconds"] = await bulk.link_tickets(lambda d: progress.update(bar, completed=d))
    stop = asyncio.Event()
    start = time.monotonic()
    before = cpu_seconds(pids)
    batch_id, accepted = await bulk.compensate()
    answered = time.monotonic() - start
    remedies = TopicWatch(
        stack.bootstrap, topics.REMEDIES, frozenset({CouponIssued.TYPE}), remedies_of(batch_id)
    )
    watching = asyncio.create_task(remedies.run(stop))
    try:
        bar = progress.add_task("remedies on the topic", total=n)
        await settled(
            remedies, n, grace=3, timeout=120, progress=lambda d: progress.update(bar, completed=d)
        )
        figures["remedies"] = step(
            remedies.reach(bulk.learners),
            accepted=accepted,
            answered=answered,
            seconds=remedies.last_new_at - start,
            cpu=_cpu_ms(pids, before, n),
        )
    finally:
        stop.set()
        await watching
    return figures


def step(
    reached: Reach, *, accepted: int, answered: float, seconds: float, cpu: dict[str, float]
) -> dict[str, Any]:
    """One bulk step's figures: the API's answer, the rate to the last learner, exactly once."""
    return {
        **asdict(reached),
        "exactly_once": reached.exactly_once,
        "accepted": accepted,
        "api_seconds": answered,
        "seconds": seconds,
        "per_second": reached.reached / seconds if seconds > 0 else 0.0,
        "cpu_ms_per_learner": cpu,
    }
