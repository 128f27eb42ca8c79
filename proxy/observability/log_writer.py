"""Writes log batches on a thread of their own, so a slow sink never stalls the event loop.

How this works: the loop thread hands whole batches to `LogWriter.submit`, which appends them
to a queue and wakes the writer thread; the thread writes and flushes them in order. The
write syscall runs without the GIL, so the loop keeps serving meanwhile. Before, a 150 KB
batch written on the loop took it away from requests for a tenth of a millisecond every few
milliseconds under load, and stdout piped to a reader that stopped reading (a stuck log
collector) blocked the worker outright.

The queue is bounded by ``max_pending_bytes``: a batch that does not fit is dropped and
counted (``dropped_lines``), because a gateway must keep serving when its log sink cannot
keep up. ``drain`` waits until everything submitted so far is written (tests, shutdown);
``close`` drains and stops the thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from typing import BinaryIO, Final

MAX_PENDING_BYTES: Final = 8 * 1024 * 1024
DRAIN_TIMEOUT_S: Final = 5.0


class LogWriter:
    def __init__(self, out: BinaryIO, max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        self._out = out
        self.max_pending_bytes = max_pending_bytes
        self._queue: deque[bytes] = deque()
        self._pending_bytes = 0
        self._busy = False  # the thread holds a batch it has not finished writing
        self._closed = False
        self._cond = threading.Condition()
        self.dropped_lines = 0
        self._thread = threading.Thread(target=self._run, name="junction-log-writer", daemon=True)
        self._thread.start()

    def submit(self, data: bytes, lines: int) -> bool:
        """Queue ``data`` (``lines`` lines) for writing; False when it was dropped."""
        with self._cond:
            if self._closed or self._pending_bytes + len(data) > self.max_pending_bytes:
                self.dropped_lines += lines
                return False
            self._queue.append(data)
            self._pending_bytes += len(data)
            self._cond.notify()
        return True

    def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until everything submitted is written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout_s)

    def close(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        self.drain(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._queue and not self._closed:
                    cond.wait()
                if not self._queue:
                    return  # closed and nothing left
                data = self._queue.popleft()
                self._busy = True
            with contextlib.suppress(OSError, ValueError):
                # A closed or full sink must never take the worker down.
                self._out.write(data)
                self._out.flush()
            with cond:
                self._pending_bytes -= len(data)
                self._busy = False
                cond.notify_all()
