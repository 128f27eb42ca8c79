"""Streaming, backpressure and cancellation over HTTP/1.1."""

from __future__ import annotations

import asyncio
import socket

import pytest

from proxy.upstream.api import Exchange, Origin
from tests.integration.upstream.helpers import CODECS, make_client
from tests.support.aio import eventually, run, settled
from tests.support.h1server import ScriptedHttp1Server, echo, sse, stream_body
from tests.support.handlers import RecordingHandler

EVENTS = [b"event: a\ndata: 1\n\n", b"event: b\ndata: 2\n\n", b"event: c\ndata: 3\n\n"]


@pytest.mark.parametrize("codec", CODECS)
def test_sse_chunks_arrive_before_the_next_is_sent(codec: str) -> None:
    async def main() -> None:
        gates = [asyncio.Event() for _ in EVENTS[1:]]
        seen: list[bytes] = []

        def on_data(chunk: bytes) -> None:
            # The server holds event i+1 until the client has seen event i.
            seen.append(chunk)
            if len(seen) <= len(gates):
                gates[len(seen) - 1].set()

        async with ScriptedHttp1Server(sse(EVENTS, gates=gates)) as server:
            client = make_client(codec)
            handler = RecordingHandler(on_data)
            client.request(server.origin(), b"POST", b"/v1/messages", [], handler, True)
            await handler.wait()
            assert handler.chunks == EVENTS
            assert handler.header(b"content-type") == b"text/event-stream"
            assert client.stats()["connections_idle"] == 1
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_pause_reading_stops_the_upstream(codec: str) -> None:
    total = 24 * 1024 * 1024

    async def main() -> None:
        received = 0
        exchange: list[Exchange] = []

        class Counting(RecordingHandler):
            def on_upstream_headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
                super().on_upstream_headers(status, headers)
                exchange[0].pause_reading()

            def on_upstream_data(self, data: bytes) -> None:
                nonlocal received
                received += len(data)

        async with ScriptedHttp1Server(stream_body(total)) as server:
            client = make_client(codec)
            handler = Counting()
            exchange.append(client.request(server.origin(), b"GET", b"/big", [], handler, True))
            await handler.headers_seen.wait()
            await eventually(lambda: bool(server.connections))
            conn = server.connections[0]
            await settled(lambda: conn.bytes_written)
            stalled_at = received
            # The server is blocked in drain(): kernel buffers are full, nothing is read.
            assert conn.bytes_written < total
            assert received < 1024 * 1024
            await asyncio.sleep(0.1)
            assert received == stalled_at
            exchange[0].resume_reading()
            await handler.wait(timeout=20)
            assert handler.ended and received == total
            await client.close()

    run(main(), timeout=30)


@pytest.mark.parametrize("codec", CODECS)
def test_cancel_mid_response_closes_the_connection(codec: str) -> None:
    async def main() -> None:
        gate = asyncio.Event()  # never set: the second event never comes
        async with ScriptedHttp1Server(sse(EVENTS, gates=[gate, gate])) as server:
            client = make_client(codec)
            baseline_tasks = len(asyncio.all_tasks())
            handler = RecordingHandler()
            ex = client.request(server.origin(), b"GET", b"/stream", [], handler, True)
            await handler.data_seen.wait()
            ex.cancel()
            stats = client.stats()
            assert stats["connections_open"] == 0
            assert stats["exchanges_active"] == stats["exchanges_pending"] == 0
            events = list(handler.events)
            gate.set()  # the server tries to write more; nobody may hear of it
            await eventually(lambda: server.open_connections == 0)
            await asyncio.sleep(0.02)
            assert handler.events == events == ["headers", "data"]
            assert len(asyncio.all_tasks()) <= baseline_tasks
            # The pool still works afterwards, on a new connection.
            handler = RecordingHandler()
            client.request(server.origin(), b"GET", b"/again", [], handler, True)
            await handler.wait()
            assert handler.chunks == EVENTS
            assert server.connections_accepted == 2
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_cancel_after_completion_keeps_the_connection(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server() as server:
            client = make_client(codec)
            handler = RecordingHandler()
            ex = client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.wait()
            ex.cancel()
            assert client.stats()["connections_idle"] == 1
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_request_body_streams_chunked(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server(echo()) as server:
            client = make_client(codec)
            handler = RecordingHandler()
            ex = client.request(server.origin(), b"POST", b"/up", [], handler, False)
            ex.send_data(b"first,", False)  # buffered until the connection is up
            await eventually(lambda: bool(server.connections))
            conn = server.connections[0]
            await eventually(lambda: bytes(conn.body_received) == b"first,")
            ex.send_data(b"second,", False)
            await eventually(lambda: bytes(conn.body_received) == b"first,second,")
            assert not ex.write_blocked
            ex.send_data(b"third", True)
            await handler.wait()
            assert handler.body == b"first,second,third"
            request = server.requests[0]
            assert request.header(b"transfer-encoding") == b"chunked"
            assert request.header(b"content-length") is None
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_request_body_backpressure(codec: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        client = make_client(codec)
        handler = RecordingHandler()
        ex = client.request(Origin("http", "127.0.0.1", port), b"POST", b"/", [], handler, False)
        upstream, _ = await loop.sock_accept(listener)  # accepted, but nothing is read yet
        await eventually(lambda: client.stats()["exchanges_active"] == 1)
        chunk = b"b" * 65536
        sent = 0
        while not ex.write_blocked and sent < 4096:
            ex.send_data(chunk, False)
            sent += 1
            await asyncio.sleep(0)
        assert ex.write_blocked  # kernel buffers and the transport's high-water mark are full
        assert handler.writable_calls == 0

        async def read_request() -> int:
            total, tail = 0, b""
            while not tail.endswith(b"\r\n0\r\n\r\n"):
                data = await loop.sock_recv(upstream, 1 << 20)
                assert data, "connection closed before the last chunk"
                total += len(data)
                tail = (tail + data)[-16:]
            return total

        reader = loop.create_task(read_request())
        await eventually(lambda: handler.writable_calls > 0)
        assert not ex.write_blocked
        ex.send_data(b"", True)
        received = await asyncio.wait_for(reader, 5)
        assert received > sent * len(chunk)  # every chunk went out, plus head and framing
        await client.close()
        upstream.close()
        listener.close()

    run(main())
