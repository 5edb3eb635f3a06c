"""Live agent load in Redis: atomic capacity-checked assignment, rebuilt from Postgres at will.

All keys share one hash tag so the scripts stay valid on a Redis Cluster slot.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from redis.asyncio import Redis

PREFIX = "careloop:{routing}:"

# ARGV: prefix, ticket, prefer_first ("1"/"0"), candidate agents...
# Idempotent per ticket: a ticket already holding a slot gets the same agent back, so a
# redelivered event never takes a second slot.
_ASSIGN = """
local p, ticket = ARGV[1], ARGV[2]
local existing = redis.call('HGET', p .. 'ticket', ticket)
if existing then return existing end
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
end
return best
"""

_RELEASE = """
local p, ticket = ARGV[1], ARGV[2]
local agent = redis.call('HGET', p .. 'ticket', ticket)
if agent then
  redis.call('SREM', p .. 'load:' .. agent, ticket)
  redis.call('HDEL', p .. 'ticket', ticket)
end
return agent
"""

# Presence and capacity only ever land next to a complete load: after a flush, no agent looks
# online (so nothing is assigned) until `rebuild` restored every open ticket and set `ready`.
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


class LiveLoad:
    """The Redis side of routing; one pipeline per batch, never a round trip per ticket."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._assign = redis.register_script(_ASSIGN)
        self._release = redis.register_script(_RELEASE)
        self._sync_agents = redis.register_script(_SYNC_AGENTS)
        self._presence = redis.register_script(_PRESENCE)

    async def assign(self, requests: Sequence[Request]) -> list[str | None]:
        if not requests:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for r in requests:
                args = [PREFIX, str(r.ticket_id), "1" if r.prefer_first else "0", *r.candidates]
                await self._assign(keys=[], args=args, client=pipe)
            results = await pipe.execute()
        return [x.decode() if isinstance(x, bytes) else x for x in results]

    async def release(self, ticket_ids: Sequence[UUID]) -> list[str | None]:
        if not ticket_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for t in ticket_ids:
                await self._release(keys=[], args=[PREFIX, str(t)], client=pipe)
            results = await pipe.execute()
        return [x.decode() if isinstance(x, bytes) else x for x in results]

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

    async def rebuild(self, active: Sequence[tuple[UUID, str]]) -> None:
        """Restore every agent's open tickets after Redis lost them (flush, failover)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for ticket_id, agent_id in active:
                pipe.sadd(f"{PREFIX}load:{agent_id}", str(ticket_id))
                pipe.hset(PREFIX + "ticket", str(ticket_id), agent_id)
            pipe.set(PREFIX + "ready", "1")
            await pipe.execute()

    async def loads(self, agent_ids: Sequence[str]) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for a in agent_ids:
                pipe.scard(f"{PREFIX}load:{a}")
            counts = await pipe.execute()
        return dict(zip(agent_ids, counts, strict=True))
