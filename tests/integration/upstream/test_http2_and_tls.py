"""HTTP/2 (h2c prior knowledge and TLS with ALPN) and TLS verification of the upstream client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from proxy.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamResetError
from proxy.upstream.api import Exchange
from proxy.upstream.http2 import STREAM_WINDOW_BYTES
from tests.integration.upstream.helpers import CODECS, make_client
from tests.support.aio import LOOPS, LoopName, eventually, run
from tests.support.h1server import ScriptedHttp1Server, respond
from tests.support.h2server import H2ServerStream, ScriptedH2Server
from tests.support.handlers import RecordingHandler
from tests.support.tls import make_tls_ca


def h2_server(tmp_path: Path, tls: bool, **kwargs: object) -> ScriptedH2Server:
    ssl = make_tls_ca(tmp_path).server_context(["h2"]) if tls else None
    return ScriptedH2Server(ssl=ssl, **kwargs)  # type: ignore[arg-type]


def ca_file(tmp_path: Path) -> str:
    return str(tmp_path / "upstream-ca.pem")


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2-alpn"])
def test_fifty_concurrent_exchanges_share_one_connection(
    tmp_path: Path, tls: bool, loop: LoopName
) -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def responder(stream: H2ServerStream) -> None:
            await gate.wait()  # all 50 are open at once before anyone answers
            await stream.respond(200, [(b"x-path", stream.request.path)], stream.request.body)

        async with h2_server(tmp_path, tls, responder=responder) as server:
            origin = server.origin(ca_file=ca_file(tmp_path)) if tls else server.origin()
            client = make_client()
            handlers = [RecordingHandler() for _ in range(50)]
            for i, handler in enumerate(handlers):
                ex = client.request(origin, b"POST", b"/%d" % i, [(b"a", b"b")], handler, False)
                ex.send_data(b"body %d" % i, True)
            await eventually(lambda: len(server.requests) == 50)
            assert client.stats()["exchanges_active"] == 50
            gate.set()
            for i, handler in enumerate(handlers):
                await handler.wait()
                assert (handler.status, handler.body) == (200, b"body %d" % i)
                assert handler.header(b"x-path") == b"/%d" % i
            assert server.connections_accepted == 1
            request = server.requests[0]
            assert request.scheme == (b"https" if tls else b"http")
            assert request.authority == b"127.0.0.1:%d" % server.port
            assert request.header(b"a") == b"b"
            stats = client.stats()
            assert stats["connects_total"] == 1
            assert stats["exchanges_active"] == 0 and stats["connections_idle"] == 1
            await client.close()

    run(main(), loop=loop)


def test_stream_limit_queues_the_rest(tmp_path: Path) -> None:
    async def main() -> None:
        async with h2_server(tmp_path, False, max_concurrent_streams=5) as server:
            client = make_client(max_connections_per_origin=1)
            handlers = [RecordingHandler() for _ in range(20)]
            for i, handler in enumerate(handlers):
                client.request(server.origin(), b"GET", b"/%d" % i, [], handler, True)
            for i, handler in enumerate(handlers):
                await handler.wait()
                assert handler.body == b"ok /%d" % i
            assert server.connections_accepted == 1
            await client.close()

    run(main())


def test_rst_stream_fails_only_that_exchange(tmp_path: Path) -> None:
    async def main() -> None:
        async def responder(stream: H2ServerStream) -> None:
            if stream.request.path == b"/bad":
                stream.reset(2)  # INTERNAL_ERROR
            else:
                await stream.respond(200, [], b"fine")

        async with h2_server(tmp_path, False, responder=responder) as server:
            client = make_client()
            good, bad, good2 = RecordingHandler(), RecordingHandler(), RecordingHandler()
            client.request(server.origin(), b"GET", b"/good", [], good, True)
            client.request(server.origin(), b"GET", b"/bad", [], bad, True)
            client.request(server.origin(), b"GET", b"/good2", [], good2, True)
            await asyncio.gather(good.wait(), bad.wait(), good2.wait())
            assert isinstance(bad.error, UpstreamResetError)
            assert "INTERNAL_ERROR" in bad.error.message
            assert bad.error.request_bytes_sent is True
            assert good.body == good2.body == b"fine"
            again = RecordingHandler()
            client.request(server.origin(), b"GET", b"/again", [], again, True)
            await again.wait()
            assert again.body == b"fine"
            assert server.connections_accepted == 1
            await client.close()

    run(main())


def test_goaway_finishes_old_streams_and_fails_new_ones(tmp_path: Path) -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def responder(stream: H2ServerStream) -> None:
            await gate.wait()
            await stream.respond(200, [], b"done " + stream.request.path)

        async with h2_server(tmp_path, False, responder=responder) as server:
            client = make_client()
            handlers = [RecordingHandler() for _ in range(3)]  # streams 1, 3, 5
            for i, handler in enumerate(handlers):
                client.request(server.origin(), b"GET", b"/%d" % i, [], handler, True)
            await eventually(lambda: len(server.requests) == 3)
            server.goaway(last_stream_id=1)
            await asyncio.gather(handlers[1].wait(), handlers[2].wait())
            for handler in handlers[1:]:
                assert isinstance(handler.error, UpstreamResetError)
                assert handler.error.request_bytes_sent is False
            assert not handlers[0].done.done()
            # The old connection takes no new stream: this one dials a second connection.
            late = RecordingHandler()
            client.request(server.origin(), b"GET", b"/late", [], late, True)
            gate.set()
            await handlers[0].wait()
            assert handlers[0].body == b"done /0"
            await late.wait()
            assert late.body == b"done /late"
            assert server.connections_accepted == 2
            await eventually(lambda: client.stats()["connections_open"] == 1)
            await client.close()

    run(main())


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2-alpn"])
def test_paused_stream_keeps_its_window_shut(tmp_path: Path, tls: bool) -> None:
    total = 3 * STREAM_WINDOW_BYTES

    async def main() -> None:
        streams: list[H2ServerStream] = []

        async def responder(stream: H2ServerStream) -> None:
            streams.append(stream)
            stream.send_headers(200)
            await stream.send_data(b"z" * total, end=True)

        async with h2_server(tmp_path, tls, responder=responder) as server:
            origin = server.origin(ca_file=ca_file(tmp_path)) if tls else server.origin()
            client = make_client()
            exchange: list[Exchange] = []
            handler = RecordingHandler(lambda _: None)
            exchange.append(client.request(origin, b"GET", b"/big", [], handler, True))
            exchange[0].pause_reading()
            await eventually(lambda: bool(streams) and streams[0].waiting_for_window)
            stream = streams[0]
            assert stream.bytes_sent == STREAM_WINDOW_BYTES
            await asyncio.sleep(0.1)
            assert stream.window() == 0 and stream.bytes_sent == STREAM_WINDOW_BYTES
            assert len(handler.body) == STREAM_WINDOW_BYTES
            # Another stream on the same connection is not starved by the paused one.
            other = RecordingHandler()

            async def small(s: H2ServerStream) -> None:
                await s.respond(200, [], b"small")

            server.responder = small
            client.request(origin, b"GET", b"/small", [], other, True)
            await other.wait()
            assert other.body == b"small"
            exchange[0].resume_reading()
            await handler.wait(timeout=10)
            assert len(handler.body) == total
            assert server.connections_accepted == 1
            await client.close()

    run(main())


def test_cancel_sends_rst_and_keeps_the_connection(tmp_path: Path) -> None:
    async def main() -> None:
        async def responder(stream: H2ServerStream) -> None:
            stream.send_headers(200)
            await stream.send_data(b"first")
            await stream.reset_received.wait()

        async with h2_server(tmp_path, False, responder=responder) as server:
            client = make_client()
            handler = RecordingHandler()
            ex = client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.data_seen.wait()
            ex.cancel()
            stats = client.stats()
            assert stats["exchanges_active"] == 0 and stats["connections_open"] == 1
            await eventually(lambda: server.resets_received == [1])
            assert handler.events == ["headers", "data"]

            async def ok(s: H2ServerStream) -> None:
                await s.respond(200, [], b"ok")

            server.responder = ok
            again = RecordingHandler()
            client.request(server.origin(), b"GET", b"/", [], again, True)
            await again.wait()
            assert again.body == b"ok" and server.connections_accepted == 1
            await client.close()

    run(main())


def test_request_body_waits_for_the_server_window(tmp_path: Path) -> None:
    async def main() -> None:
        async def responder(stream: H2ServerStream) -> None:
            await stream.respond(200, [], b"%d" % len(stream.request.body))

        async with h2_server(tmp_path, False, responder=responder) as server:
            server.initial_window_size = 1000
            client = make_client()
            handler = RecordingHandler()
            ex = client.request(server.origin(), b"POST", b"/", [], handler, False)
            await eventually(lambda: bool(server.connections))
            await asyncio.sleep(0.05)
            ex.send_data(b"q" * 50_000, False)
            assert ex.write_blocked  # 50 kB cannot fit a 1000-byte window
            await eventually(lambda: handler.writable_calls > 0)
            assert not ex.write_blocked
            ex.send_data(b"", True)
            await handler.wait()
            assert handler.body == b"50000"
            await client.close()

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("codec", CODECS)
def test_https_with_ca_file_and_verification_failure(
    tmp_path: Path, codec: str, loop: LoopName
) -> None:
    async def main() -> None:
        ca = make_tls_ca(tmp_path)
        server = ScriptedHttp1Server(respond(200, body=b"secure"), ssl=ca.server_context())
        async with server:
            client = make_client(codec)
            handler = RecordingHandler()
            client.request(server.origin(ca_file=ca.ca_file), b"GET", b"/", [], handler, True)
            await handler.wait()
            assert (handler.status, handler.body) == (200, b"secure")
            # SNI name differs from the address: verification uses it.
            handler = RecordingHandler()
            origin = server.origin(ca_file=ca.ca_file, sni="localhost")
            client.request(origin, b"GET", b"/", [], handler, True)
            await handler.wait()
            assert handler.body == b"secure"
            untrusted = RecordingHandler()
            client.request(server.origin(), b"GET", b"/", [], untrusted, True)
            await untrusted.wait()
            assert isinstance(untrusted.error, UpstreamConnectError)
            assert "certificate verify failed" in untrusted.error.message
            assert client.stats()["connect_failures_total"] == 1
            await client.close()

    run(main(), loop=loop)


def test_h2_required_but_server_speaks_http1(tmp_path: Path) -> None:
    async def main() -> None:
        ca = make_tls_ca(tmp_path)
        async with ScriptedHttp1Server(ssl=ca.server_context(["http/1.1"])) as server:
            client = make_client()
            handler = RecordingHandler()
            origin = server.origin("h2", ca_file=ca.ca_file)
            client.request(origin, b"GET", b"/", [], handler, True)
            await handler.wait()
            assert isinstance(handler.error, UpstreamConnectError)
            assert "HTTP/2" in handler.error.message
            # "auto" falls back to HTTP/1.1 through ALPN; concurrent requests made while the
            # first connection negotiated get connections of their own once ALPN said http/1.1.
            handlers = [RecordingHandler() for _ in range(4)]
            for handler in handlers:
                client.request(server.origin(ca_file=ca.ca_file), b"GET", b"/", [], handler, True)
            for handler in handlers:
                await handler.wait()
                assert handler.body == b"ok"
            assert 2 <= server.connections_accepted <= 5
            await client.close()

    run(main())


def test_h2c_to_an_http1_server_is_a_protocol_error() -> None:
    async def main() -> None:
        async with ScriptedHttp1Server() as server:
            client = make_client()
            handlers = [RecordingHandler() for _ in range(3)]
            for handler in handlers:
                client.request(server.origin("h2c"), b"GET", b"/", [], handler, True)
            for handler in handlers:
                await handler.wait()
                assert isinstance(handler.error, UpstreamProtocolError)
            stats = client.stats()
            assert stats["connections_open"] == stats["exchanges_pending"] == 0
            assert server.connections_accepted == 1  # the waiters shared one h2 connect
            await client.close()

    run(main())


def test_h2_oversized_response_headers(tmp_path: Path) -> None:
    async def main() -> None:
        async def responder(stream: H2ServerStream) -> None:
            await stream.respond(200, [(b"x-huge", b"h" * 8000)], b"body")

        async with h2_server(tmp_path, False, responder=responder) as server:
            client = make_client(max_response_header_bytes=4096)
            handler = RecordingHandler()
            client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.wait()
            assert isinstance(handler.error, UpstreamProtocolError)
            assert handler.status is None
            await client.close()

    run(main())
