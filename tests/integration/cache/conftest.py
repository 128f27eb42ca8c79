from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.mock_provider import MockProvider
from tests.integration.proxy.conftest import lt, mock  # noqa: F401
from tests.integration.proxy.harness import LoopThread, Running, base_config, start_junction
from tests.integration.redis.conftest import own_redis, prefix, redis_server  # noqa: F401


@pytest.fixture
def junctions(
    lt: LoopThread,  # noqa: F811
    mock: MockProvider,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Callable[..., Running]]:
    """Starts Junction workers (each in its own directory, on the test's loop) and drains
    them afterwards, checking that nothing is left."""
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
        cache = run.worker.holder.current.cache
        if cache is not None and cache.l2 is not None:
            assert cache.l2.closed
