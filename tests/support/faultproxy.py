"""A fault-injecting TCP proxy on loopback, between Junction and an upstream (toxiproxy's job).

Usage (on the loop that runs Junction, e.g. the test's LoopThread)::

    proxy = await FaultProxy(upstream_port).start()
    proxy.default = Fault("stall", after_bytes=300)     # every new connection from now on
    proxy.script(Fault("refuse"), Fault())              # the next two connections, in order
    ... point Junction at 127.0.0.1:<proxy.port> ...
    conn = proxy.connections[0]
    await conn.wait_closed(1.0)
    assert conn.closed_by == "client" and conn.bytes_down == 300
    await proxy.stop()

Words: the *client* is whoever connects to the proxy (Junction), the *server* is the upstream
behind it. *Up* is client -> server, *down* is server -> client.

How it works: asyncio streams; one handler task per accepted connection. A connection's
behaviour (a `Fault`) is chosen when it is accepted — the next scripted one, else ``default``
— and a test may replace it while the connection lives (``proxy.connections[i].fault = ...``:
the writers read it per chunk, so e.g. a pooled connection's *next* answer can be cut).
``refuse`` resets the accepted connection at once; ``blackhole`` accepts, reads and discards,
and never answers (nor connects upstream). Every other mode connects to the server and runs two
directions, each a reader task and a writer linked by a bounded queue (so a slow side still
pushes back): the reader stamps each chunk with the time it may leave (``latency_*_s``), the
writer waits for that time, throttles (``down_bytes_per_s``) and, going down, applies ``cut``
(forward exactly ``after_bytes``, then close with a TCP reset or a FIN) or ``stall`` (forward
``after_bytes``, then hold everything back). Whichever side ends first ends the connection:
a FIN is mirrored as a FIN once what was queued is written, a reset as a reset. (HTTP clients
and servers do not half-close, so a half-close is not kept open.) Each connection records its
bytes each way and who closed it. ``stop()`` closes the listener, resets every connection and
awaits every task it started, so a test's leak check sees nothing of it.

Two helpers cover what a proxy in the path cannot: `closed_port` (a real ECONNREFUSED) and
`FullBacklog` (a listener whose accept queue is full, so a connect attempt gets no SYN-ACK and
times out — 10.255.255.1 is no blackhole in this sandbox: connects there succeed at once).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

T = TypeVar("T")
Mode = Literal["pass", "refuse", "blackhole", "cut", "stall"]
ClosedBy = Literal["client", "server", "fault", "stop"]

CHUNK_BYTES: Final = 64 * 1024  # one read
QUEUE_CHUNKS: Final = 16  # chunks read ahead of a delayed or throttled writer, per direction
THROTTLE_TICK_S: Final = 0.02  # a throttled writer sends a slice this often


@dataclass(frozen=True)
class Fault:
    """What the proxy does to one connection.

    ``mode``: ``pass`` (forward, shaped by the latency/throttle knobs), ``refuse`` (accept,
    then reset at once), ``blackhole`` (accept, never answer, never connect upstream),
    ``cut`` (forward ``after_bytes`` down, then close: reset when ``rst``, else FIN) or
    ``stall`` (forward ``after_bytes`` down, then nothing more down until the client leaves).
    A live connection's ``fault`` may be replaced; it applies from the next chunk (latencies
    excepted: they are stamped as chunks are read).
    """

    mode: Mode = "pass"
    after_bytes: int = 0
    rst: bool = True
    latency_up_s: float = 0.0  # added to each chunk client -> server
    latency_down_s: float = 0.0  # added to each chunk server -> client
    down_bytes_per_s: float | None = None  # bandwidth cap server -> client
    # Reset both sides once more than this many bytes would have gone up (the chunk crossing
    # the mark is dropped whole): a server that dropped an idle keep-alive connection as the
    # next request crossed its FIN, so the request was never read.
    cut_up_after_bytes: int | None = None


@dataclass(frozen=True)
class _End:
    """How a direction ended: which side (or the fault) ended it, and whether by reset."""

    by: ClosedBy
    rst: bool


@dataclass
class ProxiedConnection:
    index: int
    fault: Fault
    server_connected: bool = False
    bytes_up: int = 0  # forwarded client -> server
    bytes_down: int = 0  # forwarded server -> client
    closed_by: ClosedBy | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_closed(self, timeout: float) -> ClosedBy:
        await asyncio.wait_for(self.closed.wait(), timeout)
        assert self.closed_by is not None
        return self.closed_by


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST: SO_LINGER on with a zero timeout, then drop the transport."""
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, server_port: int, server_host: str = "127.0.0.1") -> None:
        self.server_host = server_host
        self.server_port = server_port
        self.default = Fault()
        self.port = 0
        self.connections: list[ProxiedConnection] = []
        self._scripted: collections.deque[Fault] = collections.deque()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- control ----------------------------------------------------------------------------
    def script(self, *faults: Fault) -> None:
        """The next connections get these faults, in order; later ones get ``default``."""
        self._scripted.extend(faults)

    @property
    def tasks(self) -> set[asyncio.Task[Any]]:
        """Every task of the proxy still running: handlers and their per-direction helpers."""
        return set(self._tasks)

    @property
    def open_connections(self) -> int:
        return sum(1 for c in self.connections if not c.closed.is_set())

    @property
    def server_connections(self) -> int:
        """Connections that reached the server (refused and blackholed ones did not)."""
        return sum(1 for c in self.connections if c.server_connected)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- one connection ---------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._track(task)
        fault = self._scripted.popleft() if self._scripted else self.default
        conn = ProxiedConnection(len(self.connections), fault)
        self.connections.append(conn)
        server_writer: asyncio.StreamWriter | None = None
        end = _End("stop", True)  # what a cancelled handler (stop()) does
        try:
            if fault.mode == "refuse":
                end = _End("fault", True)
            elif fault.mode == "blackhole":
                while await reader.read(CHUNK_BYTES):
                    pass
                end = _End("client", False)
            else:
                try:
                    server_reader, server_writer = await asyncio.open_connection(
                        self.server_host, self.server_port
                    )
                except OSError:
                    end = _End("server", True)  # a refused server looks like a reset here
                else:
                    conn.server_connected = True
                    end = await self._relay(conn, reader, writer, server_reader, server_writer)
        except (ConnectionError, OSError):
            end = _End("client", True)
        except asyncio.CancelledError:
            end = _End("stop", True)
        finally:
            conn.closed_by = end.by
            for w in (writer, server_writer):
                if w is None:
                    continue
                if end.rst:
                    _reset(w)
                else:
                    w.close()
            conn.closed.set()

    def _track(self, task: asyncio.Task[T]) -> asyncio.Task[T]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _relay(
        self,
        conn: ProxiedConnection,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> _End:
        loop = asyncio.get_running_loop()
        up = self._track(loop.create_task(self._direction(conn, client_r, server_w, up=True)))
        down = self._track(loop.create_task(self._direction(conn, server_r, client_w, up=False)))
        try:
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            return next(iter(done)).result()
        finally:
            for t in (up, down):
                t.cancel()
            await asyncio.gather(up, down, return_exceptions=True)

    async def _direction(
        self,
        conn: ProxiedConnection,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        *,
        up: bool,
    ) -> _End:
        source: ClosedBy = "client" if up else "server"
        latency = conn.fault.latency_up_s if up else conn.fault.latency_down_s
        # A chunk and the time it may leave; b"" for a FIN, None for a reset of the source.
        queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue(QUEUE_CHUNKS)
        loop = asyncio.get_running_loop()
        reader = self._track(loop.create_task(_read_into(src, queue, latency)))
        try:
            while True:
                due, data = await queue.get()
                if data is None:
                    return _End(source, True)
                if not data:
                    with contextlib.suppress(ConnectionError):
                        await dst.drain()  # what was queued leaves before the FIN
                    return _End(source, False)
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                fault = conn.fault  # read per chunk: a test may switch it on a live connection
                if up:
                    limit = fault.cut_up_after_bytes
                    if limit is not None and conn.bytes_up + len(data) > limit:
                        return _End("fault", True)
                    await _write(dst, data, None, conn, up=True)
                    continue
                if fault.mode in ("cut", "stall"):
                    room = max(fault.after_bytes - conn.bytes_down, 0)
                    if room < len(data):
                        await _write(dst, data[:room], fault.down_bytes_per_s, conn, up=False)
                        if fault.mode == "cut":
                            return _End("fault", fault.rst)
                        await asyncio.Future()  # stall: until the client leaves or stop()
                await _write(dst, data, fault.down_bytes_per_s, conn, up=False)
        except ConnectionError:
            return _End("server" if up else "client", True)  # the destination went away
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def _read_into(
    src: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes | None]], latency: float
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            data: bytes | None = await src.read(CHUNK_BYTES)
        except ConnectionError:
            data = None
        await queue.put((loop.time() + latency, data))
        if not data:
            return


async def _write(
    dst: asyncio.StreamWriter,
    data: bytes,
    bytes_per_s: float | None,
    conn: ProxiedConnection,
    *,
    up: bool,
) -> None:
    """Write ``data`` (in timed slices when throttled), counting each slice once it left."""
    step = len(data) if bytes_per_s is None else max(1, int(bytes_per_s * THROTTLE_TICK_S))
    for i in range(0, len(data), max(step, 1)):
        piece = data[i : i + step]
        dst.write(piece)
        await dst.drain()
        if up:
            conn.bytes_up += len(piece)
        else:
            conn.bytes_down += len(piece)
        if bytes_per_s is not None:
            await asyncio.sleep(len(piece) / bytes_per_s)


# -- what a proxy in the path cannot fake -------------------------------------------------------
def closed_port() -> int:
    """A loopback port nothing listens on: connecting gets ECONNREFUSED at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FullBacklog:
    """A listener that never accepts, its accept queue filled by one connection of its own.

    Linux drops a SYN for a listener whose queue is full, so a connect attempt hangs until the
    client's connect timeout: a deterministic "connect timeout" on loopback.
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)  # the queue holds one connection
        self.port = int(self._listener.getsockname()[1])
        self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)

    def close(self) -> None:
        self._filler.close()
        self._listener.close()
