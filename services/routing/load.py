"""Live agent load in Redis: atomic capacity-checked assignment, corrected from Postgres at will.

Why the numbers stay exact under every fault is argued in `services/routing/capacity.py`.
All keys share one hash tag so the scripts stay valid on a Redis Cluster slot:

- `load:<agent>`: set of the tickets holding one of the agent's slots (its size is the load);
- `ticket`: hash ticket -> agent, the same facts indexed by ticket;
- `weight`: hash ticket -> the capacity it takes in thousandths (its channel's weight);
  `used`: hash agent -> the sum of their tickets' weights, kept with every change of `load:`;
- `claim`: hash ticket -> a counter bumped by every assignment that lands on (or re-uses) the
  ticket's slot, so a release decided before a commit frees only the claim it saw;
- `cap`, `online`: capacity (thousandths) and availability (online, seen lately, on shift),
  pushed from Postgres;
- `pool:<id>`: sorted set of a pool's available agents with free capacity, scored by it;
  `poolm:<id>`: the pool's members; `pools:<agent>`: the pools an agent is in; `pools`: every
  pool; `roster`: the roster version the pools were defined for (see `skills.py`);
- `ready`: set once the load was restored from Postgres; without it nothing is assigned;
- `rebuilding`: the id of the rebuild under way, so that its steps know no flush came between;
- `halt:<batch>`: set (for a minute) when a batch of assignments met a pool Redis did not know,
  so that the batch's later tickets wait for the pool's definition instead of going ahead.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4

from redis.asyncio import Redis

from services.routing.skills import Pool

PREFIX = "careloop:{routing}:"
CHUNK = 2000  # pairs per correction call: a long Lua script would stall every other client
DEFAULT_WEIGHT = 1000  # a ticket's share of capacity when none was recorded (thousandths)

# Shared by the scripts below: an agent's free capacity, and putting the agent where it
# belongs in each pool it is a member of (available agents with free capacity, scored by it).
_COMMON = """
local p = ARGV[1]
local function free(a)
  return tonumber(redis.call('HGET', p .. 'cap', a) or '0')
    - tonumber(redis.call('HGET', p .. 'used', a) or '0')
end
local function refresh(a)
  local f = free(a)
  local on = redis.call('SISMEMBER', p .. 'online', a) == 1
  for _, id in ipairs(redis.call('SMEMBERS', p .. 'pools:' .. a)) do
    if on and f > 0 then redis.call('ZADD', p .. 'pool:' .. id, f, a)
    else redis.call('ZREM', p .. 'pool:' .. id, a) end
  end
end
local function hold(t, a, w)
  if redis.call('SADD', p .. 'load:' .. a, t) == 1 then
    redis.call('HINCRBY', p .. 'used', a, w)
  end
end
local function recount(a)
  local used = 0
  for _, t in ipairs(redis.call('SMEMBERS', p .. 'load:' .. a)) do
    used = used + tonumber(redis.call('HGET', p .. 'weight', t) or 'DEFAULT_WEIGHT')
  end
  redis.call('HSET', p .. 'used', a, used)
end
local function unhold(t, a)
  if redis.call('SREM', p .. 'load:' .. a, t) == 1 then
    local w = tonumber(redis.call('HGET', p .. 'weight', t) or 'DEFAULT_WEIGHT')
    redis.call('HINCRBY', p .. 'used', a, -w)
    return 1
  end
  return 0
end
""".replace("DEFAULT_WEIGHT", str(DEFAULT_WEIGHT))

# ARGV: prefix, ticket, weight, preferred agent ('' for none), batch id, then tiers of pools,
# each as its number of pools and their ids. A pool Redis does not know (never defined, or
# dropped when the roster changed) answers '?<pool id>' and halts the batch: its later tickets
# answer '!' untouched, and the caller defines the pools and asks again from there. Idempotent
# per ticket: a ticket already holding a slot gets the same agent back, so a redelivered event
# never takes a second slot; its claim is bumped either way. A slot held by someone who may no
# longer take the ticket (it went to supervisors) gives nothing: the ticket waits until that
# slot, released in Postgres, is freed after the commit or by reconciliation. Otherwise the
# preferred agent if they have room, else, tier by tier, the agent with the most free capacity
# at the top of the tier's pools: one sorted-set read per pool, however many agents there are.
_ASSIGN = (
    _COMMON
    + """
local ticket, w, preferred = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local halt = p .. 'halt:' .. ARGV[5]
if redis.call('EXISTS', halt) == 1 then return '!' end
local tiers, i = {}, 6
while i <= #ARGV do
  local n, tier = tonumber(ARGV[i]), {}
  for j = 1, n do
    local id = ARGV[i + j]
    if redis.call('EXISTS', p .. 'poolm:' .. id) == 0 then
      redis.call('SET', halt, '1', 'EX', 60)
      return '?' .. id
    end
    tier[j] = id
  end
  tiers[#tiers + 1] = tier
  i = i + n + 1
end
local existing = redis.call('HGET', p .. 'ticket', ticket)
if existing then
  for _, id in ipairs(tiers[#tiers] or {}) do
    if redis.call('SISMEMBER', p .. 'poolm:' .. id, existing) == 1 then
      redis.call('HINCRBY', p .. 'claim', ticket, 1)
      return existing
    end
  end
  return false
end
local best = nil
if preferred ~= '' and redis.call('SISMEMBER', p .. 'online', preferred) == 1
    and free(preferred) >= w then
  best = preferred
end
for _, tier in ipairs(tiers) do
  if best then break end
  local most = w - 1
  for _, id in ipairs(tier) do
    local top = redis.call('ZREVRANGE', p .. 'pool:' .. id, 0, 0, 'WITHSCORES')
    if top[1] and tonumber(top[2]) > most then best, most = top[1], tonumber(top[2]) end
  end
end
if best then
  redis.call('HSET', p .. 'weight', ticket, w)
  hold(ticket, best, w)
  redis.call('HSET', p .. 'ticket', ticket, best)
  redis.call('HINCRBY', p .. 'claim', ticket, 1)
  refresh(best)
end
return best
"""
)

# ARGV: prefix, pool id, members... Defines a pool once; its sorted set starts from the
# members' current presence and free capacity, and `refresh` keeps it so from then on.
_DEFINE = (
    _COMMON
    + """
local id = ARGV[2]
if redis.call('EXISTS', p .. 'poolm:' .. id) == 1 then return 0 end
for i = 3, #ARGV do
  redis.call('SADD', p .. 'poolm:' .. id, ARGV[i])
  redis.call('SADD', p .. 'pools:' .. ARGV[i], id)
  refresh(ARGV[i])
end
redis.call('SADD', p .. 'pools', id)
return 1
"""
)

# ARGV: prefix, ticket, claim. Frees the slot only if no assignment re-used it since the
# release read `claim` (a reopening in the same batch keeps the slot it inherits).
_RELEASE = (
    _COMMON
    + """
local ticket, seen = ARGV[2], ARGV[3]
if redis.call('HGET', p .. 'claim', ticket) ~= seen then return false end
local agent = redis.call('HGET', p .. 'ticket', ticket)
if agent then
  unhold(ticket, agent)
  refresh(agent)
end
redis.call('HDEL', p .. 'ticket', ticket)
redis.call('HDEL', p .. 'claim', ticket)
redis.call('HDEL', p .. 'weight', ticket)
return agent
"""
)

# ARGV: prefix, mode, rebuild id, number of pairs to free, then (ticket, agent) pairs to free,
# then (ticket, agent, weight) triples to restore. 'check' (a reconciliation) refuses to touch
# a Redis that lost `ready` (flushed since the snapshot: the next sync rebuilds). A rebuild goes
# 'begin', 'more'..., 'finish'; each step after the first refuses unless `rebuilding` still
# holds its id, so a flush in the middle can never leave `ready` next to half a load.
# Returns {freed, restored}: the pairs that actually changed; {-1, -1} when refused.
_CORRECT = (
    _COMMON
    + """
local mode, id = ARGV[2], ARGV[3]
if mode == 'check' then
  if redis.call('EXISTS', p .. 'ready') == 0 then return {-1, -1} end
elseif mode == 'begin' then
  redis.call('SET', p .. 'rebuilding', id)
elseif redis.call('GET', p .. 'rebuilding') ~= id then
  return {-1, -1}
end
local n_free = tonumber(ARGV[4])
local freed, restored = 0, 0
local touched = {}
local i = 5
for _ = 1, n_free do
  local t, a = ARGV[i], ARGV[i + 1]
  i = i + 2
  local changed = unhold(t, a)
  if redis.call('HGET', p .. 'ticket', t) == a then
    redis.call('HDEL', p .. 'ticket', t)
    redis.call('HDEL', p .. 'claim', t)
    redis.call('HDEL', p .. 'weight', t)
    changed = 1
  end
  touched[a] = true
  freed = freed + changed
end
while i <= #ARGV do
  local t, a, w = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local current = redis.call('HGET', p .. 'ticket', t)
  local changed = 0
  if current and current ~= a then
    unhold(t, current)
    touched[current] = true
  end
  redis.call('HSET', p .. 'weight', t, w)
  if redis.call('SISMEMBER', p .. 'load:' .. a, t) == 0 then
    hold(t, a, w)
    changed = 1
  end
  if current ~= a then
    redis.call('HSET', p .. 'ticket', t, a)
    changed = 1
  end
  redis.call('HINCRBY', p .. 'claim', t, 1)
  touched[a] = true
  restored = restored + changed
end
-- Drift may have come from outside the scripts, so the sums are counted again, not adjusted.
for a, _ in pairs(touched) do recount(a); refresh(a) end
if mode == 'finish' then
  redis.call('SET', p .. 'ready', '1')
  redis.call('DEL', p .. 'rebuilding')
end
return {freed, restored}
"""
)

# ARGV: prefix, roster version, then (agent, capacity in thousandths, available) triples.
# Presence and capacity only ever land next to a complete load: after a flush, no agent looks
# online (so nothing is assigned) until the load was restored and `ready` set. A new roster
# drops every pool (their members may have changed); they are defined again as tickets ask.
_SYNC_AGENTS = (
    _COMMON
    + """
if redis.call('EXISTS', p .. 'ready') == 0 then return 0 end
if redis.call('GET', p .. 'roster') ~= ARGV[2] then
  for _, id in ipairs(redis.call('SMEMBERS', p .. 'pools')) do
    for _, a in ipairs(redis.call('SMEMBERS', p .. 'poolm:' .. id)) do
      redis.call('DEL', p .. 'pools:' .. a)
    end
    redis.call('DEL', p .. 'pool:' .. id, p .. 'poolm:' .. id)
  end
  redis.call('DEL', p .. 'pools')
  redis.call('SET', p .. 'roster', ARGV[2])
end
for i = 3, #ARGV, 3 do
  local a, cap, on = ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1'
  local was = redis.call('SISMEMBER', p .. 'online', a) == 1
  if redis.call('HGET', p .. 'cap', a) ~= cap or was ~= on then
    redis.call('HSET', p .. 'cap', a, cap)
    if on then redis.call('SADD', p .. 'online', a) else redis.call('SREM', p .. 'online', a) end
    refresh(a)
  end
end
return 1
"""
)

# ARGV: prefix, then (ticket, agent, weight) triples. A person handed each ticket to an agent:
# it takes a slot on that agent whatever their free capacity (they may go above it), before
# the transfer commits (rule 1 of capacity.py), and keeps its claim counter moving so that a
# release decided later frees this slot. The slot of the agent it left is freed only after
# the commit (`_LEAVE`). Idempotent: a redelivered transfer holds nothing twice.
_TAKE = (
    _COMMON
    + """
if redis.call('EXISTS', p .. 'ready') == 0 then return 0 end
for i = 2, #ARGV, 3 do
  local t, a, w = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  redis.call('HSET', p .. 'weight', t, w)
  hold(t, a, w)
  redis.call('HSET', p .. 'ticket', t, a)
  redis.call('HINCRBY', p .. 'claim', t, 1)
  refresh(a)
end
return 1
"""
)

# ARGV: prefix, then (ticket, agent) pairs: the agents transferred tickets left, after the
# transfer committed. A slot is freed only if the ticket is no longer indexed under that agent
# (a transfer back meanwhile keeps it); the agent's sum is counted again, since the ticket's
# weight may have changed with its new assignment.
_LEAVE = (
    _COMMON
    + """
for i = 2, #ARGV, 2 do
  local t, a = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', p .. 'ticket', t) ~= a and redis.call('SREM', p .. 'load:' .. a, t) == 1
  then
    recount(a)
    refresh(a)
  end
end
return 1
"""
)

_PRESENCE = (
    _COMMON
    + """
local agent = ARGV[2]
if redis.call('EXISTS', p .. 'ready') == 0 then return 0 end
if ARGV[3] == '1' then redis.call('SADD', p .. 'online', agent)
else redis.call('SREM', p .. 'online', agent) end
refresh(agent)
return 1
"""
)


@dataclass(frozen=True, slots=True)
class Request:
    """A ticket looking for a slot: the tiers of pools to try in order, and whom to prefer."""

    ticket_id: UUID
    tiers: tuple[tuple[Pool, ...], ...]
    weight: int = DEFAULT_WEIGHT  # thousandths of a capacity unit
    preferred: str | None = None


@dataclass(frozen=True, slots=True)
class AgentState:
    agent_id: str
    capacity: int  # thousandths of a capacity unit
    available: bool  # online, seen within the presence TTL, and on shift


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
        self._define = redis.register_script(_DEFINE)
        self._release = redis.register_script(_RELEASE)
        self._correct = redis.register_script(_CORRECT)
        self._sync_agents = redis.register_script(_SYNC_AGENTS)
        self._presence = redis.register_script(_PRESENCE)
        self._take = redis.register_script(_TAKE)
        self._leave = redis.register_script(_LEAVE)

    async def assign(self, requests: Sequence[Request]) -> list[str | None]:
        """Each request's agent (None: nobody can take it now), in order: one MULTI, so a slot
        freed meanwhile lands before or after the whole batch, never in the middle, where a
        younger ticket late in the batch would take it from an older one. A pool Redis did not
        know (first use since a start, a flush or a roster change) halts the batch at the first
        ticket that needs it; the batch's pools are defined, and the rest asked again, in order
        and in one MULTI."""
        results: list[str | None] = []
        rest = list(requests)
        while rest:
            batch = uuid4().hex
            async with self._redis.pipeline(transaction=True) as pipe:
                for r in rest:
                    await self._assign(keys=[], args=self._args(r, batch), client=pipe)
                answers = [_text(x) for x in await pipe.execute()]
            halted = next((i for i, a in enumerate(answers) if a and a[0] in "?!"), len(rest))
            results += answers[:halted]
            rest = rest[halted:]
            if rest:
                await self._define_pools(rest)
        return results

    @staticmethod
    def _args(r: Request, batch: str) -> list[str | int]:
        args: list[str | int] = [PREFIX, str(r.ticket_id), r.weight, r.preferred or "", batch]
        for tier in r.tiers:
            args += [len(tier), *(p.id for p in tier)]
        return args

    async def _define_pools(self, requests: Sequence[Request]) -> None:
        """Define every pool `requests` may look in (those Redis knows are left as they are)."""
        pools = {p.id: p for r in requests for tier in r.tiers for p in tier}
        async with self._redis.pipeline(transaction=False) as pipe:
            for pool in pools.values():
                await self._define(keys=[], args=[PREFIX, pool.id, *pool.members], client=pipe)
            await pipe.execute()

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

    async def take(self, moves: Sequence[tuple[UUID, str, int]]) -> None:
        """Hold each (ticket, agent, weight) on its agent, above capacity if need be (a
        transfer, before it commits)."""
        if moves:
            args: list[str | int] = [PREFIX]
            for ticket_id, agent_id, weight in moves:
                args += [str(ticket_id), agent_id, weight]
            await self._take(keys=[], args=args)

    async def leave(self, left: Sequence[tuple[UUID, str]]) -> None:
        """Free the slots (ticket, agent) that committed transfers left."""
        if left:
            args: list[str] = [PREFIX]
            for ticket_id, agent_id in left:
                args += [str(ticket_id), agent_id]
            await self._leave(keys=[], args=args)

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
        restore: Sequence[tuple[str, str, int]],
        rebuild: bool,
    ) -> tuple[int, int] | None:
        """Free (ticket, agent) pairs and restore (ticket, agent, weight) triples; a rebuild
        sets `ready` last. Returns the pairs freed and restored, or None when Redis was
        flushed since the snapshot."""
        work: list[tuple[bool, tuple[str | int, ...]]] = [(True, p) for p in free]
        work += [(False, p) for p in restore]
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
            args = [PREFIX, mode, rebuild_id, len(frees) // 2, *frees, *restores]
            f, r = await self._correct(keys=[], args=args)
            if f < 0:
                return None
            freed, restored = freed + f, restored + r
        return freed, restored

    async def sync_agents(self, roster: str, agents: Sequence[AgentState]) -> None:
        """Make capacity and availability in Redis what Postgres says (once the load is
        rebuilt); a new `roster` version drops the pools, defined again on demand."""
        args: list[str | int] = [PREFIX, roster]
        for a in agents:
            args += [a.agent_id, a.capacity, "1" if a.available else "0"]
        await self._sync_agents(keys=[], args=args)

    async def set_available(self, agent_id: str, available: bool) -> None:
        await self._presence(keys=[], args=[PREFIX, agent_id, "1" if available else "0"])

    async def needs_rebuild(self) -> bool:
        return not await self._redis.exists(PREFIX + "ready")

    async def loads(self, agent_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Per agent: the tickets held, and the capacity they take in thousandths."""
        if not agent_ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for a in agent_ids:
                pipe.scard(f"{PREFIX}load:{a}")
            pipe.hmget(PREFIX + "used", list(agent_ids))
            *counts, used = await pipe.execute()
        return {a: (n, int(u or 0)) for a, n, u in zip(agent_ids, counts, used, strict=True)}
