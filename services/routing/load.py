"""Live agent load in Redis: atomic capacity-checked assignment, corrected from Postgres at will.

Why the numbers stay exact under every fault is argued in `services/routing/capacity.py`.
All keys share one hash tag so the scripts stay valid on a Redis Cluster slot:

- `load:<agent>`: set of the tickets holding one of the agent's slots (its size is the load);
- `ticket`: hash ticket -> agent, the same facts indexed by ticket;
- `claim`: hash ticket -> a counter bumped by every assignment that lands on (or re-uses) the
  ticket's slot, so a release decided before a commit frees only the claim it saw;
- `cap`, `online`: capacity and presence, pushed from Postgres;
- `ready`: set once the load was restored from Postgres; without it nothing is assigned;
- `rebuilding`: the id of the rebuild under way, so that its steps know no flush came between.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4

from redis.asyncio import Redis

PREFIX = "careloop:{routing}:"
CHUNK = 2000  # pairs per correction call: a long Lua script would stall every other client

# ARGV: prefix, ticket, prefer_first ("1"/"0"), candidate agents...
# Idempotent per ticket: a ticket already holding a slot gets the same agent back, so a
# redelivered event never takes a second slot; its claim is bumped either way. A slot held by
# someone who may no longer take the ticket (it went to supervisors) gives nothing: the ticket
# waits until that slot, released in Postgres, is freed after the commit or by reconciliation.
_ASSIGN = """
local p, ticket = ARGV[1], ARGV[2]
local existing = redis.call('HGET', p .. 'ticket', ticket)
if existing then
  for i = 4, #ARGV do
    if ARGV[i] == existing then
      redis.call('HINCRBY', p .. 'claim', ticket, 1)
      return existing
    end
  end
  return false
end
local best, best_load = nil, nil
for i = 4, #ARGV do
  local agent = ARGV[i]
  if redis.call('SISMEMBER', p .. 'online', agent) == 1 then
    local cap = tonumber(redis.call('HGET', p .. 'cap', agent) or '0')
    local load = redis.call('SCARD', p .. 'load:' .. agent)
    if load < cap then
      if ARGV[3] == '1' and i == 4 then best = agent; break end
      if best == nil or load < best_load then best, best_load = agent, load end
    end
  end
end
if best then
  redis.call('SADD', p .. 'load:' .. best, ticket)
  redis.call('HSET', p .. 'ticket', ticket, best)
  redis.call('HINCRBY', p .. 'claim', ticket, 1)
end
return best
"""

# ARGV: prefix, ticket, claim. Frees the slot only if no assignment re-used it since the
# release read `claim` (a reopening in the same batch keeps the slot it inherits).
_RELEASE = """
local p, ticket, seen = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', p .. 'claim', ticket) ~= seen then return false end
local agent = redis.call('HGET', p .. 'ticket', ticket)
if agent then redis.call('SREM', p .. 'load:' .. agent, ticket) end
redis.call('HDEL', p .. 'ticket', ticket)
redis.call('HDEL', p .. 'claim', ticket)
return agent
"""

# ARGV: prefix, mode, rebuild id, number of pairs to free, then (ticket, agent) pairs to free,
# then pairs to restore. 'check' (a reconciliation) refuses to touch a Redis that lost `ready`
# (flushed since the snapshot: the next sync rebuilds). A rebuild goes 'begin', 'more'...,
# 'finish'; each step after the first refuses unless `rebuilding` still holds its id, so a
# flush in the middle can never leave `ready` next to half a load.
# Returns {freed, restored}: the pairs that actually changed; {-1, -1} when refused.
_CORRECT = """
local p, mode, id = ARGV[1], ARGV[2], ARGV[3]
if mode == 'check' then
  if redis.call('EXISTS', p .. 'ready') == 0 then return {-1, -1} end
elseif mode == 'begin' then
  redis.call('SET', p .. 'rebuilding', id)
elseif redis.call('GET', p .. 'rebuilding') ~= id then
  return {-1, -1}
end
local n_free = tonumber(ARGV[4])
local freed, restored = 0, 0
local i = 5
for _ = 1, n_free do
  local t, a = ARGV[i], ARGV[i + 1]
  i = i + 2
  local changed = redis.call('SREM', p .. 'load:' .. a, t)
  if redis.call('HGET', p .. 'ticket', t) == a then
    redis.call('HDEL', p .. 'ticket', t)
    redis.call('HDEL', p .. 'claim', t)
    changed = 1
  end
  freed = freed + changed
end
while i <= #ARGV do
  local t, a = ARGV[i], ARGV[i + 1]
  i = i + 2
  local changed = redis.call('SADD', p .. 'load:' .. a, t)
  local current = redis.call('HGET', p .. 'ticket', t)
  if current ~= a then
    if current then redis.call('SREM', p .. 'load:' .. current, t) end
    redis.call('HSET', p .. 'ticket', t, a)
    changed = 1
  end
  redis.call('HINCRBY', p .. 'claim', t, 1)
  restored = restored + changed
end
if mode == 'finish' then
  redis.call('SET', p .. 'ready', '1')
  redis.call('DEL', p .. 'rebuilding')
end
return {freed, restored}
"""

# Presence and capacity only ever land next to a complete load: after a flush, no agent looks
# online (so nothing is assigned) until the load was restored and `ready` set.
_SYNC_AGENTS = """
local p = ARGV[1]
if redis.call('EXISTS', p .. 'ready') == 0 then return 0 end
redis.call('DEL', p .. 'cap', p .. 'online')
for i = 2, #ARGV, 3 do
  redis.call('HSET', p .. 'cap', ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] == '1' then redis.call('SADD', p .. 'online', ARGV[i]) end
end
return 1
"""

_PRESENCE = """
local p, agent = ARGV[1], ARGV[2]
if redis.call('EXISTS', p .. 'ready') == 0 then return 0 end
if ARGV[3] == '1' then redis.call('SADD', p .. 'online', agent)
else redis.call('SREM', p .. 'online', agent) end
return 1
"""


@dataclass(frozen=True, slots=True)
class Request:
    ticket_id: UUID
    candidates: tuple[str, ...]
    prefer_first: bool = False


@dataclass(frozen=True, slots=True)
class AgentState:
    agent_id: str
    capacity: int
    online: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """A slot a release saw before its commit: freed after the commit only if still this one."""

    ticket_id: UUID
    claim: bytes | str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Redis's view of the load at one instant (one MULTI)."""

    ready: bool
    counted: frozenset[tuple[str, str]]  # (ticket, agent) from the load sets
    indexed: dict[str, str]  # ticket -> agent from the `ticket` hash
    claims: dict[str, int]


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class LiveLoad:
    """The Redis side of routing; one pipeline per batch, never a round trip per ticket."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._assign = redis.register_script(_ASSIGN)
        self._release = redis.register_script(_RELEASE)
        self._correct = redis.register_script(_CORRECT)
        self._sync_agents = redis.register_script(_SYNC_AGENTS)
        self._presence = redis.register_script(_PRESENCE)

    async def assign(self, requests: Sequence[Request]) -> list[str | None]:
        if not requests:
            return []
        # One MULTI: a slot freed meanwhile lands before or after the whole batch, never in
        # the middle, where a younger ticket late in the batch would take it from an older one.
        async with self._redis.pipeline(transaction=True) as pipe:
            for r in requests:
                args = [PREFIX, str(r.ticket_id), "1" if r.prefer_first else "0", *r.candidates]
                await self._assign(keys=[], args=args, client=pipe)
            results = await pipe.execute()
        return [_text(x) for x in results]

    async def claims(self, ticket_ids: Sequence[UUID]) -> list[Claim]:
        """The current claim of each ticket that holds a slot (read before a release commits)."""
        if not ticket_ids:
            return []
        seen = await self._redis.hmget(PREFIX + "claim", [str(t) for t in ticket_ids])
        return [Claim(t, c) for t, c in zip(ticket_ids, seen, strict=True) if c is not None]

    async def release(self, claims: Sequence[Claim]) -> list[str | None]:
        """Free each slot still held by the claim its release saw; returns the agents freed."""
        if not claims:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for c in claims:
                await self._release(keys=[], args=[PREFIX, str(c.ticket_id), c.claim], client=pipe)
            results = await pipe.execute()
        return [_text(x) for x in results]

    async def snapshot(self, agent_ids: Sequence[str]) -> Snapshot:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.exists(PREFIX + "ready")
            pipe.hgetall(PREFIX + "ticket")
            pipe.hgetall(PREFIX + "claim")
            for a in agent_ids:
                pipe.smembers(f"{PREFIX}load:{a}")
            ready, indexed, claims, *members = await pipe.execute()
        return Snapshot(
            ready=bool(ready),
            counted=frozenset(
                (_text(t) or "", a) for a, ts in zip(agent_ids, members, strict=True) for t in ts
            ),
            indexed={_text(t) or "": _text(a) or "" for t, a in indexed.items()},
            claims={_text(t) or "": int(c) for t, c in claims.items()},
        )

    async def correct(
        self,
        *,
        free: Sequence[tuple[str, str]],
        restore: Sequence[tuple[str, str]],
        rebuild: bool,
    ) -> tuple[int, int] | None:
        """Free and restore (ticket, agent) pairs; a rebuild sets `ready` last. Returns the
        pairs freed and restored, or None when Redis was flushed since the snapshot."""
        work = [(True, p) for p in free] + [(False, p) for p in restore]
        chunks = [work[i : i + CHUNK] for i in range(0, len(work), CHUNK)]
        if rebuild:
            steps = ["begin"] + ["more"] * (len(chunks) - 1) + ["finish"]
            chunks = (chunks or [[]]) + [[]]  # `ready` only in a step of its own, at the end
        else:
            steps = ["check"] * len(chunks)
        rebuild_id = uuid4().hex
        freed = restored = 0
        for mode, chunk in zip(steps, chunks, strict=True):
            frees = [x for f, p in chunk if f for x in p]
            restores = [x for f, p in chunk if not f for x in p]
            args: list[str | int] = [PREFIX, mode, rebuild_id, len(frees) // 2, *frees, *restores]
            f, r = await self._correct(keys=[], args=args)
            if f < 0:
                return None
            freed, restored = freed + f, restored + r
        return freed, restored

    async def sync_agents(self, agents: Sequence[AgentState]) -> None:
        """Make capacity and presence in Redis what Postgres says (once the load is rebuilt)."""
        args: list[str | int] = [PREFIX]
        for a in agents:
            args += [a.agent_id, a.capacity, "1" if a.online else "0"]
        await self._sync_agents(keys=[], args=args)

    async def set_online(self, agent_id: str, online: bool) -> None:
        await self._presence(keys=[], args=[PREFIX, agent_id, "1" if online else "0"])

    async def needs_rebuild(self) -> bool:
        return not await self._redis.exists(PREFIX + "ready")

    async def loads(self, agent_ids: Sequence[str]) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for a in agent_ids:
                pipe.scard(f"{PREFIX}load:{a}")
            counts = await pipe.execute()
        return dict(zip(agent_ids, counts, strict=True))
