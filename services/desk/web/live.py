"""The workspace's live feed: what happens on careloop.tickets.v1 and careloop.routing.v1,
fanned out to the connected users it concerns, as server-sent events.

Each desk process reads both topics itself, from their end, without a consumer group (every
replica must see every event for its own connections, and nothing is committed: a page that
was not open has nothing to catch up on — it reads the tickets when it opens). The reader runs
only while someone is connected. An event becomes a `Push`: which ticket, what happened, and
whom it is for; each connection gets the pushes for tickets its user may see, and a toast for
the ones addressed to them (a new assignment, the learner's reply, an SLA warning).

routing's events reach the hub and desk's own consumer at about the same time; the page
reloads its list when told, so the hub waits (briefly) until desk's table shows the
assignment before it tells anyone.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.desk.web import queries
from shared import topics
from shared.agents import Role
from shared.settings import CommonSettings

log = structlog.get_logger(__name__)

TOPICS = (topics.TICKETS, topics.ROUTING)
APPLIED_WAIT_SECONDS = 5.0
QUEUE_SIZE = 200  # a connection further behind than this misses pushes, not memory
CLOSED = None  # the last thing a feed's queue holds when desk stops


class _Someone(msgspec.Struct):
    agent_id: str


class _Data(msgspec.Struct):
    """The fields of any ticket event the hub reads; the rest is ignored."""

    ticket_id: UUID | None = None
    agent_id: str | None = None
    assignee_id: str | None = None
    team: str | None = None
    number: str | None = None
    recipients: tuple[_Someone, ...] = ()
    mentions: tuple[_Someone, ...] = ()
    to_agent_id: str | None = None
    to_team: str | None = None


class _Event(msgspec.Struct):
    type: str
    data: _Data


_DECODER = msgspec.json.Decoder(_Event)

# What each event tells the people it is addressed to; other ticket events only refresh.
_TOASTS = {
    "ticket.routed": "assigned",
    "ticket.assigned": "assigned",
    "ticket.transferred": "assigned",
    "ticket.queued": "queued",
    "ticket.message_received": "message",
    "ticket.resumed": "message",
    "ticket.note_added": "mention",
    "sla.warning": "sla",
    "sla.at_risk": "sla",
    "sla.breached": "breached",
}
# routing's placements: desk applies them from its own consumer; wait for that.
_PLACEMENTS = frozenset({"ticket.routed", "ticket.assigned", "ticket.queued"})


@dataclass(frozen=True)
class Push:
    """One thing that happened to a ticket, and to whom it is addressed."""

    ticket_id: UUID
    kind: str  # a key of TEXT[lang]["live"]
    direct: frozenset[str]  # agents it is addressed to (they get a toast)
    team: str | None = None
    assignee_id: str | None = None
    number: str = ""
    subject: str = ""


@dataclass(frozen=True)
class Who:
    agent_id: str
    role: Role
    teams: tuple[str, ...]


def concerns(push: Push, who: Who) -> bool:
    """Whether `who` may see the ticket (supervisors see all) or is addressed."""
    return (
        who.role is not Role.AGENT
        or who.agent_id in push.direct
        or push.assignee_id == who.agent_id
        or (push.team is not None and push.team in who.teams)
    )


def push_of(raw: bytes) -> tuple[Push, str | None, str | None] | None:
    """The push an event makes, with the assignee and team desk's table should show once
    desk applied it (routing's placements); None for an event about no ticket or unreadable."""
    try:
        event = _DECODER.decode(raw)
    except msgspec.DecodeError:
        return None
    d = event.data
    if d.ticket_id is None:
        return None
    kind = _TOASTS.get(event.type, "changed")
    direct: set[str] = set()
    if kind == "assigned":
        direct.update(a for a in (d.agent_id, d.to_agent_id) if a)
    elif kind in ("message", "sla", "breached"):
        direct.update(a for a in (d.assignee_id,) if a)
        direct.update(r.agent_id for r in d.recipients)
    direct.update(m.agent_id for m in d.mentions)
    expect_agent = d.agent_id if event.type in ("ticket.routed", "ticket.assigned") else None
    expect_team = d.team if event.type in _PLACEMENTS else None
    push = Push(ticket_id=d.ticket_id, kind=kind, direct=frozenset(direct), number=d.number or "")
    return push, expect_agent, expect_team


@dataclass(eq=False)  # each connection its own, hashed by identity
class _Listener:
    who: Who
    # QUEUE_SIZE pushes, and room for the CLOSED that ends the feed when desk stops
    queue: asyncio.Queue[Push | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE + 1))


class Hub:
    """The per-process reader and its listeners."""

    def __init__(self, settings: CommonSettings, pool: Callable[[], asyncpg.Pool]) -> None:
        self._settings = settings
        self._pool = pool
        self._listeners: set[_Listener] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closed = False

    async def keep(self, _: Any) -> None:
        """A background task of desk's lifespan: when desk stops, so does the reader, and every
        open feed ends (a feed whose browser went away unnoticed would otherwise keep the
        reader polling a broker that may be gone)."""
        try:
            await asyncio.Future()
        finally:
            self._closed = True
            for listener in self._listeners:
                listener.queue.put_nowait(CLOSED)
            if self._task is not None:
                self._task.cancel()

    @contextlib.asynccontextmanager
    async def listen(self, who: Who) -> AsyncIterator[asyncio.Queue[Push | None]]:
        """A queue of the pushes for `who`, once the reader is at the topics' end (what is
        published after this returns reaches the queue)."""
        if self._closed:
            raise RuntimeError("desk is stopping: no new live feed")
        listener = _Listener(who)
        self._listeners.add(listener)
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._run(), name="workspace-live")
        try:
            async with asyncio.timeout(30):
                await self._ready.wait()
            yield listener.queue
        finally:
            self._listeners.discard(listener)
            if not self._listeners and self._task is not None:
                task, self._task = self._task, None
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.warning("workspace live feed lost kafka; reconnecting", error=repr(exc))
                await asyncio.sleep(1)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id="desk-workspace-live",
        )
        try:
            # Started inside the try: a start cancelled halfway (the last feed closed, desk
            # stopping) must still be stopped, or its fetcher polls the broker forever.
            await consumer.start()
            await consumer.topics()
            parts = [
                TopicPartition(t, p) for t in TOPICS for p in consumer.partitions_for_topic(t) or ()
            ]
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            for tp in parts:
                await consumer.position(tp)  # resolves "the end" now, not at the first fetch
            self._ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
                made = [p for records in batch.values() for r in records if (p := push_of(r.value))]
                if made:
                    self._fan_out(await self._placed(made))
        finally:
            await consumer.stop()

    async def _placed(self, made: Sequence[tuple[Push, str | None, str | None]]) -> list[Push]:
        """The pushes with the ticket's number, subject, assignee and team from desk's table,
        once it shows each placement (or after APPLIED_WAIT_SECONDS, whatever it shows)."""
        ids = list({p.ticket_id for p, _, _ in made})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + APPLIED_WAIT_SECONDS
        while True:
            async with self._pool().acquire() as conn:
                rows = {r["ticket_id"]: r for r in await queries.tickets_brief(conn, ids)}
            waiting = [
                p
                for p, agent, team in made
                if (row := rows.get(p.ticket_id)) is None
                or (agent is not None and row["assignee_id"] != agent)
                or (team is not None and row["team"] != team)
            ]
            if not waiting or loop.time() >= deadline:
                break
            await asyncio.sleep(0.1)
        return [
            Push(
                ticket_id=p.ticket_id,
                kind=p.kind,
                direct=p.direct,
                team=row["team"],
                assignee_id=row["assignee_id"],
                number=row["number"],
                subject=row["subject"],
            )
            for p, _, _ in made
            if (row := rows.get(p.ticket_id)) is not None
        ]

    def _fan_out(self, pushes: Iterable[Push]) -> None:
        for push in pushes:
            for listener in self._listeners:
                if concerns(push, listener.who) and listener.queue.qsize() < QUEUE_SIZE:
                    listener.queue.put_nowait(push)
