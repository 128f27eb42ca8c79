"""ReadBatcher: each held connection reads again between half a window and a window after its
hold, as its jitter says, in passes."""

from __future__ import annotations

import asyncio

import pytest

from proxy.upstream.read_batch import RELEASE_SLACK_S, ReadBatcher
from tests.support.aio import eventually, run


class Conn:
    def __init__(self, log: list[tuple[str, float]], name: str) -> None:
        self.log = log
        self.name = name

    def release_hold(self) -> None:
        self.log.append((self.name, asyncio.get_running_loop().time()))


def test_each_hold_ends_one_window_later_in_order() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        window = 0.08
        reads = ReadBatcher(loop, loop.time, window, jitter=lambda: 0.0)  # whole windows
        log: list[tuple[str, float]] = []
        held_at = {}
        for name in ("a", "b", "c"):
            held_at[name] = loop.time()
            reads.hold(Conn(log, name))
            await asyncio.sleep(window / 2)
        assert reads.held >= 1 and reads.holds_total == 3
        await eventually(lambda: len(log) == 3)
        assert [name for name, _ in log] == ["a", "b", "c"]
        for name, at in log:
            waited = at - held_at[name]
            # Never early by more than a pass's slack; late by at most the loop's delay.
            assert waited >= window - RELEASE_SLACK_S - 0.002
            assert waited < window + 0.5
        assert reads.held == 0

    run(main())


def test_holds_close_together_are_released_in_one_pass() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reads = ReadBatcher(loop, loop.time, 0.05, jitter=lambda: 0.0)
        log: list[tuple[str, float]] = []
        seen_by_next_callback: list[int] = []

        class First(Conn):
            def release_hold(self) -> None:
                super().release_hold()
                # Runs after the callback that released this one has returned.
                loop.call_soon(lambda: seen_by_next_callback.append(len(log)))

        reads.hold(First(log, "0"))
        for i in range(1, 100):
            reads.hold(Conn(log, str(i)))
        await eventually(lambda: len(log) == 100 and bool(seen_by_next_callback))
        assert [name for name, _ in log] == [str(i) for i in range(100)]
        assert seen_by_next_callback == [100]  # one timer callback released them all

    run(main())


def test_jitter_shortens_a_hold_to_half_a_window_and_reorders() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        window = 0.2
        draws = iter([0.0, 0.999])  # a: a whole window; b, held later: half of one
        reads = ReadBatcher(loop, loop.time, window, jitter=lambda: next(draws))
        log: list[tuple[str, float]] = []
        start = loop.time()
        reads.hold(Conn(log, "a"))
        await asyncio.sleep(0.02)
        reads.hold(Conn(log, "b"))  # due before a: the timer must be brought forward
        await eventually(lambda: len(log) == 2)
        assert [name for name, _ in log] == ["b", "a"]
        b_at, a_at = log[0][1] - start, log[1][1] - start
        assert 0.02 + window * 0.5 - 0.003 <= b_at < 0.02 + window * 0.5 + 0.08
        assert window - 0.003 <= a_at

    run(main())


def test_close_releases_everything_at_once_and_turns_off() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reads = ReadBatcher(loop, loop.time, 10.0, jitter=lambda: 0.0)
        reads.active = True
        log: list[tuple[str, float]] = []
        reads.hold(Conn(log, "a"))
        reads.hold(Conn(log, "b"))
        reads.close()
        assert [name for name, _ in log] == ["a", "b"]
        assert not reads.active and reads.held == 0
        await asyncio.sleep(0.01)
        assert len(log) == 2

    run(main())


def test_window_must_be_positive() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError, match="positive"):
            ReadBatcher(loop, loop.time, 0.0)

    run(main())
