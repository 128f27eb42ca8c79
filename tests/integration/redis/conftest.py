from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.limits.redis import RedisLimiter
from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import (
    LoopThread,
    Running,
    base_config,
    start_junction,
    start_mock,
)

from .server import RedisServer, redis_binary

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the tests that leave it running (each uses its own key prefix)."""
    redis_binary()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill or pause."""
    redis_binary()
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    return f"jt{next(_prefixes)}:"


@pytest.fixture
def lt() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    leftover = thread.stop()
    assert not leftover, f"tasks still running after every server stopped: {leftover}"


@pytest.fixture
def mock(lt: LoopThread) -> Iterator[MockProvider]:
    m = start_mock(lt)
    yield m
    lt.run(m.stop())


@pytest.fixture
def junctions(
    lt: LoopThread, mock: MockProvider, tmp_path: Path
) -> Iterator[Callable[..., Running]]:
    """Starts Junction workers (each in its own directory, all on the test's loop); drains
    them afterwards and checks that nothing is left: connections, exchanges, Redis clients."""
    started: list[Running] = []

    def make(**sections: Any) -> Running:
        workdir = tmp_path / f"worker{len(started)}"
        workdir.mkdir()
        run = start_junction(lt, workdir, base_config(mock.port, **sections))
        started.append(run)
        return run

    yield make
    for run in started:
        run.drain()
        run.assert_nothing_left()
        limiter = run.worker.holder.current.limiter
        if isinstance(limiter, RedisLimiter):
            assert limiter.closed and limiter.stats()["background_inflight"] == 0
