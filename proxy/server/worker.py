"""One worker process: listeners, the upstream pools, signals, graceful drain and hot reload.

How this works: `start()` binds the data and admin listeners and begins accepting. A drain
(SIGTERM/SIGINT, or `drain()`) fails readiness, closes the listeners, asks every connection to
finish (HTTP/1.1 ``Connection: close`` on the next response, HTTP/2 GOAWAY), waits for the
in-flight streams up to ``server.drain_timeout_s``, then ends what is left with an in-band error
and closes the pools and the limiter's Redis connections. A second signal skips the wait.
SIGHUP reloads the config file: the new snapshot is validated whole and swapped atomically; a
bad file is logged and the old one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from proxy.admin.api import AdminApi, config_doc, routes_doc
from proxy.admin.handlers import AdminStreamFactory, limits_doc, upstreams_doc
from proxy.errors import ConfigError, ShuttingDownError
from proxy.http.deadlines import DeadlineSweeper
from proxy.limits.redis import close_limiter
from proxy.observability.access_log import AccessLog
from proxy.observability.observer import StreamObserver
from proxy.observability.proxy_metrics import LoopLagMonitor, ProxyMetrics
from proxy.observability.usage import UsageTotals
from proxy.protocol.connection import ConnectionSettings, DownstreamConnection, StreamFactory
from proxy.protocol.write_batch import WriteBatch
from proxy.routing.runtime import RuntimeConfig
from proxy.server.listener import bind_socket, server_tls_context
from proxy.server.overload import OverloadGovernor, OverloadMonitor
from proxy.server.streams import Counters, ProxyStreamFactory, RuntimeHolder
from proxy.upstream.client import PooledUpstreamClient

if TYPE_CHECKING:
    from proxy.config.model import JunctionConfig, ReadBatchingConfig
    from proxy.observability.otlp_metrics import OtlpMetricsPusher
    from proxy.observability.tracing import Tracing

log = logging.getLogger("junction")


class ConnectionSet:
    """Live downstream connections of one listener, with the connection limit."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.conns: set[DownstreamConnection] = set()
        self.draining = False
        self.rejected_total = 0
        self.accepted_total = 0
        self.empty = asyncio.Event()
        self.empty.set()

    def add(self, conn: DownstreamConnection) -> bool:
        if len(self.conns) >= self.max_connections:
            self.rejected_total += 1
            return False
        self.accepted_total += 1
        self.conns.add(conn)
        self.empty.clear()
        return True

    def remove(self, conn: DownstreamConnection) -> None:
        self.conns.discard(conn)
        if not self.conns:
            self.empty.set()


def connection_settings(cfg: JunctionConfig) -> ConnectionSettings:
    lim = cfg.limits
    return ConnectionSettings(
        limits=lim.codec_limits(),
        http1_impl=cfg.server.http,
        http2_impl=cfg.server.http2,
        request_header_timeout_s=lim.request_header_timeout_s,
        request_body_timeout_s=lim.request_body_timeout_s,
        keepalive_timeout_s=lim.keepalive_timeout_s,
        write_buffer_high_bytes=lim.write_buffer_high_bytes,
    )


class Worker:
    def __init__(
        self,
        config: JunctionConfig,
        *,
        config_path: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        reuse_port: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._config_path = config_path
        self._overrides = overrides  # command-line flags, re-applied on every reload
        self._env = env if env is not None else os.environ
        self._reuse_port = reuse_port
        self._clock = clock
        self._servers: list[asyncio.Server] = []
        self.port = 0
        self.admin_port = 0
        self.draining = False
        self.reloads_total = 0
        self.reload_failures_total = 0
        self.last_reload_error = ""
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._signals = 0
        self._retiring: set[asyncio.Task[None]] = set()  # limiters a reload replaced, closing

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        self.holder = RuntimeHolder(RuntimeConfig.from_config(cfg))
        # One write batch per worker: responses to clients and requests to providers made in
        # one loop iteration all leave at its end (proxy/protocol/write_batch.py).
        self.writes = WriteBatch(loop)
        self.client = PooledUpstreamClient(
            loop, cfg.upstream.upstream_settings(), self._clock, writes=self.writes
        )
        self.overload: OverloadMonitor | None = None
        self._configure_read_batching(cfg.upstream.read_batching)
        self.counters = Counters()
        self.access_log = self._open_access_log(cfg, loop)
        usage = UsageTotals()
        self.metrics = ProxyMetrics(usage) if cfg.metrics.enabled else None
        self.observer = StreamObserver(
            access_log=self.access_log,
            metrics=self.metrics,
            tracing=self._tracing(cfg),
            usage=usage,
        )
        self.loop_lag: LoopLagMonitor | None = None
        self.otlp_metrics: OtlpMetricsPusher | None = None
        if self.metrics is not None:
            self.metrics.add_worker_gauges(self, self._clock)
            self.loop_lag = LoopLagMonitor(
                loop, self._clock, cfg.metrics.loop_lag_interval_s, self.metrics.loop_lag
            )
            self.loop_lag.start()
            if cfg.metrics.otlp_endpoint is not None:
                from proxy.observability.otlp_metrics import OtlpMetricsPusher  # OTel: only now

                self.otlp_metrics = OtlpMetricsPusher(
                    loop,
                    self.metrics.registry,
                    cfg.metrics.otlp_endpoint,
                    interval_s=cfg.metrics.otlp_interval_s,
                    timeout_s=cfg.metrics.otlp_timeout_s,
                    service_name=cfg.tracing.service_name,
                )
                self.otlp_metrics.start()
                pusher = self.otlp_metrics
                self.metrics.registry.gauge(
                    "junction_otlp_metric_pushes_total",
                    "OTLP metric pushes by outcome (skipped: the previous one was still out).",
                    lambda: [
                        (("ok",), pusher.exported),
                        (("failed",), pusher.failed),
                        (("skipped",), pusher.skipped),
                    ],
                    ("outcome",),
                    kind="counter",
                )
        self.conns = ConnectionSet(cfg.server.max_connections)
        self.admin_conns = ConnectionSet(256)
        settings = connection_settings(cfg)
        self.sweeper = DeadlineSweeper(loop, self._clock)
        factory = ProxyStreamFactory(
            self.holder, self.client, self.sweeper, self._clock, self.observer, self.counters
        )
        ssl_ctx = None
        if cfg.listen.tls is not None:
            ssl_ctx = server_tls_context(
                str(cfg.listen.tls.cert_file), str(cfg.listen.tls.key_file)
            )
        sock = bind_socket(cfg.listen.host, cfg.listen.port, reuse_port=self._reuse_port)
        self.port = sock.getsockname()[1]
        server = await loop.create_server(
            self._protocol_factory(settings, factory, self.conns, loop),
            sock=sock,
            ssl=ssl_ctx,
            ssl_handshake_timeout=cfg.server.tls_handshake_timeout_s if ssl_ctx else None,
        )
        self._servers.append(server)
        if cfg.admin.enabled:
            admin = AdminStreamFactory(
                lambda: not self.draining,
                self.stats,
                self._clock,
                upstreams=lambda: upstreams_doc(self.holder.current, self._clock()),
                api=self._admin_api(cfg),
                cache=lambda: self.holder.current.cache,
            )
            asock = bind_socket(cfg.admin.host, cfg.admin.port, reuse_port=self._reuse_port)
            self.admin_port = asock.getsockname()[1]
            self._servers.append(
                await loop.create_server(
                    self._protocol_factory(settings, admin, self.admin_conns, loop), sock=asock
                )
            )

    def _open_access_log(
        self, cfg: JunctionConfig, loop: asyncio.AbstractEventLoop
    ) -> AccessLog | None:
        """The access log sink; it exists when the config at start wants lines (a reload can
        turn lines off and on again, not open another file)."""
        log_cfg = cfg.log
        if not log_cfg.access_log:
            return None
        if log_cfg.access_log_file is None:
            return AccessLog(sys.stdout.buffer, loop, log_cfg.format)
        try:
            out: BinaryIO = open(log_cfg.access_log_file, "ab")  # noqa: SIM115 - closed at drain
        except OSError as exc:
            raise ConfigError(
                f"log.access_log_file: cannot open {log_cfg.access_log_file} ({exc.strerror})"
            ) from None
        return AccessLog(out, loop, log_cfg.format, owns_out=True)

    @staticmethod
    def _tracing(cfg: JunctionConfig) -> Tracing | None:
        if not cfg.tracing.enabled:
            return None
        try:
            from proxy.observability.tracing import Tracing
        except ImportError as exc:
            raise ConfigError(
                f"tracing.enabled needs the OpenTelemetry SDK ({exc.name} is not installed;"
                " reinstall Junction with its dependencies)"
            ) from None
        return Tracing(cfg.tracing)

    def _admin_api(self, cfg: JunctionConfig) -> AdminApi:
        token = cfg.admin.token
        return AdminApi(
            token=token.get_secret_value().encode() if token is not None else None,
            metrics=self.metrics.registry.render if self.metrics is not None else None,
            config=lambda: config_doc(self.config, self._config_path, self._env),
            routes=lambda: routes_doc(self.config, self.holder.current),
            usage=self.observer.usage_doc,
            reload=self.reload_outcome,
        )

    def reload_outcome(self) -> dict[str, object]:
        """``POST /admin/reload``: what SIGHUP does, with the result as a document."""
        if self._config_path is None:
            return {"reloaded": False, "error": "Junction was not started from a config file"}
        ok = self.reload()
        doc: dict[str, object] = {"reloaded": ok, "reloads_total": self.reloads_total}
        if not ok:
            doc["error"] = self.last_reload_error
        return doc

    def _protocol_factory(
        self,
        settings: ConnectionSettings,
        factory: StreamFactory,
        registry: ConnectionSet,
        loop: asyncio.AbstractEventLoop,
    ) -> Callable[[], DownstreamConnection]:
        clock = self._clock
        writes = self.writes

        def make() -> DownstreamConnection:
            return DownstreamConnection(settings, factory, registry, loop, clock, writes)

        return make

    def stats(self) -> dict[str, object]:
        c = self.counters
        return {
            "pid": os.getpid(),
            "draining": self.draining,
            "downstream": {
                "connections_active": len(self.conns.conns),
                "connections_total": self.conns.accepted_total,
                "connections_rejected_total": self.conns.rejected_total,
                "requests_total": c.requests_total,
                "streams_active": c.active_streams,
                "responses": {f"{i}xx": n for i, n in enumerate(c.responses_by_class) if i},
            },
            "upstream": self.client.stats(),
            "core_busy": round(self.overload.governor.busy, 3) if self.overload else None,
            "limits": limits_doc(self.holder.current.limiter),
            "config": {
                "reloads_total": self.reloads_total,
                "reload_failures_total": self.reload_failures_total,
                "last_reload_error": self.last_reload_error or None,
            },
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def request_stop(self) -> None:
        self._signals += 1
        self._stop.set()
        if self._signals > 1:
            self._force.set()

    async def run_until_stopped(self) -> int:
        await self._stop.wait()
        await self.drain()
        return 0

    async def drain(self) -> None:
        """Stop accepting, let in-flight streams finish within the deadline, close the rest."""
        if self.draining:
            return
        self.draining = True
        self.conns.draining = True
        for server in self._servers[:1]:
            server.close()
        for conn in list(self.conns.conns):
            conn.start_drain()
        deadline = self.config.server.drain_timeout_s
        waiter = asyncio.ensure_future(self.conns.empty.wait())
        forcer = asyncio.ensure_future(self._force.wait())
        try:
            await asyncio.wait({waiter, forcer}, timeout=deadline, return_when="FIRST_COMPLETED")
        finally:
            waiter.cancel()
            forcer.cancel()
        for conn in list(self.conns.conns):
            conn.abort_all(ShuttingDownError("Junction is shutting down"))
        for server in self._servers:
            server.close()
        for conn in list(self.admin_conns.conns):
            conn.start_drain()
        if self.overload is not None:
            self.overload.stop()
        await self.client.close()
        # After every stream ended: their releases are the limiter's last background calls.
        await close_limiter(self.holder.current.limiter)
        cache = self.holder.current.cache
        if cache is not None:
            await cache.aclose()  # its last L2 writes, then its Redis connections
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        self.sweeper.close()
        if self.loop_lag is not None:
            self.loop_lag.stop()
        if self.otlp_metrics is not None:
            # The last snapshot goes out over HTTP from the pusher's thread, bounded.
            last = asyncio.wrap_future(self.otlp_metrics.stop())
            with contextlib.suppress(Exception):
                await asyncio.wait_for(last, self.config.metrics.otlp_timeout_s + 1)
            await asyncio.get_running_loop().run_in_executor(None, self.otlp_metrics.close)
        if self.access_log is not None:
            self.access_log.close()  # writes what is pending, then stops its thread
        tracing = self.observer.tracing
        if tracing is not None:
            # The exporter's last batch goes out over HTTP: off the loop, bounded by its timeout.
            await asyncio.get_running_loop().run_in_executor(None, tracing.shutdown)

    def _configure_read_batching(self, cfg: ReadBatchingConfig) -> None:
        """Start, retune or stop the overload monitor that turns read batching on and off
        (proxy/server/overload.py); at start and on every reload."""
        self.client.reads.window_s = cfg.window_s
        monitor = self.overload
        if not cfg.enabled:
            if monitor is not None:
                monitor.stop()
                self.overload = None
            return
        if monitor is None:
            governor = OverloadGovernor(cfg.start_above, cfg.stop_below)
            self.overload = OverloadMonitor(
                asyncio.get_running_loop(), governor, self.client.reads, clock=self._clock
            )
            self.overload.start()
        else:
            monitor.governor.start_above = cfg.start_above
            monitor.governor.stop_below = cfg.stop_below

    def reload(self) -> bool:
        """Re-read the config file; keep the running config when the new one is invalid."""
        if self._config_path is None:
            log.warning("reload requested but Junction was not started from a config file")
            return False
        from proxy.config.loader import load_config

        try:
            new = load_config(self._config_path, env=self._env, overrides=self._overrides)
            # The running runtime hands over live selection stats and session affinity.
            runtime = RuntimeConfig.from_config(new, previous=self.holder.current)
        except ConfigError as exc:
            self.reload_failures_total += 1
            self.last_reload_error = exc.message
            log.error("config reload failed, keeping the running config:\n%s", exc.message)
            return False
        if new.listen != self.config.listen or new.server != self.config.server:
            log.warning("listen/server settings changed: they take effect after a restart")
        retired = self.holder.current.limiter
        retired_cache = self.holder.current.cache
        self.holder.current = runtime
        self.config = new
        self._configure_read_batching(new.upstream.read_batching)
        if runtime.limiter is not retired:
            # `redis:` changed: the old limiter's connections close in the background (its
            # in-flight streams' releases are dropped; their leases expire in Redis).
            task = asyncio.get_running_loop().create_task(close_limiter(retired))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        if retired_cache is not None and runtime.cache is not retired_cache:
            # The cache section or its Redis changed: the old L2 connections close.
            task = asyncio.get_running_loop().create_task(retired_cache.aclose())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        self.reloads_total += 1
        self.last_reload_error = ""
        log.info("config reloaded from %s", self._config_path)
        return True
