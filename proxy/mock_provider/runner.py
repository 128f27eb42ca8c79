"""Executes a `Plan` that has pauses, using loop timers (never a task).

How this works: `start` waits the first-byte delay, then sends the head and every chunk that
is due; a chunk with a pause arms one `call_later` timer that resumes the loop. When the sink
reports it cannot take more (transport paused, HTTP/2 window shut) the runner stops arming
timers until the sink calls `resume`. After the last chunk the plan's ending runs: finish,
abort, or nothing at all (a stall holds until the client leaves or the server stops).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from proxy.mock_provider.plan import Ending, Headers, Kind, Plan


class Sink(Protocol):
    """One response's way out: an HTTP/1.1 connection or an HTTP/2 stream."""

    def send_head(self, status: int, headers: Headers, streaming: bool) -> None: ...

    def send_body(self, data: bytes) -> bool:
        """Queue body bytes; False when the peer is not reading fast enough to take more."""
        ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...

    def send_garbage(self, data: bytes) -> None: ...


class PlanRunner:
    __slots__ = ("_blocked", "_cancelled", "_i", "_loop", "_plan", "_served", "_sink", "_timer")

    def __init__(self, plan: Plan, sink: Sink, loop: asyncio.AbstractEventLoop) -> None:
        self._plan = plan
        self._sink = sink
        self._loop = loop
        self._i = 0
        self._timer: asyncio.TimerHandle | None = None
        self._served = False  # the pause before chunk _i has already elapsed
        self._blocked = False
        self._cancelled = False

    def start(self) -> None:
        delay = self._plan.first_byte_delay_s
        if delay > 0.0:
            self._timer = self._loop.call_later(delay, self._begin)
        else:
            self._begin()

    def cancel(self) -> None:
        self._cancelled = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def resume(self) -> None:
        """The sink can take more again."""
        if self._blocked and not self._cancelled:
            self._blocked = False
            self._step()

    def _begin(self) -> None:
        self._timer = None
        plan = self._plan
        if plan.kind is Kind.RESPOND:
            self._sink.send_head(plan.status, plan.headers or [], plan.streaming)
            self._step()
        elif plan.kind is Kind.RESET:
            self._sink.abort()
        elif plan.kind is Kind.GARBAGE:
            self._sink.send_garbage(b"".join(plan.chunks))
        # Kind.STALL: nothing, ever

    def _on_timer(self) -> None:
        self._timer = None
        self._served = True
        self._step()

    def _step(self) -> None:
        if self._cancelled:
            return
        chunks, delays = self._plan.chunks, self._plan.delays_s
        i, n = self._i, len(chunks)
        parts: list[bytes] = []
        while i < n:
            if i > 0 and delays is not None and not self._served and delays[i] > 0.0:
                break
            self._served = False
            parts.append(chunks[i])
            i += 1
        self._i = i
        writable = self._sink.send_body(b"".join(parts)) if parts else True
        if self._cancelled:  # sending can close the connection
            return
        if i < n:
            if not writable:
                self._blocked = True
            else:
                assert delays is not None
                self._timer = self._loop.call_later(delays[i], self._on_timer)
            return
        ending = self._plan.ending
        if ending is Ending.END:
            self._sink.finish()
        elif ending is Ending.RESET:
            self._sink.abort()
