"""Upstream failures as the client must report them: typed, prompt, and without leaks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from proxy.errors import (
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamResetError,
    UpstreamTimeoutError,
)
from proxy.upstream.api import Origin
from tests.integration.upstream.helpers import CODECS, make_client
from tests.support.aio import eventually, run
from tests.support.h1server import (
    ReceivedRequest,
    ScriptedHttp1Server,
    ServerConnection,
    close_delimited,
    garbage,
    huge_header,
    reset_after,
    stall,
)
from tests.support.handlers import RecordingHandler


@contextmanager
def unaccepting_listener() -> Iterator[int]:
    """A loopback port whose accept queue is full: new SYNs are dropped, connects hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.parametrize("codec", CODECS)
def test_connect_refused(codec: str) -> None:
    async def main() -> None:
        client = make_client(codec)
        handler = RecordingHandler()
        client.request(Origin("http", "127.0.0.1", closed_port()), b"GET", b"/", [], handler, True)
        await handler.wait()
        assert isinstance(handler.error, UpstreamConnectError)
        assert "refused" in handler.error.message
        assert "Traceback" not in handler.error.message
        assert handler.error.request_bytes_sent is False
        stats = client.stats()
        assert stats["connect_failures_total"] == 1
        assert stats["connections_open"] == stats["exchanges_pending"] == 0
        await client.close()

    run(main())


def test_dns_failure_is_a_connect_error() -> None:
    async def main() -> None:
        client = make_client()
        handler = RecordingHandler()
        # An empty label fails inside the resolver call itself: no query leaves the machine.
        client.request(Origin("http", "bad..name", 80), b"GET", b"/", [], handler, True)
        await handler.wait()
        assert isinstance(handler.error, UpstreamConnectError)
        assert "DNS lookup for bad..name failed" in handler.error.message
        assert client.stats()["connect_failures_total"] == 1
        await client.close()

    run(main())


def test_host_names_resolve_through_the_cache() -> None:
    async def main() -> None:
        async with ScriptedHttp1Server() as server:
            client = make_client()
            origin = Origin("http", "localhost", server.port)
            for _ in range(2):
                handler = RecordingHandler()
                client.request(origin, b"GET", b"/", [], handler, True)
                await handler.wait()
                assert handler.status == 200
            assert server.requests[0].header(b"host") == b"localhost:%d" % server.port
            assert client.stats()["dns_cache_entries"] == 1
            await client.close()

    run(main())


def test_connect_timeout() -> None:
    async def main() -> None:
        with unaccepting_listener() as port:
            client = make_client(connect_timeout_s=0.2)
            handlers = [RecordingHandler() for _ in range(3)]
            for handler in handlers:
                client.request(Origin("http", "127.0.0.1", port), b"GET", b"/", [], handler, True)
            for handler in handlers:
                await handler.wait()
                assert isinstance(handler.error, UpstreamTimeoutError)
                assert "connect" in handler.error.message
                assert handler.error.status == 504
            assert client.stats()["connections_connecting"] == 0
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_reset_mid_body(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server(reset_after(1000)) as server:
            client = make_client(codec)
            handler = RecordingHandler()
            client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.wait()
            assert handler.status == 200
            assert len(handler.body) == 1000
            assert isinstance(handler.error, UpstreamResetError)
            assert handler.error.request_bytes_sent is True
            assert handler.events[-1] == "error" and "end" not in handler.events
            assert client.stats()["connections_open"] == 0
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_garbage_response_is_a_protocol_error(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server(garbage()) as server:
            client = make_client(codec)
            handler = RecordingHandler()
            client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.wait()
            assert isinstance(handler.error, UpstreamProtocolError)
            assert handler.events == ["error"]
            assert client.stats()["connections_open"] == 0
            await eventually(lambda: server.open_connections == 0)
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_oversized_response_headers(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server(huge_header(8000)) as server:
            client = make_client(codec, max_response_header_bytes=4096)
            handler = RecordingHandler()
            client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.wait()
            assert isinstance(handler.error, UpstreamProtocolError)
            assert "4096" in handler.error.message
            assert handler.status is None
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_close_delimited_body_ends_at_eof(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server(close_delimited(b"until the end")) as server:
            client = make_client(codec)
            handler = RecordingHandler()
            client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.wait()
            assert (handler.body, handler.ended, handler.error) == (b"until the end", True, None)
            assert client.stats()["connections_open"] == 0
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_cancel_while_waiting_for_headers(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server(stall()) as server:
            client = make_client(codec)
            baseline_tasks = len(asyncio.all_tasks())
            handler = RecordingHandler()
            ex = client.request(server.origin(), b"POST", b"/", [], handler, False)
            ex.send_data(b"partial", False)
            # The body chunk reached the server: the exchange is bound and mid-request.
            await eventually(
                lambda: (
                    bool(server.connections)
                    and bytes(server.connections[0].body_received) == b"partial"
                )
            )
            ex.cancel()
            stats = client.stats()
            assert stats["connections_open"] == stats["exchanges_active"] == 0
            await eventually(lambda: server.open_connections == 0)
            await asyncio.sleep(0.02)
            assert handler.events == []
            assert len(asyncio.all_tasks()) <= baseline_tasks  # the connect task is gone
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_unasked_response_closes_the_connection(codec: str) -> None:
    async def main() -> None:
        async def answer_twice(request: ReceivedRequest, conn: ServerConnection) -> None:
            # One write, so both answers usually arrive in one read.
            conn.write(
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none"
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nextra"
            )
            await conn.drain()

        async with ScriptedHttp1Server(answer_twice) as server:
            client = make_client(codec, max_connections_per_origin=1)
            first, queued = RecordingHandler(), RecordingHandler()
            client.request(server.origin(), b"GET", b"/1", [], first, True)
            client.request(server.origin(), b"GET", b"/2", [], queued, True)
            await first.wait()
            await queued.wait()
            # The surplus answer must reach nobody, the waiter included: it gets its own.
            assert (first.body, first.error) == (b"one", None)
            assert (queued.body, queued.error) == (b"one", None)
            assert server.connections_accepted == 2
            await eventually(lambda: client.stats()["connections_open"] == 0)
            assert client.stats()["connections_idle"] == 0
            await client.close()

    run(main())
