"""`MockProvider`: the simulated LLM provider as an in-process server, for tests and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from types import TracebackType

from proxy.mock_provider.context import ProviderContext
from proxy.mock_provider.http1 import MockConnection
from proxy.mock_provider.options import MockOptions
from proxy.mock_provider.planner import Planner
from proxy.mock_provider.recording import RecordedRequest, Recorder

STOP_GRACE_S = 5.0  # bound on waiting for aborted connections to report connection_lost


def tls_context(options: MockOptions) -> ssl.SSLContext | None:
    if options.tls_cert is None or options.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(options.tls_cert, options.tls_key)
    context.set_alpn_protocols(["h2", "http/1.1"] if options.tls_h2 else ["http/1.1"])
    return context


class MockProvider:
    """Serves the Anthropic and OpenAI dialects on one port (HTTP/1.1, h2c, TLS + ALPN).

    ``start`` binds on the running loop and returns the port; ``stop`` closes the listener,
    aborts every connection and cancels every timer. Counters and the ring buffer of recent
    requests stay readable after ``stop``.
    """

    def __init__(
        self, options: MockOptions | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.options = options or MockOptions()
        self._clock = clock
        self._recorder = Recorder(self.options.record_limit, self.options.record_body_bytes)
        self._planner = Planner(self.options, clock)
        self._ctx: ProviderContext | None = None
        self._server: asyncio.Server | None = None
        self._port = 0

    async def start(self) -> int:
        if self._server is not None:
            raise RuntimeError("MockProvider already started")
        loop = asyncio.get_running_loop()
        ctx = ProviderContext(self.options, self._planner, self._recorder, loop)
        tls = tls_context(self.options)
        self._server = await loop.create_server(
            lambda: MockConnection(ctx, tls is not None),
            self.options.host,
            self.options.port,
            ssl=tls,
            backlog=2048,
            reuse_address=True,
        )
        self._ctx = ctx
        self._port = self._server.sockets[0].getsockname()[1]
        return self._port

    async def stop(self) -> None:
        server, ctx = self._server, self._ctx
        if server is None or ctx is None:
            return
        self._server = None
        server.close()
        if ctx.connections:
            ctx.all_closed = asyncio.Event()
            for conn in list(ctx.connections):
                conn.close_now()
            if ctx.connections:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.all_closed.wait(), STOP_GRACE_S)
        await server.wait_closed()

    async def __aenter__(self) -> MockProvider:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """``http(s)://host:port`` with no trailing slash (add /v1 for the OpenAI SDK)."""
        scheme = "https" if self.options.tls_cert else "http"
        host = self.options.host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self._port}"

    @property
    def recorder(self) -> Recorder:
        """The live counters and ring buffer (``requests``, ``requests_total``, ...)."""
        return self._recorder

    @property
    def connections_accepted(self) -> int:
        return self._recorder.connections_accepted

    @property
    def connections_open(self) -> int:
        return len(self._ctx.connections) if self._ctx is not None else 0

    @property
    def requests_total(self) -> int:
        return self._recorder.requests_total

    @property
    def per_path(self) -> dict[str, int]:
        """Requests per path (query stripped), as a copy."""
        return dict(self._recorder.per_path)

    @property
    def failures_injected(self) -> int:
        return self._planner.failures_injected

    @property
    def recorded(self) -> list[RecordedRequest]:
        """The most recent requests, oldest first (at most ``options.record_limit``)."""
        return list(self._recorder.requests)

    def clear_recording(self) -> None:
        """Forget recorded requests and zero the counters (connections stay open)."""
        self._recorder.clear()
