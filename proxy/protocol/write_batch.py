"""Writes gathered per loop iteration and made together at its end: responses to clients
(downstream connections) and HTTP/1.1 requests to providers (upstream connections).

How this works: a connection with bytes to send registers itself (`WriteBatch.add`) instead of
writing at once; the first registration of an iteration schedules one `call_soon`, which runs
after the I/O callbacks of that iteration, and every registered connection then writes what
its codec holds in one transport write. Why: a response written in the middle of the
iteration wakes its client, which may run (on the other core), read and sleep again before
the next response of the same iteration is written; every such wake-up of a sleeping peer is
a cross-core interrupt, dear on a VM. Written back to back at the end, one wake-up serves
them all, and a connection answering several pipelined requests or many HTTP/2 streams in one
iteration makes one syscall. Upstream, the same holds for the provider's process. Measured on
the passthrough benchmark (one worker, wrk with 32
connections): see docs/architecture.md. The latency added is the rest of the iteration that
produced the bytes, nothing when the loop has nothing else to do. One exception: a streamed
response's head and first content are written at once (`DownstreamConnection.write_data`),
because under load an iteration carries hundreds of other streams' events and the first
token is what the client waits on; upstream, a streamed request is written when bound (see
`Http1Connection.bind`).
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Flushable(Protocol):
    def flush_batched(self) -> None:
        """Write what is pending now (called once per `WriteBatch.add` of this iteration)."""
        ...


class WriteBatch:
    __slots__ = ("_loop", "_pending", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[Flushable] = []  # bounded by the open connections: each once
        self._scheduled = False

    def add(self, conn: Flushable) -> None:
        """``conn`` has bytes to write; the caller adds it at most once per iteration."""
        self._pending.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        pending = self._pending
        self._pending = []
        for conn in pending:
            conn.flush_batched()
