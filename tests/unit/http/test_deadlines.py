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


class CountingClock:
    """Each call is a new instant: the checks of one turn share the value they were given."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return float(self.calls)


class Member(Watcher):
    """The first member checked in a tick makes another, not yet checked, leave."""

    def __init__(self, sweeper: DeadlineSweeper, group: list[Member], left: list[Member]):
        super().__init__(sweeper, 1e9)
        self.group = group
        self.left = left

    def check_deadline(self, now: float) -> None:
        super().check_deadline(now)
        if not self.left:
            victim = next(m for m in self.group if m is not self and not m.seen)
            self.sweeper.unwatch(victim)
            self.left.append(victim)


def test_a_tick_checks_a_bounded_number_per_loop_iteration() -> None:
    async def go() -> tuple[list[Member], Member]:
        sweeper = DeadlineSweeper(
            asyncio.get_running_loop(), CountingClock(), tick_s=0.001, max_checks_per_turn=3
        )
        members: list[Member] = []
        left: list[Member] = []
        members.extend(Member(sweeper, members, left) for _ in range(10))
        for m in members:
            sweeper.watch(m)
        await asyncio.sleep(0)  # nothing yet: the first tick is a timer away
        assert all(not m.seen for m in members)
        while sum(1 for m in members if m.seen) < 9:
            await asyncio.sleep(0.001)
        sweeper.close()
        return members, left[0]

    members, victim = asyncio.run(go())
    first_tick = [m.seen[0] for m in members if m.seen]
    assert len(first_tick) == 9
    per_turn: dict[float, int] = {}
    for now in first_tick:
        per_turn[now] = per_turn.get(now, 0) + 1
    # Nine checks, at most three per turn (one clock reading each): three turns or more.
    assert max(per_turn.values()) <= 3 and len(per_turn) >= 3
    assert not victim.seen  # it left before its turn came


class Rewatcher:
    """Leaves and rejoins within its own check, as a request retrying after a timeout does."""

    def __init__(self, sweeper: DeadlineSweeper) -> None:
        self.sweeper = sweeper
        self.checks = 0

    def check_deadline(self, now: float) -> None:
        self.checks += 1
        self.sweeper.unwatch(self)
        self.sweeper.watch(self)


def test_a_member_rejoining_during_a_tick_keeps_one_timer() -> None:
    async def go() -> int:
        sweeper = DeadlineSweeper(asyncio.get_running_loop(), FakeClock(), tick_s=0.01)
        member = Rewatcher(sweeper)
        sweeper.watch(member)
        await asyncio.sleep(0.2)
        sweeper.close()
        return member.checks

    checks = asyncio.run(go())
    # About 20 ticks in 0.2 s; a second timer armed on every rejoin would double them each
    # tick (thousands).
    assert 1 <= checks <= 30
