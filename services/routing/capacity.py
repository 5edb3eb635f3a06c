"""Capacity is exact under every fault: how Redis load follows committed Postgres state.

Redis decides (an atomic Lua script hands out a slot only below capacity); Postgres records
(`assignments`, committed with the outbox). The guarantee: the committed active assignments
of an agent are always a subset of the tickets Redis counts for that agent, so no agent ever
holds more committed assignments than capacity, and Redis itself never counts above it.
It holds because of four rules.

1. A slot is taken in Redis before the assignment commits, inside a transaction that holds
   the advisory lock `routing:load` shared, taken before any Redis change (`repo.share_load`,
   or folded into the statement that comes before the change: `repo.insert_tickets`,
   `repo.teams_waiting`, `repo.lock_drain`).
   A rollback leaves a slot held without an assignment: safe (it wastes a slot), and healed by
   a redelivery (the script gives the ticket back the slot it holds) or by rule 4.
2. A slot is freed in Redis only after its release committed (an after-commit action of the
   consumer, `Router.on_released`), and only if no assignment re-used it since: the release
   reads the ticket's claim counter before it commits and frees the slot only if the counter
   is unchanged (a reopening in the same batch inherits the slot and bumps it). So Redis never
   counts one fewer than Postgres, not even for the instant between a release and its commit,
   and the queue is drained in a transaction of its own after that. Presence changes commit
   first, then reach Redis, then drain.
3. A rebuild (Redis came back without `ready`) holds `routing:load` exclusively while it reads
   the active assignments and writes them to Redis. So no transaction is in flight: every
   assignment that took a slot before the flush has committed and is read; every release
   either committed before the read (its ticket is not restored, and its late free finds a
   claim the rebuild replaced, so it frees nothing) or starts after the rebuild (and frees
   what the rebuild wrote). Until `ready` is set, nobody is online in Redis, so nothing can be
   assigned on an incomplete load; a rebuild written in several steps sets `ready` only if no
   flush came between them (`load._CORRECT`).
4. A reconciliation every `CARELOOP_ROUTING_RECONCILE_INTERVAL_SECONDS` takes the same
   exclusive lock and compares. Under the lock, a committed assignment that Redis does not
   count can only be a loss (an assignment in flight is impossible, a release frees Redis only
   after its commit): it is restored at once. A slot Redis holds without a committed
   assignment may be a release that committed a moment ago and is about to free it: it is
   freed only when the previous reconciliation saw the same slot with the same claim.

A PostgreSQL restart ends every session and so releases every lock, but it also rolls back
their transactions: what a dead transaction did or still does in Redis can only take a slot
(rule 1), never free one (rule 2), so it errs on the safe side until rule 4 frees it.

The exclusive lock waits for the transactions in flight (each one batch, milliseconds) and
holds new ones back while Redis and Postgres are compared, a few milliseconds per thousand
open assignments; `lock_timeout` bounds the wait, and a round that cannot get it is skipped.
What a reconciliation corrects is counted in `careloop_routing_capacity_corrections_total`
(`direction`: `freed`, `restored`); agents over capacity (only possible when their capacity
was lowered below their open tickets) in `careloop_routing_agents_over_capacity`.

Capacity is weighted: each assignment takes its channel's weight (`channel_weights`, chat 1,
e-mail 0.5), recorded with the assignment (`weight_milli`) and restored with it, so a rebuild
counts the same load whatever the weights are changed to meanwhile. Redis keeps the sum per
agent (`used`) in the same script as every change of the agent's load set.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from services.routing import repo
from services.routing.domain import Pair, drift, over_capacity
from services.routing.load import LiveLoad

log = structlog.get_logger(__name__)

CORRECTIONS = Counter(
    "careloop_routing_capacity_corrections_total",
    "Slots a reconciliation corrected in Redis: freed (held without a committed assignment) "
    "or restored (a committed assignment Redis did not count).",
    ["direction"],
)
for _direction in ("freed", "restored"):
    CORRECTIONS.labels(_direction)
OVER_CAPACITY = Gauge(
    "careloop_routing_agents_over_capacity",
    "Agents holding more committed assignments than their capacity, at the last reconciliation.",
)
REBUILDS = Counter(
    "careloop_routing_load_rebuilds_total",
    "Times routing restored the whole Redis load from Postgres (Redis came back empty).",
)


@dataclass(frozen=True, slots=True)
class Outcome:
    rebuilt: bool
    freed: int
    restored: int
    over_capacity: dict[str, int]


@dataclass
class Reconciler:
    """Brings Redis load to committed Postgres state under the exclusive load lock."""

    pool: Callable[[], asyncpg.Pool]
    load: Callable[[], LiveLoad]
    lock_timeout_seconds: float = 2.0
    _suspects: dict[Pair, int] = field(default_factory=dict)

    async def run(self, *, only_if_empty: bool = False) -> Outcome | None:
        """One reconciliation (a rebuild when Redis lost `ready`); None when it was skipped:
        the lock was not granted in time, Redis was flushed meanwhile, or, with
        `only_if_empty`, Redis did not need a rebuild."""
        try:
            async with self.pool().acquire() as conn, conn.transaction():
                await repo.hold_load(conn, timeout_seconds=self.lock_timeout_seconds)
                return await self._compare(conn, only_if_empty=only_if_empty)
        except asyncpg.exceptions.LockNotAvailableError:
            log.warning("capacity reconciliation skipped: routing transactions held the lock")
            return None

    async def _compare(self, conn: asyncpg.Connection, *, only_if_empty: bool) -> Outcome | None:
        agents = await repo.load_agents(conn)
        capacity = {r["agent_id"]: r["capacity"] for r in agents}
        live = self.load()
        snap = await live.snapshot(sorted(capacity))
        if only_if_empty and snap.ready:
            return None
        active = await repo.active_assignments(conn)
        committed = [(str(r["ticket_id"]), r["agent_id"]) for r in active]
        weights = {str(r["ticket_id"]): r["weight_milli"] for r in active}
        found = drift(
            counted=snap.counted,
            indexed=snap.indexed,
            claims=snap.claims,
            committed=committed,
            suspects=self._suspects,
            rebuild=not snap.ready,
        )
        done = await live.correct(
            free=found.free,
            restore=[(t, a, weights[t]) for t, a in found.restore],
            rebuild=not snap.ready,
        )
        if done is None:
            return None  # flushed since the snapshot: the next sync rebuilds
        self._suspects = found.suspects
        over = over_capacity(committed, capacity, weights)
        OVER_CAPACITY.set(len(over))
        outcome = Outcome(not snap.ready, *done, over)
        if outcome.rebuilt:
            REBUILDS.inc()
            log.info("live load rebuilt from postgres", active=len(committed))
        elif outcome.freed or outcome.restored:
            CORRECTIONS.labels("freed").inc(outcome.freed)
            CORRECTIONS.labels("restored").inc(outcome.restored)
            log.warning("capacity drift corrected", freed=outcome.freed, restored=outcome.restored)
        if over:
            log.warning("agents over capacity", agents=over)
        return outcome
