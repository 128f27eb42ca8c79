"""Event-loop lag: how late the monitor's timer ran, measured with an injected clock."""

from __future__ import annotations

import asyncio

from proxy.observability.metrics import Histogram
from proxy.observability.proxy_metrics import LOOP_LAG_BUCKETS, LoopLagMonitor


def test_lateness_is_observed_and_the_timer_stops() -> None:
    now = [100.0]
    histogram = Histogram("junction_event_loop_lag_seconds", "", LOOP_LAG_BUCKETS)
    loop = asyncio.new_event_loop()
    try:
        monitor = LoopLagMonitor(loop, lambda: now[0], 0.001, histogram)
        monitor.start()  # due at 100.001 on the injected clock
        now[0] = 100.031  # the loop got to the timer 30 ms late
        ticked = loop.create_future()
        loop.call_later(0.005, ticked.set_result, None)
        loop.run_until_complete(ticked)
        row = histogram.values[()]
        assert sum(row[:-1]) >= 1
        assert row[LOOP_LAG_BUCKETS.index(0.05)] >= 1  # 0.025 < 0.03 <= 0.05
        monitor.stop()
        seen = sum(row[:-1])
        later = loop.create_future()
        loop.call_later(0.005, later.set_result, None)
        loop.run_until_complete(later)
        assert sum(histogram.values[()][:-1]) == seen  # stopped: no more ticks
    finally:
        loop.close()
