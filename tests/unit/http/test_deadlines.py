"""DeadlineSweeper: one timer for many watchers, stopping when nothing is watched."""

from __future__ import annotations

import asyncio

from proxy.http.deadlines import DeadlineSweeper


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Watcher:
    def __init__(self, sweeper: DeadlineSweeper, expires_at: float) -> None:
        self.sweeper = sweeper
        self.expires_at = expires_at
        self.seen: list[float] = []
        self.fired = False

    def check_deadline(self, now: float) -> None:
        self.seen.append(now)
        if now >= self.expires_at:
            self.fired = True
            self.sweeper.unwatch(self)


def test_ticks_pass_the_injected_time_and_stop_when_empty() -> None:
    async def go() -> tuple[Watcher, Watcher, DeadlineSweeper]:
        clock = FakeClock()
        sweeper = DeadlineSweeper(asyncio.get_running_loop(), clock, tick_s=0.001)
        early, late = Watcher(sweeper, 101.0), Watcher(sweeper, 103.0)
        sweeper.watch(early)
        sweeper.watch(late)
        for _ in range(4):
            await asyncio.sleep(0.01)
            clock.now += 1.0
        await asyncio.sleep(0.01)
        return early, late, sweeper

    early, late, sweeper = asyncio.run(go())
    assert early.fired and late.fired
    assert early.seen[-1] == 101.0 and late.seen[-1] == 103.0
    assert len(sweeper) == 0
    assert sweeper._timer is None  # no timer left running once nothing is watched
