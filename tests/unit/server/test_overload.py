"""The overload governor's hysteresis, and the monitor that drives the read batcher."""

from __future__ import annotations

import asyncio

import pytest

from proxy.server.overload import OverloadGovernor, OverloadMonitor
from proxy.upstream.read_batch import ReadBatcher
from tests.support.aio import eventually, run


def feed(governor: OverloadGovernor, shares: list[float], interval_s: float = 0.5) -> list[bool]:
    """One sample per share of a core, each ``interval_s`` after the last; the states."""
    cpu = now = 0.0
    governor.observe(cpu, now)
    states = []
    for share in shares:
        cpu += share * interval_s
        now += interval_s
        states.append(governor.observe(cpu, now))
    return states


def test_on_after_two_samples_above_start_off_after_two_below_stop() -> None:
    governor = OverloadGovernor(start_above=0.85, stop_below=0.3)
    shares = [0.6, 0.9, 0.84, 0.9, 0.95, 0.4, 0.29, 0.5, 0.2, 0.1, 0.9, 0.86]
    states = feed(governor, shares)
    assert states == [False, False, False, False, True, True, True, True, True, False, False, True]
    assert governor.busy == pytest.approx(0.86)


def test_first_sample_only_sets_the_baseline() -> None:
    governor = OverloadGovernor(start_above=0.5, stop_below=0.1)
    assert governor.observe(100.0, 1.0) is False  # 100 s of CPU before: not a share
    assert governor.observe(100.4, 1.5) is False  # 0.4 s in 0.5 s: 80 %, once
    assert governor.observe(100.8, 2.0) is True  # twice


def test_a_clock_that_did_not_move_changes_nothing() -> None:
    governor = OverloadGovernor(start_above=0.5, stop_below=0.1)
    governor.observe(0.0, 1.0)
    assert governor.observe(5.0, 1.0) is False


@pytest.mark.parametrize("start, stop", [(0.5, 0.5), (0.5, 0.6), (0.5, -0.1)])
def test_thresholds_must_leave_a_gap(start: float, stop: float) -> None:
    with pytest.raises(ValueError, match="stop_below < start_above"):
        OverloadGovernor(start_above=start, stop_below=stop)


def test_monitor_switches_the_batcher_and_stop_turns_it_off() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        share = [0.95]
        cpu = [0.0]
        last = [loop.time()]

        def process_time() -> float:
            # The process's CPU time as if it used ``share`` of a core since the last call.
            now = loop.time()
            cpu[0] += share[0] * (now - last[0])
            last[0] = now
            return cpu[0]

        reads = ReadBatcher(loop, loop.time, 0.04)
        monitor = OverloadMonitor(
            loop,
            OverloadGovernor(0.85, 0.5),
            reads,
            clock=loop.time,
            cpu=process_time,
            interval_s=0.01,
        )
        monitor.start()
        await eventually(lambda: reads.active)
        share[0] = 0.3
        await eventually(lambda: not reads.active)
        share[0] = 0.95
        await eventually(lambda: reads.active)
        monitor.stop()
        assert not reads.active
        await asyncio.sleep(0.05)
        assert not reads.active  # no tick after stop

    run(main())
