"""A background loop ends when it is cancelled, even where a library's `asyncio.wait_for`
swallowed the cancellation (Python 3.11)."""

import asyncio
import sys

import pytest

from shared.cancel import raise_if_cancelled
from shared.service import _stop_tasks, every


async def _loop(inners: asyncio.Queue[asyncio.Future[None]], *, check: bool) -> None:
    """Forever: a library call (`wait_for` on a future the test completes), then the check."""
    while True:
        inner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await inners.put(inner)
        await asyncio.wait_for(inner, 10)
        if check:
            raise_if_cancelled()


async def _cancel_as_the_call_finishes(check: bool) -> tuple[asyncio.Task[None], asyncio.Queue]:
    inners: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()
    task = asyncio.create_task(_loop(inners, check=check))
    first = await inners.get()
    first.set_result(None)  # the library's call finishes ...
    task.cancel()  # ... in the same turn of the loop as the stop
    return task, inners


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for swallows only before 3.12")
async def test_without_the_check_the_swallowed_cancellation_leaves_the_loop_running() -> None:
    task, inners = await _cancel_as_the_call_finishes(check=False)
    async with asyncio.timeout(5):
        second = await inners.get()  # it came round again: the stop was lost
    assert not task.done()
    task.cancel()
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_with_the_check_the_loop_ends_at_the_end_of_its_round() -> None:
    task, inners = await _cancel_as_the_call_finishes(check=True)
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert inners.empty()


async def test_a_periodic_step_whose_library_swallowed_the_stop_ends_its_every_loop() -> None:
    inners: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

    async def step() -> bool:
        inner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await inners.put(inner)
        await asyncio.wait_for(inner, 10)
        return False

    task = asyncio.create_task(every(0.01, step, what="test"))
    first = await inners.get()
    first.set_result(None)
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert inners.empty()


async def test_a_stopping_service_cancels_again_a_task_that_swallowed_the_first_stop() -> None:
    rounds = 0

    async def stubborn() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if rounds > 1:
                    raise  # the second stop is heard

    async def obedient() -> None:
        await asyncio.sleep(10)

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(obedient())]
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await _stop_tasks(tasks)
    assert all(t.cancelled() for t in tasks) and rounds == 2
