"""Test helpers on top of the local harness."""

import asyncio
import time

from deploy.local.harness import SERVICES, RunningStack, ServiceProcess, running_stack

__all__ = ["SERVICES", "RunningStack", "ServiceProcess", "eventually", "running_stack"]


async def eventually(check, *, timeout: float = 30, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll the async `check` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
