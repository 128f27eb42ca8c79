"""A stream's head and first content leave at once; whole answers wait for the write batch.

Real sockets (a socketpair) and a real DownstreamConnection: the answering filter looks at the
client's end of the socket right after it hands its first bytes to the stream, still inside
the loop iteration that produced them.
"""

from __future__ import annotations

import asyncio
import socket

from proxy.events import RequestHeaders
from proxy.filters.api import DataStatus, Dialect, FilterCallbacks, HeadersStatus
from proxy.headers import Headers
from proxy.http.info import StreamInfo
from proxy.http.stream import ActiveStream, RequestInfo
from proxy.protocol.connection import ConnectionSettings, DownstreamConnection
from proxy.protocol.limits import CodecLimits
from proxy.protocol.write_batch import WriteBatch

REQUEST = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"


class Answer:
    """Answers with a head and one chunk; records what the client could read right then."""

    def __init__(self, whole: bool, client: socket.socket, seen: list[bytes]) -> None:
        self._whole = whole
        self._client = client
        self._seen = seen

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        self._cb.encode_headers(200, [(b"content-type", b"text/event-stream")], False)
        self._cb.encode_data(b"event: ping\ndata: {}\n\n", self._whole)
        try:
            self._seen.append(self._client.recv(65536))
        except BlockingIOError:
            self._seen.append(b"")
        return HeadersStatus.STOP

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.STOP_NO_BUFFER

    def on_destroy(self) -> None:
        pass


class Factory:
    def __init__(self, whole: bool, client: socket.socket, seen: list[bytes]) -> None:
        self._filter = Answer(whole, client, seen)

    def new_stream(
        self, sink: DownstreamConnection, event: RequestHeaders, protocol: str, now: float
    ) -> ActiveStream:
        request = RequestInfo(
            event.method, event.path, "/v1/messages", event.authority, event.headers,
            Dialect.ANTHROPIC,
        )  # fmt: skip
        info = StreamInfo(now, protocol)
        return ActiveStream(sink, event.stream_id, request, info, [self._filter], [])

    def stream_done(self, stream: ActiveStream) -> None:
        pass


class Registry:
    draining = False

    def add(self, conn: DownstreamConnection) -> bool:
        return True

    def remove(self, conn: DownstreamConnection) -> None:
        pass


def exchange(whole: bool) -> tuple[bytes, bytes]:
    """What the client could read inside the answering iteration, and right after it."""

    async def go() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        server_end, client = socket.socketpair()
        client.setblocking(False)
        seen: list[bytes] = []
        settings = ConnectionSettings(CodecLimits(), "httptools", 10.0, 10.0, 10.0, 1 << 20)
        conn = DownstreamConnection(
            settings, Factory(whole, client, seen), Registry(), loop, loop.time, WriteBatch(loop)
        )
        transport, _ = await loop.connect_accepted_socket(lambda: conn, server_end)
        try:
            client.send(REQUEST)
            for _ in range(100):  # the request arrives within a few iterations
                if seen:
                    break
                await asyncio.sleep(0)
            await asyncio.sleep(0)  # the iteration after: the batch has run
            try:
                later = client.recv(65536)
            except BlockingIOError:
                later = b""
            return seen[0], later
        finally:
            transport.close()
            client.close()
            await asyncio.sleep(0)

    return asyncio.run(go())


def test_a_streams_head_and_first_event_leave_in_the_iteration_that_made_them() -> None:
    inside, later = exchange(whole=False)
    assert inside.startswith(b"HTTP/1.1 200 ")
    assert inside.endswith(b"event: ping\ndata: {}\n\n\r\n")  # the first chunk, whole
    assert later == b""


def test_a_whole_answer_waits_for_the_end_of_the_iteration() -> None:
    inside, later = exchange(whole=True)
    assert inside == b""  # batched with the iteration's other writes
    assert later.startswith(b"HTTP/1.1 200 ") and later.endswith(b"0\r\n\r\n")
