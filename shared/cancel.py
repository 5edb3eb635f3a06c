"""Cancellation that a library swallowed.

On Python 3.11, `asyncio.wait_for` returns its inner result instead of raising when the
task is cancelled just as that inner awaitable finishes (python/cpython#86296, fixed in 3.12),
and libraries (aioimaplib, aiokafka, aiosmtplib) call it. A background task that loops
forever over such calls would then never end, and a service or test stopping it would wait
forever. careloop's own code uses `asyncio.timeout`, which does not swallow; loops that call
the libraries check `raise_if_cancelled` each round.
"""

import asyncio


def raise_if_cancelled() -> None:
    """Raise `CancelledError` when the current task was asked to stop and has not yet."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
