"""Is this worker overloaded? Judged by how busy its core is, with hysteresis.

Why: near a full core, every stall of the machine (another process, the hypervisor, a
collection) leaves a backlog that the small remaining headroom takes many times the stall's
length to clear; first tokens of new streams wait behind it. While overloaded, the worker
batches the reads of streamed answers (proxy/upstream/read_batch.py), which costs a stream's
later events up to one window of delay, spends less CPU per event and keeps the reads from
piling up into a backlog.

How this works: `OverloadGovernor` (sans-I/O) is fed the process's CPU seconds and the clock
at each sample. It turns on when the share of one core used since the previous sample has
reached ``start_above`` `SAMPLES_TO_SWITCH` samples in a row (one busy moment is not
overload), and off when it has stayed below ``stop_below`` as long. The gap between the two
is wide on purpose: batching itself lowers the share, so over a narrow gap a worker near the
upper threshold would switch back and forth. `OverloadMonitor` samples ``time.process_time`` every
`SAMPLE_INTERVAL_S` on a loop timer and sets the batcher's ``active`` flag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from proxy.upstream.read_batch import ReadBatcher

log = logging.getLogger("junction.server")

SAMPLE_INTERVAL_S = 0.5
SAMPLES_TO_SWITCH = 2  # consecutive samples past a threshold before the state changes


class OverloadGovernor:
    __slots__ = (
        "_last_cpu_s",
        "_last_s",
        "_streak",
        "active",
        "busy",
        "start_above",
        "stop_below",
    )

    def __init__(self, start_above: float, stop_below: float) -> None:
        if not 0.0 <= stop_below < start_above:
            raise ValueError("OverloadGovernor: need 0 <= stop_below < start_above")
        self.start_above = start_above
        self.stop_below = stop_below
        self.active = False
        self.busy = 0.0  # share of one core over the last sample
        self._streak = 0  # consecutive samples that argue for the other state
        self._last_cpu_s: float | None = None
        self._last_s = 0.0

    def observe(self, cpu_s: float, now: float) -> bool:
        """One sample: the process's CPU seconds so far and the clock. Returns ``active``."""
        last_cpu = self._last_cpu_s
        elapsed = now - self._last_s
        if last_cpu is not None and elapsed > 0:
            self.busy = busy = (cpu_s - last_cpu) / elapsed
            switch = busy < self.stop_below if self.active else busy >= self.start_above
            self._streak = self._streak + 1 if switch else 0
            if self._streak >= SAMPLES_TO_SWITCH:
                self.active = not self.active
                self._streak = 0
        self._last_cpu_s = cpu_s
        self._last_s = now
        return self.active


class OverloadMonitor:
    __slots__ = ("_clock", "_cpu", "_handle", "_interval_s", "_loop", "governor", "reads")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        governor: OverloadGovernor,
        reads: ReadBatcher,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
        interval_s: float = SAMPLE_INTERVAL_S,
    ) -> None:
        self._loop = loop
        self.governor = governor
        self.reads = reads
        self._clock = clock
        self._cpu = cpu
        self._interval_s = interval_s
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._handle is None:
            self.governor.observe(self._cpu(), self._clock())
            self._handle = self._loop.call_later(self._interval_s, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.reads.active = False

    def _tick(self) -> None:
        was = self.governor.active
        active = self.governor.observe(self._cpu(), self._clock())
        if active != was:
            log.info(
                "worker %s: %.0f %% of a core; streamed answers' reads %s",
                "overloaded" if active else "no longer overloaded",
                self.governor.busy * 100,
                "batched" if active else "no longer batched",
            )
        self.reads.active = active
        self._handle = self._loop.call_later(self._interval_s, self._tick)
