"""Test helpers on top of the local harness."""

import asyncio
import os
import time
import uuid

from deploy.local.harness import SERVICES, RunningStack, ServiceProcess, running_stack

__all__ = [
    "SERVICES",
    "RunningStack",
    "ServiceProcess",
    "eventually",
    "fresh_groups",
    "port",
    "running_stack",
]


def fresh_groups() -> dict[str, str]:
    """Settings that give the services started with them consumer groups of their own.

    The local broker (Tansu 0.6) can leave a group stuck in rebalance after its members came
    and went a few times; each test's processes meeting in groups of their own keeps one test's
    leftovers from holding the next test's consumers."""
    return {"CARELOOP_KAFKA_GROUP_PREFIX": f"t{uuid.uuid4().hex[:8]}-"}


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
