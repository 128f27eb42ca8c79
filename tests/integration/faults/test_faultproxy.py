"""The fault proxy itself, against a tiny upstream: each behaviour does what it says, the
records are right, and stopping it leaves nothing running."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from tests.support.aio import eventually, run, wait
from tests.support.faultproxy import Fault, FaultProxy, FullBacklog, closed_port

BLOB = bytes(range(256)) * 8  # 2 KiB the upstream sends when asked


async def _upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echoes what it reads, prefixed; b"blob" asks for BLOB."""
    try:
        while data := await reader.read(65536):
            writer.write(BLOB if data == b"blob" else b"echo:" + data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@asynccontextmanager
async def rig(fault: Fault) -> AsyncIterator[tuple[FaultProxy, list[int]]]:
    """A proxy with ``fault`` in front of `_upstream`; yields it and the upstream's accepts."""
    accepted: list[int] = []
    handlers: set[asyncio.Task[None]] = set()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        accepted.append(1)
        await _upstream(reader, writer)
        handlers.discard(task)

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    proxy = FaultProxy(server.sockets[0].getsockname()[1])
    proxy.default = fault
    await proxy.start()
    try:
        yield proxy, accepted
    finally:
        await proxy.stop()
        assert not proxy.tasks
        server.close()
        for t in handlers:
            t.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    out = b""
    while chunk := await reader.read(65536):
        out += chunk
    return out


def go(body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await body()

    run(main(), timeout=10)


def test_pass_forwards_both_ways_and_records_who_closed() -> None:
    async def body() -> None:
        async with rig(Fault()) as (proxy, accepted):
            reader, writer = await _connect(proxy)
            writer.write(b"hello")
            assert await wait(reader.readexactly(10)) == b"echo:hello"
            writer.close()
            conn = proxy.connections[0]
            assert await conn.wait_closed(1.0) == "client"
            assert (conn.bytes_up, conn.bytes_down, len(accepted)) == (5, 10, 1)
            assert proxy.open_connections == 0 and proxy.server_connections == 1

    go(body)


def test_refuse_resets_at_accept_and_never_connects_upstream() -> None:
    async def body() -> None:
        async with rig(Fault("refuse")) as (proxy, accepted):
            reader, writer = await _connect(proxy)
            with pytest.raises(ConnectionResetError):
                await wait(reader.read(10))
            writer.close()
            assert await proxy.connections[0].wait_closed(1.0) == "fault"
            assert accepted == [] and proxy.server_connections == 0

    go(body)


def test_blackhole_accepts_and_never_answers() -> None:
    async def body() -> None:
        async with rig(Fault("blackhole")) as (proxy, accepted):
            reader, writer = await _connect(proxy)
            writer.write(b"anyone?")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(10), 0.2)
            writer.close()
            assert await proxy.connections[0].wait_closed(1.0) == "client"
            assert accepted == []

    go(body)


@pytest.mark.parametrize("rst", [True, False], ids=["rst", "fin"])
def test_cut_forwards_exactly_n_bytes_down_then_closes(rst: bool) -> None:
    async def body() -> None:
        async with rig(Fault("cut", after_bytes=700, rst=rst)) as (proxy, _):
            reader, writer = await _connect(proxy)
            writer.write(b"blob")
            got = b""
            try:
                while chunk := await wait(reader.read(65536)):
                    got += chunk
                reset = False
            except ConnectionResetError:
                reset = True
            assert got == BLOB[:700] and reset is rst
            assert await proxy.connections[0].wait_closed(1.0) == "fault"
            writer.close()

    go(body)


def test_stall_forwards_n_bytes_then_holds_until_the_client_leaves() -> None:
    async def body() -> None:
        async with rig(Fault("stall", after_bytes=300)) as (proxy, _):
            reader, writer = await _connect(proxy)
            writer.write(b"blob")
            assert await wait(reader.readexactly(300)) == BLOB[:300]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(1), 0.2)
            writer.close()
            conn = proxy.connections[0]
            assert await conn.wait_closed(1.0) == "client"
            assert conn.bytes_down == 300

    go(body)


def test_latency_and_throttle_slow_the_way_down() -> None:
    async def body() -> None:
        async with rig(Fault(latency_down_s=0.2, down_bytes_per_s=8192)) as (proxy, _):
            reader, writer = await _connect(proxy)
            loop = asyncio.get_running_loop()
            started = loop.time()
            writer.write(b"blob")
            assert await wait(reader.readexactly(len(BLOB))) == BLOB
            # 0.2 s latency plus 2 KiB at 8 KiB/s
            assert loop.time() - started >= 0.2 + 0.2
            writer.close()

    go(body)


def test_a_live_connections_fault_can_be_switched() -> None:
    async def body() -> None:
        async with rig(Fault()) as (proxy, _):
            reader, writer = await _connect(proxy)
            writer.write(b"one")
            assert await wait(reader.readexactly(8)) == b"echo:one"
            conn = proxy.connections[0]
            conn.fault = Fault(cut_up_after_bytes=conn.bytes_up)  # the next bytes up: reset
            writer.write(b"two")
            with pytest.raises(ConnectionResetError):
                await wait(_read_all(reader))
            assert await conn.wait_closed(1.0) == "fault"
            assert conn.bytes_up == 3  # "two" never reached the upstream
            writer.close()

    go(body)


def test_scripted_faults_apply_in_order_then_the_default() -> None:
    async def body() -> None:
        async with rig(Fault()) as (proxy, _):
            proxy.script(Fault("refuse"))
            first_r, first_w = await _connect(proxy)
            with pytest.raises(ConnectionResetError):
                await wait(first_r.read(10))
            second_r, second_w = await _connect(proxy)
            second_w.write(b"x")
            assert await wait(second_r.readexactly(6)) == b"echo:x"
            assert [c.fault.mode for c in proxy.connections] == ["refuse", "pass"]
            first_w.close()
            second_w.close()

    go(body)


def test_stop_closes_every_connection_and_task() -> None:
    async def body() -> None:
        async with rig(Fault("stall")) as (proxy, _):
            conns = [await _connect(proxy) for _ in range(3)]
            await eventually(lambda: proxy.open_connections == 3)
            for _, writer in conns:
                writer.write(b"blob")
            await asyncio.sleep(0.05)
            await proxy.stop()
            assert not proxy.tasks
            assert {c.closed_by for c in proxy.connections} == {"stop"}
            for reader, writer in conns:
                with pytest.raises(ConnectionResetError):
                    await wait(_read_all(reader))
                writer.close()

    go(body)


def test_closed_port_refuses_and_full_backlog_times_out() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", closed_port()), timeout=1).close()
    backlog = FullBacklog()
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            socket.create_connection(("127.0.0.1", backlog.port), timeout=0.2).close()
        assert time.monotonic() - started >= 0.2
    finally:
        backlog.close()
