"""Builds each request's filter chain from the route table and the current config snapshot."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from proxy.events import RequestHeaders
from proxy.filters.api import DecoderFilter, EncoderFilter
from proxy.filters.auth import auth_filters
from proxy.filters.body import JsonBodyFilter
from proxy.filters.cache import CacheFilter
from proxy.filters.limit import limit_filters
from proxy.filters.local import ErrorReplyFilter, ModelsFilter, RootFilter
from proxy.filters.request_id import MAX_REQUEST_ID_BYTES, RequestIdSource
from proxy.filters.router import RouterFilter
from proxy.headers import Headers, is_safe_value
from proxy.http.deadlines import DeadlineSweeper
from proxy.http.info import StreamInfo
from proxy.http.stream import ActiveStream, RequestInfo
from proxy.observability.observer import StreamObserver
from proxy.routing.runtime import RuntimeConfig
from proxy.routing.sessions import SessionUsage
from proxy.routing.table import (
    BadPathError,
    Route,
    RouteKind,
    dialect_from_headers,
    match,
    normalize_path,
)
from proxy.upstream.api import UpstreamClient

if TYPE_CHECKING:
    from proxy.protocol.connection import DownstreamConnection


class RuntimeHolder:
    """The current config snapshot. A reload swaps it whole; a stream keeps the one it
    began with."""

    def __init__(self, runtime: RuntimeConfig) -> None:
        self.current = runtime


class Counters:
    def __init__(self) -> None:
        self.requests_total = 0
        self.responses_by_class = [0, 0, 0, 0, 0, 0]  # index = status // 100
        self.active_streams = 0
        self.overloaded_total = 0  # requests refused with 503 by overload protection


class ProxyStreamFactory:
    def __init__(
        self,
        holder: RuntimeHolder,
        client: UpstreamClient,
        sweeper: DeadlineSweeper,
        clock: Callable[[], float],
        observer: StreamObserver,
        counters: Counters,
        sessions: SessionUsage | None = None,
    ) -> None:
        self._holder = holder
        # Per worker, across reloads: each session's last size, for the long-context rule.
        self._sessions = sessions if sessions is not None else SessionUsage(clock=clock)
        self._client = client
        self._sweeper = sweeper
        self._ids = RequestIdSource()
        self._clock = clock
        self._observer = observer
        self._tracing = observer.tracing is not None
        self.counters = counters

    def new_stream(
        self, sink: DownstreamConnection, event: RequestHeaders, protocol: str, now: float
    ) -> ActiveStream:
        runtime = self._holder.current
        info = StreamInfo(now, protocol)
        info.method = event.method
        info.path = event.path
        info.request_id = self._request_id(event.headers)
        if self._tracing:
            self._observer.on_stream_start(info, event.headers)
        self.counters.requests_total += 1
        self.counters.active_streams += 1
        decoders: list[DecoderFilter]
        encoders: list[EncoderFilter] = []  # custom filters with response hooks
        try:
            path = normalize_path(event.path)
        except BadPathError as exc:
            path = ""
            dialect = dialect_from_headers(event.headers)
            decoders = [ErrorReplyFilter(400, str(exc))]
        else:
            route = match(path)
            dialect = (
                route.dialect
                if route is not None and route.dialect is not None
                else dialect_from_headers(event.headers)
            )
            decoders = self._route_filters(route, event, path, runtime, encoders)
        request = RequestInfo(
            event.method, event.path, path, event.authority, event.headers, dialect
        )
        info.dialect = dialect.value
        return ActiveStream(sink, event.stream_id, request, info, decoders, encoders)

    def _request_id(self, headers: Headers) -> bytes:
        """Keep a sane client ``x-request-id`` or make one; it travels upstream and is echoed
        on the response (the stream adds it there)."""
        for i, (k, v) in enumerate(headers):
            if k == b"x-request-id":
                if 0 < len(v) <= MAX_REQUEST_ID_BYTES and is_safe_value(v):
                    return v
                del headers[i]
                break
        rid = self._ids.next()
        headers.append((b"x-request-id", rid))
        return rid

    def _route_filters(
        self,
        route: Route | None,
        event: RequestHeaders,
        path: str,
        runtime: RuntimeConfig,
        encoders: list[EncoderFilter],
    ) -> list[DecoderFilter]:
        """The decoder filters of this request; custom filters with response hooks are
        added to ``encoders`` too, in response order (reverse of the config's)."""
        if route is None:
            return [ErrorReplyFilter(404, f"no route for {path[:100]}")]
        if event.method not in route.methods:
            allowed = b", ".join(sorted(route.methods))
            return [
                ErrorReplyFilter(
                    405,
                    f"method {event.method.decode('latin-1')[:16]} is not allowed on {path}",
                    kind="invalid_request_error",
                    headers=[(b"allow", allowed)],
                )
            ]
        if route.kind is RouteKind.PROXY:
            if self.counters.active_streams > runtime.max_in_flight:
                # Refused before any body is read or upstream work starts; the streams
                # already in flight keep their slots and finish.
                self.counters.overloaded_total += 1
                return [
                    ErrorReplyFilter(
                        503,
                        "Junction is overloaded: too many requests in flight",
                        kind="overloaded_error",
                        headers=[(b"retry-after", b"1")],
                    )
                ]
            # Keys checked at the headers; allow-lists and limits once the body is parsed.
            chain: list[DecoderFilter] = [*auth_filters(runtime.auth), JsonBodyFilter()]
            chain += limit_filters(runtime)
            cached = CacheFilter(runtime.cache) if runtime.cache is not None else None
            if cached is not None:
                chain.append(cached)
            for spec in runtime.filters:
                if spec.applies_to(path):
                    custom = spec.make()  # fresh per request: filters keep per-stream state
                    chain.append(custom)
                    if spec.encoder:
                        encoders.insert(0, custom)
            if cached is not None:
                encoders.append(cached)  # outermost: it sees what the client receives
            chain.append(
                RouterFilter(runtime, self._client, self._sweeper, self._clock, self._sessions)
            )
            return chain
        if route.kind is RouteKind.MODELS:
            return [*auth_filters(runtime.auth), ModelsFilter(runtime)]
        return [RootFilter()]

    def stream_done(self, stream: ActiveStream) -> None:
        info = stream.info
        info.end_s = self._clock()
        c = self.counters
        c.active_streams -= 1
        c.responses_by_class[min(info.status // 100, 5)] += 1
        self._observer.on_stream_done(info, self._holder.current)
