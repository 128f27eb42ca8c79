"""Keep-alive pooling of the upstream client over HTTP/1.1, against a real loopback server."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from proxy.errors import UpstreamConnectError, UpstreamOverflowError
from proxy.upstream.api import Origin
from proxy.upstream.http1 import URGENT_WRITE_MAX_IDLE_S
from tests.integration.upstream.helpers import CODECS, FakeClock, make_client
from tests.support.aio import LOOPS, LoopName, eventually, run
from tests.support.h1server import (
    ReceivedRequest,
    ScriptedHttp1Server,
    ServerConnection,
    echo,
    respond,
)
from tests.support.handlers import RecordingHandler


@pytest.mark.parametrize("codec", CODECS)
def test_sequential_requests_reuse_one_connection(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server(respond(200, [(b"x-n", b"1")], b"pong")) as server:
            client = make_client(codec)
            for i in range(100):
                handler = RecordingHandler()
                client.request(server.origin(), b"GET", b"/ping/%d" % i, [], handler, True)
                await handler.wait()
                assert (handler.status, handler.body, handler.error) == (200, b"pong", None)
                assert handler.header(b"x-n") == b"1"
            stats = client.stats()
            assert server.connections_accepted == 1
            assert len(server.requests) == 100
            assert server.requests[57].path == b"/ping/57"
            assert server.requests[0].header(b"host") == b"127.0.0.1:%d" % server.port
            assert stats["connects_total"] == 1
            assert stats["reuses_total"] == 99
            assert stats["connections_idle"] == 1
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_pool_limit_queue_and_overflow(codec: str) -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def gated(request: ReceivedRequest, conn: ServerConnection) -> None:
            await gate.wait()
            await conn.send_response(200, [], request.path)

        async with ScriptedHttp1Server(gated) as server:
            client = make_client(codec, max_connections_per_origin=2, max_pending_requests=2)
            handlers = [RecordingHandler() for _ in range(4)]
            for i, handler in enumerate(handlers):
                client.request(server.origin(), b"GET", b"/%d" % i, [], handler, True)
            assert client.stats()["exchanges_pending"] == 4  # nothing connected yet
            with pytest.raises(UpstreamOverflowError) as info:
                client.request(server.origin(), b"GET", b"/x", [], RecordingHandler(), True)
            assert info.value.status == 503
            assert client.stats()["overflows_total"] == 1
            await eventually(lambda: len(server.requests) == 2)
            assert client.stats()["exchanges_pending"] == 2
            gate.set()
            for i, handler in enumerate(handlers):
                await handler.wait()
                assert (handler.status, handler.body) == (200, b"/%d" % i)
            assert server.connections_accepted == 2
            assert client.stats()["connections_idle"] == 2
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_queued_exchange_cancel_leaves_queue(codec: str) -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def gated(request: ReceivedRequest, conn: ServerConnection) -> None:
            await gate.wait()
            await conn.send_response(200, [], b"done")

        async with ScriptedHttp1Server(gated) as server:
            client = make_client(codec, max_connections_per_origin=1)
            first, queued = RecordingHandler(), RecordingHandler()
            client.request(server.origin(), b"GET", b"/1", [], first, True)
            ex = client.request(server.origin(), b"GET", b"/2", [], queued, True)
            assert client.stats()["exchanges_pending"] == 2
            ex.cancel()
            assert client.stats()["exchanges_pending"] == 1
            gate.set()
            await first.wait()
            await asyncio.sleep(0.05)
            assert queued.events == []
            assert len(server.requests) == 1
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_idle_connection_expires_on_the_injected_clock(codec: str) -> None:
    async def main() -> None:
        clock = FakeClock()
        async with ScriptedHttp1Server() as server:
            client = make_client(codec, clock, idle_timeout_s=30.0)
            handler = RecordingHandler()
            client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.wait()
            assert client.stats()["connections_idle"] == 1
            clock.advance(29.0)
            await asyncio.sleep(0.05)  # several sweeps run; none may expire it yet
            assert client.stats()["connections_open"] == 1
            clock.advance(2.0)
            await eventually(lambda: client.stats()["connections_open"] == 0)
            await eventually(lambda: server.open_connections == 0)
            handler = RecordingHandler()
            client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.wait()
            assert handler.status == 200
            assert server.connections_accepted == 2
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_idle_connections_expire_oldest_first_and_the_newest_is_reused(codec: str) -> None:
    async def main() -> None:
        clock = FakeClock()
        async with ScriptedHttp1Server() as server:
            client = make_client(codec, clock, idle_timeout_s=30.0)
            handlers = [RecordingHandler() for _ in range(3)]
            for handler in handlers:
                client.request(server.origin(), b"GET", b"/", [], handler, True)
            for handler in handlers:
                await handler.wait()
            assert client.stats()["connections_idle"] == 3
            clock.advance(20.0)
            handler = RecordingHandler()  # takes one of the three; it is the newest after
            client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.wait()
            assert server.connections_accepted == 3
            clock.advance(15.0)  # the two left idle since the start are past 30 s, it is not
            await eventually(lambda: client.stats()["connections_open"] == 1)
            await eventually(lambda: server.open_connections == 1)
            assert client.stats()["connections_idle"] == 1
            handler = RecordingHandler()
            client.request(server.origin(), b"GET", b"/", [], handler, True)
            await handler.wait()
            assert server.connections_accepted == 3  # the survivor served it
            clock.advance(31.0)
            await eventually(lambda: client.stats()["connections_open"] == 0)
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_connection_closed_by_server_while_idle_is_dropped(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server(max_requests_per_connection=1) as server:
            client = make_client(codec)
            for _ in range(3):
                handler = RecordingHandler()
                client.request(server.origin(), b"GET", b"/", [], handler, True)
                await handler.wait()
                assert handler.status == 200
                # The loop reports the server's FIN; the idle connection must leave the pool.
                await eventually(lambda: client.stats()["connections_open"] == 0)
            assert server.connections_accepted == 3
            assert client.stats()["connects_total"] == 3
            await client.close()

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("urgent", [False, True])
def test_reset_idle_connection_is_retried_on_a_fresh_one(
    codec: str, loop: LoopName, urgent: bool
) -> None:
    """Batched, the write fails at the end of the iteration; urgent, it fails inside
    `request` itself. Either way nothing was sent and the request goes to a fresh connection."""

    async def main() -> None:
        async with ScriptedHttp1Server(echo()) as server:
            client = make_client(codec)
            handler = RecordingHandler()
            client.request(server.origin(), b"GET", b"/a", [], handler, True)
            await handler.wait()
            server.abort_connections(rst=True)
            await asyncio.sleep(0)  # the RST is on the wire; the client's loop has not read it
            handler = RecordingHandler()
            client.request(server.origin(), b"POST", b"/b", [], handler, True, urgent=urgent)
            await handler.wait()
            assert (handler.status, handler.error) == (200, None)
            stats = client.stats()
            assert stats["connects_total"] == 2
            assert stats["stale_retries_total"] == 1
            assert [r.path for r in server.requests] == [b"/a", b"/b"]
            await client.close()

    run(main(), loop=loop)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("server_sends", ["fin", "stray response"])
@pytest.mark.parametrize("urgent", [False, True])
def test_a_request_bound_as_its_idle_connection_dies_goes_to_a_fresh_one(
    codec: str, server_sends: str, urgent: bool
) -> None:
    """The request is bound to an idle connection in the loop iteration whose poll also brings
    that connection's close (or bytes nobody asked for). Its bytes are only written at the end
    of the iteration, so none reached the server: it must go to a fresh connection, not fail
    as if sent (FIN) nor take the stray bytes for its answer. The stock loop runs the ready
    descriptors' callbacks in the order they became readable, which lets the test put the
    request's trigger first; uvloop ran the connection's end first here whatever the order,
    which takes the ordinary path (the dead connection leaves the pool before the request).
    An urgent request waits for the batch too once its connection has been idle longer than
    URGENT_WRITE_MAX_IDLE_S."""

    async def main() -> None:
        clock = FakeClock()
        async with ScriptedHttp1Server(echo()) as server:
            client = make_client(codec, clock)
            first = RecordingHandler()
            client.request(server.origin(), b"GET", b"/a", [], first, True)
            await first.wait()
            clock.advance(URGENT_WRITE_MAX_IDLE_S + 0.5)
            ev_loop = asyncio.get_running_loop()
            trigger, poke = socket.socketpair()
            trigger.setblocking(False)
            second = RecordingHandler()

            def on_trigger() -> None:  # an I/O callback, like a client's request arriving
                ev_loop.remove_reader(trigger.fileno())
                trigger.recv(1)
                client.request(
                    server.origin(), b"POST", b"/b", [], second, True, b"hello", urgent=urgent
                )

            ev_loop.add_reader(trigger.fileno(), on_trigger)
            # A duplicate of the server's socket: the same connection, acted on at once, out of
            # sight of the server's transport (which has nothing left to write on it).
            fd = server.connections[0].writer.transport.get_extra_info("socket").fileno()
            stale = socket.socket(fileno=os.dup(fd))
            try:
                # Readable in this order: the trigger first, then the pooled connection; the
                # sleep keeps the loop from polling until both are on the wire.
                poke.send(b"x")
                if server_sends == "fin":
                    stale.shutdown(socket.SHUT_WR)
                else:
                    stale.send(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstray")
                time.sleep(0.05)
                await second.wait()
            finally:
                trigger.close()
                poke.close()
                stale.close()
            assert (second.status, second.error) == (200, None)
            assert second.body == b"hello" and second.header(b"x-path") == b"/b"
            stats = client.stats()
            assert stats["connects_total"] == 2 and stats["stale_retries_total"] == 1
            assert [r.path for r in server.requests] == [b"/a", b"/b"]  # sent once
            await client.close()

    run(main(), loop="asyncio")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("loop", LOOPS)
def test_urgent_requests_are_written_at_once_the_others_with_the_batch(
    codec: str, loop: LoopName
) -> None:
    """What the provider can read while the loop is still in the callback that made the
    request: nothing of a batched request, all of an urgent one on a connection that answered
    within URGENT_WRITE_MAX_IDLE_S (or is new); once it has been idle longer, only the batch
    writes it."""

    async def main() -> None:
        clock = FakeClock()
        async with ScriptedHttp1Server(echo()) as server:
            client = make_client(codec, clock)
            seen: list[bytes] = []

            async def one(path: bytes, urgent: bool) -> None:
                handler = RecordingHandler()
                # The server's end of the pooled connection, read behind its transport's back
                # (it only peeks: the server still reads the request itself).
                fd = server.connections[0].writer.transport.get_extra_info("socket").fileno()
                with socket.socket(fileno=os.dup(fd)) as sock:
                    client.request(server.origin(), b"POST", path, [], handler, True, b"x", urgent)
                    try:
                        seen.append(sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT))
                    except BlockingIOError:
                        seen.append(b"")
                await handler.wait()
                assert (handler.status, handler.header(b"x-path")) == (200, path)

            first = RecordingHandler()
            client.request(server.origin(), b"GET", b"/warm", [], first, True, urgent=True)
            await first.wait()
            await one(b"/batched", False)
            await one(b"/urgent", True)
            clock.advance(URGENT_WRITE_MAX_IDLE_S + 0.5)
            await one(b"/urgent-after-idle", True)
            assert [s.split(b" ")[1] if s else b"" for s in seen] == [b"", b"/urgent", b""]
            assert client.stats()["connects_total"] == 1
            await client.close()

    run(main(), loop=loop)


@pytest.mark.parametrize("codec", CODECS)
def test_connection_close_response_is_not_reused(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server(respond(200, body=b"bye", close=True)) as server:
            client = make_client(codec)
            for _ in range(2):
                handler = RecordingHandler()
                client.request(server.origin(), b"GET", b"/", [], handler, True)
                await handler.wait()
                assert handler.body == b"bye"
                assert client.stats()["connections_open"] == 0
            assert server.connections_accepted == 2
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    ("response", "reused"),
    [
        (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok", True),
        (b"HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 2\r\n\r\nok", False),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\no\r\n1\r\nk\r\n0\r\n\r\n",
            True,
        ),
    ],
    ids=["http1.0", "http1.0-keep-alive", "close", "chunked"],
)
def test_keep_alive_follows_the_response(codec: str, response: bytes, reused: bool) -> None:
    if codec == "h11" and response.startswith(b"HTTP/1.0"):
        reused = False  # h11 never keeps an HTTP/1.0 connection alive: safe, just slower

    async def main() -> None:
        async def raw(request: ReceivedRequest, conn: ServerConnection) -> None:
            conn.write(response)
            await conn.drain()

        async with ScriptedHttp1Server(raw) as server:
            client = make_client(codec)
            for _ in range(2):
                handler = RecordingHandler()
                client.request(server.origin(), b"GET", b"/", [], handler, True)
                await handler.wait()
                assert (handler.body, handler.ended) == (b"ok", True)
                assert client.stats()["connections_idle"] == (1 if reused else 0)
            assert server.connections_accepted == (1 if reused else 2)
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_head_response_without_body_keeps_connection(codec: str) -> None:
    async def main() -> None:
        async def head_aware(request: ReceivedRequest, conn: ServerConnection) -> None:
            if request.method == b"HEAD":
                conn.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
            else:
                conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                conn.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            await conn.drain()

        async with ScriptedHttp1Server(head_aware) as server:
            client = make_client(codec)
            for method in (b"HEAD", b"GET", b"HEAD", b"GET"):
                handler = RecordingHandler()
                client.request(server.origin(), method, b"/", [], handler, True)
                await handler.wait()
                assert handler.status == 200
                assert handler.body == (b"" if method == b"HEAD" else b"hello")
                assert handler.events[0] == "headers"  # the 100 was skipped
            assert server.connections_accepted == 1
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_request_framing(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server(echo()) as server:
            client = make_client(codec)
            cases = [
                (b"POST", [], True, None),
                (b"GET", [], True, None),
                (b"PUT", [(b"content-length", b"3")], False, b"abc"),
            ]
            for method, headers, end, body in cases:
                handler = RecordingHandler()
                ex = client.request(server.origin(), method, b"/f", headers, handler, end)
                if body is not None:
                    ex.send_data(body, True)
                await handler.wait()
                assert handler.status == 200
            post, get, put = server.requests
            assert post.header(b"content-length") == b"0"
            assert get.header(b"content-length") is None
            assert get.header(b"transfer-encoding") is None
            assert put.header(b"content-length") == b"3"
            assert put.header(b"transfer-encoding") is None
            assert put.body == b"abc"
            await client.close()

    run(main())


@pytest.mark.parametrize("codec", CODECS)
def test_request_head_injection_is_refused(codec: str) -> None:
    async def main() -> None:
        async with ScriptedHttp1Server() as server:
            client = make_client(codec)
            handler = RecordingHandler()
            headers = [(b"x-evil", b"a\r\nGET /smuggled HTTP/1.1")]
            client.request(server.origin(), b"GET", b"/", headers, handler, True)
            assert handler.events == []  # never called inside request()
            await handler.wait()
            assert handler.error is not None
            assert handler.error.status == 502
            await asyncio.sleep(0.05)
            assert server.requests == []
            await client.close()

    run(main())


def test_close_fails_queued_exchanges_and_is_idempotent() -> None:
    async def main() -> None:
        # A listening socket that never answers keeps the connect pending... use a stall
        # server instead: connected but queued behind a stalled exchange.
        gate = asyncio.Event()

        async def gated(request: ReceivedRequest, conn: ServerConnection) -> None:
            await gate.wait()

        async with ScriptedHttp1Server(gated) as server:
            client = make_client(max_connections_per_origin=1)
            active, queued = RecordingHandler(), RecordingHandler()
            client.request(server.origin(), b"GET", b"/1", [], active, True)
            client.request(server.origin(), b"GET", b"/2", [], queued, True)
            await eventually(lambda: len(server.requests) == 1)
            await client.close()
            await client.close()
            assert isinstance(queued.error, UpstreamConnectError)
            assert "closed" in queued.error.message
            assert active.error is not None and active.error.request_bytes_sent
            assert client.stats()["connections_open"] == 0
            late = RecordingHandler()
            client.request(Origin("http", "127.0.0.1", server.port), b"GET", b"/", [], late, True)
            await late.wait()
            assert isinstance(late.error, UpstreamConnectError)

    run(main())
