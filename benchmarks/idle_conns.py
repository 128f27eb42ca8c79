"""Opens many keep-alive connections, completes one request on each, and holds them idle.

Requests go one at a time so the server under test reuses a single upstream connection: the
memory it grows by is then what idle downstream connections cost, not a bigger upstream pool.
"""

from __future__ import annotations

import asyncio
import contextlib

import httptools

MAX_RESPONSE_BYTES = 1 << 20


class _Done:
    __slots__ = ("complete", "status")

    def __init__(self) -> None:
        self.complete = False
        self.status = 0

    def on_message_complete(self) -> None:
        self.complete = True


async def _one_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, timeout_s: float
) -> int:
    done = _Done()
    parser = httptools.HttpResponseParser(done)
    writer.write(request)
    received = 0
    while not done.complete:
        chunk = await asyncio.wait_for(reader.read(65536), timeout_s)
        if not chunk:
            raise ConnectionError("server closed the connection before the response ended")
        received += len(chunk)
        if received > MAX_RESPONSE_BYTES:
            raise ConnectionError("response larger than expected")
        parser.feed_data(chunk)
    return int(parser.get_status_code())


class IdleConnections:
    """Connections held open after one completed request each; close() releases them."""

    def __init__(self) -> None:
        self._writers: list[asyncio.StreamWriter] = []
        self.statuses: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._writers)

    async def open(
        self, host: str, port: int, request: bytes, count: int, timeout_s: float = 5.0
    ) -> None:
        for _ in range(count):
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
            self._writers.append(writer)
            status = await _one_request(reader, writer, request, timeout_s)
            self.statuses[status] = self.statuses.get(status, 0) + 1

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        self._writers.clear()
