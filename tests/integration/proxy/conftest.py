from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.mock_provider import MockProvider

from .harness import LoopThread, Running, base_config, start_junction, start_mock


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


@pytest.fixture(params=["httptools", "h11"])
def http1_codec(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def junction_factory(
    lt: LoopThread, mock: MockProvider, tmp_path: Path
) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def make(**sections: Any) -> Running:
        cfg = base_config(mock.port, **sections)
        run = start_junction(lt, tmp_path, cfg)
        started.append(run)
        return run

    yield make
    for run in started:
        run.drain()
        run.assert_nothing_left()


@pytest.fixture
def junction(junction_factory: Callable[..., Running], http1_codec: str) -> Running:
    return junction_factory(server={"http": http1_codec})
