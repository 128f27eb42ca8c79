"""Runs Junction and the mock provider for real, on loopback, in a background event loop.

The servers live in one thread with its own uvloop loop so tests can use blocking clients
(raw sockets, h11, httpx, the official SDKs) as well as async ones on their own loops.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvloop
import yaml

from proxy.config.loader import load_config
from proxy.mock_provider import MockOptions, MockProvider
from proxy.server.worker import Worker

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)

        return self.run(wrapper())

    def stop(self) -> list[str]:
        """Stop the loop; returns the tasks that were still alive (a leak when servers were
        already stopped)."""
        leftover: list[str] = []

        async def cancel_rest() -> None:
            await asyncio.sleep(0.05)  # let connection teardown callbacks run
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            leftover.extend(repr(t.get_coro()) for t in tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_rest(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()
        return leftover


def base_config(mock_port: int, **sections: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "admin": {"host": "127.0.0.1", "port": 0},
        "providers": [
            {
                "name": "mock",
                "dialect": "anthropic",
                "base_url": f"http://127.0.0.1:{mock_port}",
                "api_key": "${MOCK_KEY}",
                "models": ["claude-sonnet-4-5", "claude-haiku-4-5"],
            },
            {
                "name": "mock-openai",
                "dialect": "openai",
                "base_url": f"http://127.0.0.1:{mock_port}",
                "api_key": "sk-openai-provider",
                "models": ["gpt-4.1", "gpt-4.1-mini"],
            },
        ],
        "router": {"default": "mock,claude-sonnet-4-5"},
        "log": {"access_log": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


PROVIDER_KEY = "sk-ant-provider-key"
ENV = {"MOCK_KEY": PROVIDER_KEY}


class Running:
    def __init__(self, lt: LoopThread, worker: Worker, config_path: Path) -> None:
        self.lt = lt
        self.worker = worker
        self.config_path = config_path
        self.port = worker.port
        self.admin_port = worker.admin_port
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        return self.lt.call(self.worker.stats)  # type: ignore[no-any-return]

    def upstream_stats(self) -> dict[str, int]:
        return self.lt.call(self.worker.client.stats)  # type: ignore[no-any-return]

    def drain(self) -> None:
        self.lt.run(self.worker.drain(), timeout=60)

    def assert_nothing_left(self) -> None:
        """After a drain: no client connection, pooled connection or exchange remains."""
        up = self.upstream_stats()
        assert up["connections_open"] == 0, up
        assert up["exchanges_active"] == 0 and up["exchanges_pending"] == 0, up
        assert self.lt.call(lambda: len(self.worker.conns.conns)) == 0
        assert self.lt.call(lambda: len(self.worker.sweeper)) == 0


def start_junction(lt: LoopThread, tmp_path: Path, cfg: dict[str, Any]) -> Running:
    path = tmp_path / "junction.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = load_config(path, env=ENV)
    worker = Worker(config, config_path=path, env=ENV)
    lt.run(worker.start())
    return Running(lt, worker, path)


def start_mock(lt: LoopThread, **options: Any) -> MockProvider:
    mock = MockProvider(MockOptions(port=0, **options))
    lt.run(mock.start())
    return mock
