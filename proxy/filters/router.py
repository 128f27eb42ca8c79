"""The terminal filter: picks the target, rewrites the request for it and relays the response.

How this works: header iteration reaches the router only once the body filter holds the whole
body (proxy routes are JSON). The router chooses a `Target`, rebuilds the headers (hop-by-hop
and client credentials removed, the provider's key injected), rewrites ``model`` when the
target's differs, and starts an upstream exchange. Response headers and bytes are relayed as
they arrive — never buffered whole — and the upstream is paused while the client cannot keep
up. Two deadlines guard the exchange: time to the response headers and, once streaming, time
without a byte. The worker's shared DeadlineSweeper checks them against activity stamps, so
the per-chunk path only stores a float.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from proxy.errors import ProxyError, UpstreamError, UpstreamTimeoutError
from proxy.filters.api import DataStatus, FilterCallbacks, HeadersStatus
from proxy.headers import HOP_BY_HOP, Headers
from proxy.http.deadlines import DeadlineSweeper
from proxy.routing.runtime import Provider, RuntimeConfig, Target
from proxy.upstream.api import Exchange, UpstreamClient

# Request headers that never reach a provider: credentials of the client (the provider's own
# key is injected), framing we recompute, and Junction's own control headers.
_DROP_REQUEST = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-api-key",
    b"authorization",
    b"proxy-authorization",
}
_INTERNAL_PREFIX = b"x-junction-"


class RouterFilter:
    __slots__ = (
        "_activity_s",
        "_cb",
        "_client",
        "_clock",
        "_done",
        "_exchange",
        "_got_headers",
        "_head",
        "_paused",
        "_progress",
        "_runtime",
        "_seen_progress",
        "_sweeper",
        "_target",
        "_watched",
    )

    def __init__(
        self,
        runtime: RuntimeConfig,
        client: UpstreamClient,
        sweeper: DeadlineSweeper,
        clock: Callable[[], float],
    ) -> None:
        self._runtime = runtime
        self._client = client
        self._sweeper = sweeper
        self._clock = clock
        self._exchange: Exchange | None = None
        self._target: Target | None = None
        self._watched = False
        self._head: tuple[int, Headers] | None = None
        self._progress = 0
        self._seen_progress = 0
        self._activity_s = 0.0
        self._got_headers = False
        self._paused = False
        self._done = False

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    # -- request ---------------------------------------------------------------------------

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        try:
            self._target = self._choose_target()
        except ProxyError as exc:
            self._cb.send_error(exc)
            return HeadersStatus.STOP
        if end_stream:
            self._start(b"")
        return HeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        if self._done:
            return DataStatus.STOP_NO_BUFFER
        if self._exchange is None:
            if not end_stream:
                return DataStatus.STOP_AND_BUFFER  # the body filter normally gathers it first
            self._start(data)
        else:
            self._exchange.send_data(data, end_stream)
        return DataStatus.CONTINUE

    def _choose_target(self) -> Target:
        req = self._cb.request
        default = self._runtime.default
        if default.provider.dialect is req.dialect:
            return default
        # Translation between dialects is not on this path: route a client to a provider
        # that speaks its own dialect, keeping the requested model when that provider has it.
        wanted = req.body_json.get("model") if isinstance(req.body_json, dict) else None
        for p in self._runtime.providers.values():
            if p.dialect is req.dialect:
                if isinstance(wanted, str) and (not p.models or wanted in p.models):
                    return Target(p, wanted)
                return Target(p, p.models[0] if p.models else str(wanted or ""))
        raise ProxyError(
            f"no provider is configured for the {req.dialect.value} dialect", status=501
        )

    def _start(self, body: bytes) -> None:
        target = self._target
        assert target is not None
        provider = target.provider
        req = self._cb.request
        info = self._cb.info
        info.upstream_provider = provider.name
        info.upstream_model = target.model
        info.upstream_host = provider.origin.host
        body = _rewrite_model(req.body_json, body, target.model)
        headers = _upstream_headers(req.headers, provider, len(body))
        try:
            self._exchange = self._client.request(
                provider.origin,
                req.method,
                provider.path_prefix + req.path,
                headers,
                self,
                end_stream=True,
                body=body,
            )
        except UpstreamError as exc:
            self._done = True
            self._cb.send_error(exc)
            return
        self._cb.set_watermark_listener(self)
        self._activity_s = self._clock()
        self._watched = True
        self._sweeper.watch(self)

    # -- response (ResponseHandler) ---------------------------------------------------------

    def on_upstream_headers(self, status: int, headers: Headers) -> None:
        # Held until the first body bytes (or the end): the head then leaves in the same write,
        # and a failure before any body byte can still be answered with a clean local reply.
        self._got_headers = True
        self._progress += 1
        self._head = (status, [(k, v) for k, v in headers if k not in HOP_BY_HOP])

    def _release_head(self, end_stream: bool) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._cb.encode_headers(head[0], head[1], end_stream)

    def on_upstream_data(self, data: bytes) -> None:
        self._progress += 1
        if self._head is not None:
            self._release_head(False)
        self._cb.encode_data(data, False)
        if not self._paused and not self._done and not self._cb.downstream_writable:
            self._paused = True
            if self._exchange is not None:
                self._exchange.pause_reading()

    def on_upstream_end(self) -> None:
        self._done = True
        self._exchange = None
        self._unwatch()
        if self._head is not None:
            self._release_head(True)
        else:
            self._cb.encode_data(b"", True)

    def on_upstream_error(self, error: UpstreamError) -> None:
        self._done = True
        self._exchange = None
        self._unwatch()
        self._head = None
        self._cb.send_error(error)

    def on_upstream_writable(self) -> None:
        pass  # the whole body was handed over at once (it is bounded by max_body_bytes)

    # -- downstream flow control (WatermarkListener) -----------------------------------------

    def on_downstream_writable(self) -> None:
        if self._paused:
            self._paused = False
            if self._exchange is not None:
                self._exchange.resume_reading()

    # -- deadlines -------------------------------------------------------------------------

    def _unwatch(self) -> None:
        if self._watched:
            self._watched = False
            self._sweeper.unwatch(self)

    def check_deadline(self, now: float) -> None:
        if self._done or self._paused:
            # A slow client is not an upstream stall; the connection's own timers guard it.
            return
        if self._progress != self._seen_progress:
            # Bytes moved since the last check: the per-chunk path only bumps a counter and
            # the time of progress is taken here, at tick resolution.
            self._seen_progress = self._progress
            self._activity_s = now
            return
        if self._got_headers:
            limit = self._runtime.stream_idle_timeout_s
            what = "stream idle timeout"
        else:
            limit = self._runtime.response_header_timeout_s
            what = "upstream response timeout"
        if now - self._activity_s < limit:
            return
        self._done = True
        self._unwatch()
        if self._exchange is not None:
            self._exchange.cancel()
            self._exchange = None
        self._head = None
        self._cb.send_error(UpstreamTimeoutError(f"{what} after {limit:g}s"))

    def on_destroy(self) -> None:
        self._unwatch()
        if self._exchange is not None:
            self._exchange.cancel()
            self._exchange = None
        self._done = True


def _rewrite_model(body_json: Any, body: bytes, model: str) -> bytes:
    if not model or not isinstance(body_json, dict) or body_json.get("model") == model:
        return body
    body_json["model"] = model
    return orjson.dumps(body_json)


def _upstream_headers(headers: Headers, provider: Provider, body_len: int) -> Headers:
    drop = _DROP_REQUEST
    out: Headers = []
    named: set[bytes] | None = None
    for h in headers:
        k = h[0]
        if k in drop:
            if k == b"connection":
                named = named or set()
                named.update(t.strip().lower() for t in h[1].split(b","))
            continue
        if k[:11] != _INTERNAL_PREFIX:
            out.append(h)
    if named:
        # Headers the client named in Connection are hop-by-hop too. Credentials are dropped
        # anyway, so naming them cannot smuggle anything through.
        out = [h for h in out if h[0] not in named]
    if provider.auth_header is not None:
        out.append(provider.auth_header)  # validated when the config was loaded
    out.append((b"content-length", b"%d" % body_len))
    return out
