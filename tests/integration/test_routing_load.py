"""routing's live load against a real Redis: a batch of assignments keeps its order when it
meets a pool Redis does not know (first use since a start, a flush or a roster change)."""

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from services.routing.load import PREFIX, AgentState, LiveLoad, Request
from services.routing.skills import pool
from tests.support import RunningStack


@pytest.fixture
async def load(stack: RunningStack) -> AsyncIterator[LiveLoad]:
    # A database of its own: the routers of other tests keep theirs in database 0.
    url = urlsplit(stack.redis_url)._replace(path="/9").geturl()
    redis = Redis.from_url(url)
    await redis.flushdb()
    await redis.set(PREFIX + "ready", "1")
    yield LiveLoad(redis)
    await redis.flushdb()
    await redis.aclose()


async def test_an_older_ticket_whose_pool_redis_did_not_know_still_goes_first(
    load: LiveLoad,
) -> None:
    await load.sync_agents("roster-1", [AgentState("ana", 1000, True)])
    alone, with_ben = pool(["ana"]), pool(["ana", "ben"])
    younger = Request(uuid.uuid4(), ((with_ben,),))
    assert await load.assign([younger]) == ["ana"]  # `with_ben` is now defined, `alone` is not
    released = await load.claims([younger.ticket_id])
    assert await load.release(released) == ["ana"]

    # One free slot; the older ticket's pool is unknown, the younger one's known.
    older, younger = Request(uuid.uuid4(), ((alone,),)), Request(uuid.uuid4(), ((with_ben,),))
    assert await load.assign([older, younger]) == ["ana", None]


async def test_a_batch_meeting_several_unknown_pools_answers_every_ticket_in_order(
    load: LiveLoad,
) -> None:
    await load.sync_agents("roster-1", [AgentState(a, 2000, True) for a in ("ana", "ben")])
    pools = [pool(["ana"]), pool(["ben"]), pool(["ana", "ben"])]
    requests = [Request(uuid.uuid4(), ((pools[i % 3],),)) for i in range(6)]

    answers = await load.assign(requests)

    assert None not in answers[:4] and answers[4:] == [None, None]
    assert sorted(answers[:4]) == ["ana", "ana", "ben", "ben"]  # two slots each
    assert await load.assign(requests[:4]) == answers[:4]  # idempotent per ticket
