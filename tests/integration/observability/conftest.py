"""Fixtures: the proxy suite's loop thread, mock provider and Junction factory, plus scripted
upstreams and small clients for the admin listener."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.proxy.conftest import junction_factory, lt, mock
from tests.integration.proxy.harness import LoopThread
from tests.support.h1server import ScriptedHttp1Server

__all__ = ["junction_factory", "lt", "mock"]


@pytest.fixture
def upstream(lt: LoopThread) -> Iterator[Callable[[Any], ScriptedHttp1Server]]:
    started: list[ScriptedHttp1Server] = []

    def make(responder: Any) -> ScriptedHttp1Server:
        server = lt.run(ScriptedHttp1Server(responder).start())
        started.append(server)
        return server

    yield make
    for s in started:
        lt.run(s.stop())
