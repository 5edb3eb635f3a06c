"""Test helpers on top of the local harness."""

import asyncio
import os
import time

from deploy.local.harness import SERVICES, RunningStack, ServiceProcess, running_stack

__all__ = ["SERVICES", "RunningStack", "ServiceProcess", "eventually", "port", "running_stack"]


def port(number: int) -> int:
    """A test port, shifted by CARELOOP_TEST_PORT_SHIFT so that two test runs can share a
    machine without their stacks colliding."""
    return number + int(os.environ.get("CARELOOP_TEST_PORT_SHIFT", "0"))


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
