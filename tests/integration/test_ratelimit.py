"""shared.ratelimit against a real Redis: fixed windows, atomic, failing open."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from shared.ratelimit import Limit, RateLimiter
from tests.support import RunningStack


@pytest.fixture
async def redis(stack: RunningStack) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def limiter(redis: Redis) -> RateLimiter:
    # A generous timeout: these tests are about counting; a slow machine must not fail open.
    return RateLimiter(lambda: redis, scope=f"test-{uuid.uuid4().hex[:8]}", timeout_seconds=10)


def _limit(name: str = "email", *, subject: str = "alice@example.com", limit: int = 3) -> Limit:
    return Limit(name, subject, limit, 60)


async def test_requests_up_to_the_limit_pass_and_the_next_is_refused(limiter: RateLimiter) -> None:
    verdicts = [await limiter.hit([_limit()]) for _ in range(4)]

    assert [v.allowed for v in verdicts] == [True, True, True, False]


async def test_a_refusal_names_the_limit_and_when_it_resets(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.hit([_limit("address", subject="203.0.113.9"), _limit()])
    refused = await limiter.hit([_limit("address", subject="203.0.113.9", limit=10), _limit()])

    assert refused.limit is not None and refused.limit.name == "email"
    assert 58 <= refused.retry_after_seconds <= 60


async def test_a_refused_request_counts_against_no_other_limit(limiter: RateLimiter) -> None:
    tight = _limit("address", subject="203.0.113.9", limit=1)
    roomy = _limit("email", limit=3)
    await limiter.hit([tight, roomy])
    for _ in range(5):
        assert not (await limiter.hit([tight, roomy])).allowed

    # the e-mail's count is still 1 of 3: two more pass from another address
    other = _limit("address", subject="198.51.100.1", limit=10)
    assert [(await limiter.hit([other, roomy])).allowed for _ in range(3)] == [True, True, False]


async def test_each_subject_has_its_own_count(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.hit([_limit(subject="alice@example.com")])

    assert (await limiter.hit([_limit(subject="bob@example.com")])).allowed


async def test_a_window_that_ended_lets_requests_through_again(limiter: RateLimiter) -> None:
    short = Limit("email", "alice@example.com", 1, 1)
    await limiter.hit([short])
    assert not (await limiter.hit([short])).allowed

    await asyncio.sleep(1.1)
    assert (await limiter.hit([short])).allowed


async def test_a_limit_of_zero_is_no_limit(limiter: RateLimiter) -> None:
    assert all([(await limiter.hit([_limit(limit=0)])).allowed for _ in range(10)])


async def test_concurrent_requests_never_pass_more_than_the_limit(limiter: RateLimiter) -> None:
    verdicts = await asyncio.gather(*(limiter.hit([_limit(limit=7)]) for _ in range(50)))

    assert sum(v.allowed for v in verdicts) == 7


async def test_no_personal_data_is_written_to_redis(redis: Redis) -> None:
    scope = f"test-{uuid.uuid4().hex[:8]}"
    await RateLimiter(lambda: redis, scope=scope).hit([_limit(subject="alice@example.com")])

    [key] = [k async for k in redis.scan_iter(f"careloop:{scope}:rate:*")]
    assert b"alice" not in key


async def test_with_redis_unreachable_the_limiter_lets_requests_through() -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0")
    limiter = RateLimiter(lambda: down, scope="test-down")
    try:
        verdicts = [await limiter.hit([_limit(limit=1)]) for _ in range(3)]
    finally:
        await down.aclose()

    assert all(v.allowed for v in verdicts)


async def test_a_refusal_is_counted_in_a_metric_by_scope_and_limit(redis: Redis) -> None:
    scope = f"test-{uuid.uuid4().hex[:8]}"
    limiter = RateLimiter(lambda: redis, scope=scope, timeout_seconds=10)
    for _ in range(3):
        await limiter.hit([_limit(limit=1)])

    sample = {"scope": scope, "limit": "email"}
    assert REGISTRY.get_sample_value("careloop_rate_limited_total", sample) == 2
