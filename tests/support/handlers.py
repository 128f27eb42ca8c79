"""`RecordingHandler`: a `ResponseHandler` that records everything an exchange delivers.

Create it inside a running loop. ``await handler.wait()`` returns once the exchange ended or
failed. ``on_data`` (optional) runs after each chunk is recorded, e.g. to pause the exchange or
to release the server's next SSE event. ``events`` keeps the order of callbacks so tests can
assert "nothing after end/error".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from proxy.errors import UpstreamError
from proxy.headers import Headers


class RecordingHandler:
    def __init__(self, on_data: Callable[[bytes], None] | None = None) -> None:
        self.status: int | None = None
        self.headers: Headers = []
        self.chunks: list[bytes] = []
        self.ended = False
        self.error: UpstreamError | None = None
        self.writable_calls = 0
        self.events: list[str] = []
        self.on_data = on_data
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.headers_seen = asyncio.Event()
        self.data_seen = asyncio.Event()  # set on every chunk; tests clear it

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    async def wait(self, timeout: float = 5.0) -> RecordingHandler:
        await asyncio.wait_for(asyncio.shield(self.done), timeout)
        return self

    def on_upstream_headers(self, status: int, headers: Headers) -> None:
        self.events.append("headers")
        self.status = status
        self.headers = headers
        self.headers_seen.set()

    def on_upstream_data(self, data: bytes) -> None:
        self.events.append("data")
        self.chunks.append(data)
        self.data_seen.set()
        if self.on_data is not None:
            self.on_data(data)

    def on_upstream_end(self) -> None:
        self.events.append("end")
        self.ended = True
        if not self.done.done():
            self.done.set_result(None)

    def on_upstream_error(self, error: UpstreamError) -> None:
        self.events.append("error")
        self.error = error
        if not self.done.done():
            self.done.set_result(None)

    def on_upstream_writable(self) -> None:
        self.writable_calls += 1
