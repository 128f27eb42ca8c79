"""The fault matrix's rig: upstreams, fault proxies and Junction on one loop thread.

`Rig` starts what a test needs on the `LoopThread` (mock providers, scripted HTTP/1.1 and
HTTP/2 servers, `FaultProxy`s, Junction with small timeouts and a concurrency limit on every
provider) and, at teardown, drains Junction, checks that it left nothing behind (no client
stream, pooled connection, exchange, limit slot or task), stops the servers, and fails on any
task still alive on the loop after that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from proxy.limits.local import LocalLimiter
from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import (
    LoopThread,
    Running,
    base_config,
    start_junction,
    start_mock,
)
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.h1server import Responder as H1Responder
from tests.support.h1server import ScriptedHttp1Server
from tests.support.h2server import Responder as H2Responder
from tests.support.h2server import ScriptedH2Server

# Small deadlines keep the matrix fast; each fault test stays well under a second of waiting.
CONNECT_TIMEOUT_S = 0.2
HEADER_TIMEOUT_S = 0.3
IDLE_TIMEOUT_S = 0.3  # Junction checks deadlines every 0.1 s: they fire up to a tick late
DRAIN_TIMEOUT_S = 0.3
SLOTS = 8  # concurrency limit per provider: every slot must come back
SETTLE_S = 1.0  # "within a second" (hardening.md F16-F18)

ANTHROPIC_MODEL = "claude-sonnet-4-5"
OPENAI_MODEL = "gpt-4.1"


def provider(name: str, port: int, dialect: str = "anthropic", **extra: Any) -> dict[str, Any]:
    """A provider at 127.0.0.1:``port`` serving the one model the matrix uses per dialect."""
    return {
        "name": name,
        "dialect": dialect,
        "base_url": f"http://127.0.0.1:{port}",
        "api_key": "k-" + name,
        "models": [ANTHROPIC_MODEL if dialect == "anthropic" else OPENAI_MODEL],
        **extra,
    }


def target(p: dict[str, Any]) -> str:
    return f"{p['name']},{p['models'][0]}"


class Rig:
    """What one test started on the loop thread, and the checks that it all ended well."""

    def __init__(self, lt: LoopThread, tmp_path: Path) -> None:
        self.lt = lt
        self.tmp_path = tmp_path
        self.junctions: list[Running] = []
        self.limited: dict[Running, list[str]] = {}
        self._stops: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._server_tasks: list[Callable[[], set[asyncio.Task[None]]]] = []

    # -- upstreams ----------------------------------------------------------------------------
    def mock(self, **options: Any) -> MockProvider:
        m = start_mock(self.lt, **options)
        self._stops.append(m.stop)
        return m

    def h1(self, responder: H1Responder) -> ScriptedHttp1Server:
        async def go() -> ScriptedHttp1Server:
            return await ScriptedHttp1Server(responder).start()

        server = self.lt.run(go())
        self._stops.append(server.stop)
        self._server_tasks.append(lambda: server._tasks)
        return server

    def h2(self, responder: H2Responder) -> ScriptedH2Server:
        async def go() -> ScriptedH2Server:
            return await ScriptedH2Server(responder).start()

        server = self.lt.run(go())
        self._stops.append(server.stop)
        self._server_tasks.append(lambda: server._tasks)
        return server

    def proxy(self, port: int, default: Fault | None = None) -> FaultProxy:
        async def go() -> FaultProxy:
            fp = FaultProxy(port)
            if default is not None:
                fp.default = default
            return await fp.start()

        fp = self.lt.run(go())
        self._stops.append(fp.stop)
        self._server_tasks.append(lambda: fp.tasks)
        return fp

    # -- Junction -----------------------------------------------------------------------------
    def junction(
        self, providers: list[dict[str, Any]], route: list[str], **sections: Any
    ) -> Running:
        upstream = {
            "connect_timeout_s": CONNECT_TIMEOUT_S,
            "response_header_timeout_s": HEADER_TIMEOUT_S,
            "stream_idle_timeout_s": IDLE_TIMEOUT_S,
            **sections.pop("upstream", {}),
        }
        resilience = dict(sections.pop("resilience", {}))
        # Retries of the last candidate: a tiny backoff (a retry costs no time here) and a
        # 2 s cap (a provider's "come back in 30 s" is not waited for).
        resilience["retry"] = {
            "base_backoff_s": 0.01,
            "max_backoff_s": 2.0,
            **resilience.get("retry", {}),
        }
        names = [p["name"] for p in providers]
        cfg = base_config(
            0,
            providers=providers,
            router=sections.pop("router", {"default": route if len(route) > 1 else route[0]}),
            upstream=upstream,
            server={"drain_timeout_s": DRAIN_TIMEOUT_S, **sections.pop("server", {})},
            rate_limits={"per_provider": {n: {"concurrent": SLOTS} for n in names}},
            resilience=resilience,
            **sections,
        )
        run = start_junction(self.lt, self.tmp_path, cfg)
        self.junctions.append(run)
        self.limited[run] = [f"provider:{n}" for n in names]
        return run

    def slots_in_use(self, run: Running) -> int:
        limiter = run.worker.holder.current.limiter
        assert isinstance(limiter, LocalLimiter)
        return sum(self.lt.call(limiter.in_use, scope) for scope in self.limited[run])

    def junction_tasks(self) -> list[str]:
        """Tasks on the loop that no test server owns: Junction's (and leaks)."""

        async def probe() -> list[str]:
            mine: set[asyncio.Task[Any]] = set()
            for owned in self._server_tasks:
                mine |= owned()
            me = asyncio.current_task()
            return [repr(t) for t in asyncio.all_tasks() if t is not me and t not in mine]

        return self.lt.run(probe())

    def leftovers(self, run: Running) -> dict[str, Any]:
        """What one request may have left in Junction: all zero once it is over."""
        up = run.upstream_stats()
        down = run.stats()["downstream"]
        return {
            "exchanges_active": up["exchanges_active"],
            "exchanges_pending": up["exchanges_pending"],
            "connections_connecting": up["connections_connecting"],
            "streams_active": down["streams_active"],
            "slots_in_use": self.slots_in_use(run),
            "tasks": len(self.junction_tasks()),
        }

    def assert_settled(self, run: Running, within: float = SETTLE_S) -> None:
        """Every request is over and gave back what it held, within ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            left = self.leftovers(run)
            if not any(left.values()):
                return
            assert time.monotonic() < deadline, f"left behind: {left}"
            time.sleep(0.01)

    def all_tasks(self) -> list[str]:
        async def probe() -> list[str]:
            me = asyncio.current_task()
            return [repr(t.get_coro()) for t in asyncio.all_tasks() if t is not me]

        return self.lt.run(probe())

    def close(self) -> None:
        try:
            for run in self.junctions:
                run.drain()
                run.assert_nothing_left()
                assert self.slots_in_use(run) == 0
            assert self.junction_tasks() == []
        finally:
            for stop in reversed(self._stops):
                self.lt.run(stop())
        # Connection teardown callbacks may take a loop turn or two after the servers stopped.
        deadline = time.monotonic() + SETTLE_S
        while (left := self.all_tasks()) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not left, f"tasks still running after every server stopped: {left}"
