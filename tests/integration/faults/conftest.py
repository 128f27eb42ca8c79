"""Fixtures of the fault matrix (the rig itself is in rig.py).

One loop thread serves a whole module (a fresh one per test costs more than most tests here);
each test's `Rig` checks at teardown that every task it caused has ended.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.proxy.harness import LoopThread

from .rig import Rig


@pytest.fixture(scope="module")
def lt() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    leftover = thread.stop()
    assert not leftover, f"tasks still running after every server stopped: {leftover}"


@pytest.fixture
def rig(lt: LoopThread, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(lt, tmp_path)
    yield r
    r.close()
