from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import (
    LoopThread,
    Running,
    base_config,
    start_junction,
    start_mock,
)


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
def junction_factory(
    lt: LoopThread, mock: MockProvider, tmp_path: Path
) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def make(**sections: Any) -> Running:
        run = start_junction(lt, tmp_path, base_config(mock.port, **sections))
        started.append(run)
        return run

    yield make
    for run in started:
        run.drain()
        run.assert_nothing_left()
