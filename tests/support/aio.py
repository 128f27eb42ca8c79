"""Running async test bodies without an asyncio pytest plugin, always under a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
LoopName = Literal["asyncio", "uvloop"]
LOOPS: tuple[LoopName, ...] = ("asyncio", "uvloop")


def run(main: Coroutine[Any, Any, T], *, timeout: float = 15.0, loop: LoopName = "asyncio") -> T:
    """Run ``main`` on a fresh event loop of the given kind; fail if it takes over ``timeout``."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(main, timeout))


async def eventually(
    predicate: Callable[[], bool], *, timeout: float = 5.0, interval: float = 0.005
) -> None:
    """Poll ``predicate`` until it holds; AssertionError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def settled(
    value: Callable[[], object], *, quiet_s: float = 0.15, timeout: float = 5.0
) -> None:
    """Wait until ``value()`` stops changing for ``quiet_s`` (e.g. a blocked writer's count)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = value()
    still_since = loop.time()
    while loop.time() - still_since < quiet_s:
        if loop.time() > deadline:
            raise AssertionError(f"value kept changing for {timeout} s")
        await asyncio.sleep(0.01)
        now = value()
        if now != last:
            last = now
            still_since = loop.time()


async def wait(awaitable: Awaitable[T], timeout: float = 5.0) -> T:
    return await asyncio.wait_for(awaitable, timeout)
