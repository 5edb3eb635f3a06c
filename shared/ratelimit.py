"""Rate limits in Redis: fixed windows, checked and counted atomically in one Lua script.

Any public HTTP surface can use it: name the limits a request counts against (per client
address, per e-mail, per source…), ask `RateLimiter.hit`, and answer `too_many` when it says no.
A refused request counts against nothing, so an attacker over one limit cannot exhaust a
victim's other limits with requests that were refused anyway.

Redis down or slow means no limiting, never no service: the limiter logs a warning and lets
the request through (availability over limiting); correctness never depends on Redis.
"""

import asyncio
import hashlib
import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, BeforeValidator, Field, IPvAnyNetwork, StrictInt
from pydantic_settings import NoDecode
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.errors import TRANSIENT_DRIVER_ERRORS

log = structlog.get_logger(__name__)
_UNAVAILABLE: tuple[type[Exception], ...] = (*TRANSIENT_DRIVER_ERRORS, RedisError)
REFUSED = Counter(
    "careloop_rate_limited_total", "Requests refused by a rate limit", ["scope", "limit"]
)
UNLIMITED = Counter(
    "careloop_rate_limits_unavailable_total",
    "Requests let through unlimited because Redis could not be asked",
    ["scope"],
)

# KEYS: one counter per limit; ARGV: limit and window (ms) per key, in the same order.
# Refuses (counting nothing) when any counter is at its limit, else counts the request in all.
# Returns {0, 0} when allowed, {index of the first limit hit (1-based), ms until it resets}.
_HIT = """
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= limit then
    local wait = redis.call('PTTL', key)
    if wait < 0 then
      wait = tonumber(ARGV[2 * i])
      redis.call('PEXPIRE', key, wait)
    end
    return {i, wait}
  end
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then
    redis.call('PEXPIRE', key, ARGV[2 * i])
  end
end
return {0, 0}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `limit` requests per `window_seconds` for one `subject` (0 means no limit)."""

    name: str
    subject: str
    limit: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may go on; when not, which limit it hit and when to come back."""

    allowed: bool
    limit: Limit | None = None
    retry_after_seconds: int = 0


ALLOWED = Verdict(allowed=True)


class RateLimited(BaseModel):
    """A 429: which limit the request hit and when a retry can succeed."""

    detail: str
    limit: str = Field(description="Which limit was hit, e.g. `address`, `email` or `source`.")
    retry_after_seconds: StrictInt = Field(description="Also in the Retry-After header.")


class RateLimiter:
    """Fixed-window counters of one `scope` (a service, a page) under `careloop:<scope>:rate`;
    subjects are hashed, so no personal data is written to Redis."""

    def __init__(
        self, redis: Callable[[], Redis], *, scope: str, timeout_seconds: float = 0.5
    ) -> None:
        self._redis = redis
        self._scope = scope
        self._prefix = f"careloop:{scope}:rate"
        self._timeout = timeout_seconds
        self._script: Any = None

    def key(self, limit: Limit) -> str:
        digest = hashlib.sha256(limit.subject.encode("utf-8", "backslashreplace")).hexdigest()
        return f"{self._prefix}:{limit.name}:{limit.window_seconds}:{digest[:32]}"

    async def hit(self, limits: Sequence[Limit]) -> Verdict:
        """Count one request against every limit, or refuse it if any is used up."""
        active = [lim for lim in limits if lim.limit > 0]
        if not active:
            return ALLOWED
        redis = self._redis()
        if self._script is None:
            self._script = redis.register_script(_HIT)
        args: list[int] = []
        for lim in active:
            args += [lim.limit, lim.window_seconds * 1000]
        try:
            async with asyncio.timeout(self._timeout):
                keys = [self.key(lim) for lim in active]
                index, wait_ms = await self._script(keys=keys, args=args, client=redis)
        except _UNAVAILABLE as exc:
            log.warning("rate limits unavailable; letting the request through", error=repr(exc))
            UNLIMITED.labels(self._scope).inc()
            return ALLOWED
        if index == 0:
            return ALLOWED
        hit = active[int(index) - 1]
        REFUSED.labels(self._scope, hit.name).inc()
        return Verdict(
            allowed=False,
            limit=hit,
            retry_after_seconds=max(1, math.ceil(int(wait_ms) / 1000)),
        )


def too_many(verdict: Verdict, *, what: str = "requests") -> JSONResponse:
    """The 429 for a refused verdict, with Retry-After and a body saying which limit."""
    assert verdict.limit is not None
    lim = verdict.limit
    body = RateLimited(
        detail=f"rate limit '{lim.name}' reached: at most {lim.limit} {what} in "
        f"{lim.window_seconds} s; retry after {verdict.retry_after_seconds} s",
        limit=lim.name,
        retry_after_seconds=verdict.retry_after_seconds,
    )
    return JSONResponse(
        body.model_dump(),
        status_code=429,
        headers={"Retry-After": str(verdict.retry_after_seconds)},
    )


def _split(value: Any) -> Any:
    """`10.0.0.0/8, 192.168.1.7` from the environment; lists pass as they are."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


# A setting listing the proxies whose X-Forwarded-For is believed: addresses or networks,
# comma-separated in the environment.
TrustedProxies = Annotated[tuple[IPvAnyNetwork, ...], NoDecode, BeforeValidator(_split)]


def client_address(request: Request, *, trusted_proxies: Sequence[Any]) -> str:
    """The address a request came from, for limiting.

    X-Forwarded-For is believed only when the peer is a trusted proxy, and then only up to the
    first hop that is not one (anything left of it could be written by the client). An IPv6
    client is limited by its /64, since one host usually holds the whole /64.
    """
    peer = request.client.host if request.client else ""
    hops = [peer]
    if trusted_proxies and _trusted(peer, trusted_proxies):
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        hops += [h.strip() for h in reversed(forwarded.split(",")) if h.strip()]
    chosen = peer
    for hop in hops:
        if _parse(hop) is None:
            break
        chosen = hop
        if not _trusted(hop, trusted_proxies):
            break
    return _subject(chosen)


def _parse(
    address: str,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _trusted(address: str, trusted_proxies: Sequence[Any]) -> bool:
    ip = _parse(address)
    return ip is not None and any(ip in net for net in trusted_proxies)


def _subject(address: str) -> str:
    ip = _parse(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address
