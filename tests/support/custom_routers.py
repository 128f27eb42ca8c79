"""Custom routers the routing tests name in their configs (router.custom)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

CALLS: list[Any] = []


def choose(facts: Any) -> str | None:
    """Sends requests whose system text asks for it to the mini model; else the rules."""
    CALLS.append(facts)
    if "ROUTE-TO-MINI" in facts.system:
        return "mock-openai,gpt-4.1-mini"
    if "ROUTE-BROKEN" in facts.system:
        raise RuntimeError("custom router failed on purpose")
    if "ROUTE-SLOW" in facts.system:
        time.sleep(0.05)
        return "mock-openai,gpt-4.1-mini"
    if "ROUTE-NONSENSE" in facts.system:
        return 42  # type: ignore[return-value]
    return None


async def choose_async(facts: Any) -> str | None:
    if "ROUTE-SLOW" in facts.system:
        await asyncio.sleep(1.0)
    if "ROUTE-" in facts.system:
        return "mock-openai,gpt-4.1-mini"
    return None
