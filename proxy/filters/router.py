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

import secrets
import time
from collections.abc import Callable

import orjson

from proxy.dialects.pipeline import ExchangePlan, ResponseTranslator, plan_exchange
from proxy.dialects.tokens import count_tokens
from proxy.errors import ProxyError, UpstreamError, UpstreamTimeoutError
from proxy.filters.api import DataStatus, Dialect, FilterCallbacks, HeadersStatus
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
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


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
        "_head_pending",
        "_paused",
        "_progress",
        "_runtime",
        "_seen_progress",
        "_sweeper",
        "_target",
        "_translator",
        "_wall",
        "_watched",
    )

    def __init__(
        self,
        runtime: RuntimeConfig,
        client: UpstreamClient,
        sweeper: DeadlineSweeper,
        clock: Callable[[], float],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._runtime = runtime
        self._client = client
        self._sweeper = sweeper
        self._clock = clock
        self._wall = wall
        self._translator: ResponseTranslator | None = None
        self._head_pending = False
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
        body = self._cb.request.body_json
        return self._runtime.target_for(body.get("model") if isinstance(body, dict) else None)

    def _start(self, body: bytes) -> None:
        target = self._target
        assert target is not None
        provider = target.provider
        req = self._cb.request
        info = self._cb.info
        info.upstream_provider = provider.name
        info.upstream_model = target.model
        if req.route_path == COUNT_TOKENS_PATH and provider.dialect is not Dialect.ANTHROPIC:
            # Only Anthropic-dialect providers count tokens; for the others Junction does.
            self._done = True
            count = orjson.dumps({"input_tokens": count_tokens(req.body_json, req.dialect)})
            self._cb.send_response(200, [(b"content-type", b"application/json")], count)
            return
        info.upstream_host = provider.origin.host
        try:
            plan = plan_exchange(
                client=req.dialect,
                provider=provider.dialect,
                provider_name=provider.name,
                path=req.path,
                body_json=req.body_json,
                raw_body=body,
                model=target.model,
                chain=provider.chain_for(target.model),
                id_hex=secrets.token_hex(12),
                now_unix=int(self._wall()),
            )
        except ProxyError as exc:
            self._done = True
            self._cb.send_error(exc)
            return
        self._translator = plan.response
        headers = _upstream_headers(req.headers, provider, len(plan.body), plan)
        try:
            self._exchange = self._client.request(
                provider.origin,
                req.method,
                provider.path_prefix + plan.path,
                headers,
                self,
                end_stream=True,
                body=plan.body,
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
        self._head_pending = True
        if self._translator is not None:
            self._translator.start(status, headers)
        else:
            self._head = (status, [(k, v) for k, v in headers if k not in HOP_BY_HOP])

    def _release_head(self, end_stream: bool, body_len: int = -1) -> None:
        self._head_pending = False
        if self._translator is not None:
            status, headers = self._translator.head()
            if body_len >= 0:
                headers.append((b"content-length", b"%d" % body_len))
        else:
            assert self._head is not None
            status, headers = self._head
            self._head = None
        self._cb.encode_headers(status, headers, end_stream)

    def on_upstream_data(self, data: bytes) -> None:
        self._progress += 1
        tr = self._translator
        if tr is not None:
            try:
                data = tr.feed(data)
            except ProxyError as exc:
                self._abandon(exc)
                return
            if not data:
                return
        if self._head_pending:
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
        tr = self._translator
        if tr is None:
            if self._head_pending:
                self._release_head(True)
            else:
                self._cb.encode_data(b"", True)
            return
        try:
            tail = tr.end()
        except ProxyError as exc:
            self._fail(exc)
            return
        if self._head_pending:
            self._release_head(not tail, -1 if tr.streaming else len(tail))
            if tail:
                self._cb.encode_data(tail, True)
        else:
            self._cb.encode_data(tail, True)

    def on_upstream_error(self, error: UpstreamError) -> None:
        self._abandon(error)

    def _abandon(self, error: ProxyError) -> None:
        """Stop the exchange and answer ``error``."""
        self._done = True
        self._unwatch()
        if self._exchange is not None:
            self._exchange.cancel()
            self._exchange = None
        self._fail(error)

    def _fail(self, error: ProxyError) -> None:
        tr = self._translator
        if tr is not None and not self._head_pending and tr.streaming:
            # The client's stream began: the translator closes it in-band, in its grammar.
            self._cb.info.add_flag(error.flag)
            self._cb.encode_data(tr.fail(error.kind, error.message), True)
            return
        self._head = None
        self._head_pending = False
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
        self._abandon(UpstreamTimeoutError(f"{what} after {limit:g}s"))

    def on_destroy(self) -> None:
        self._unwatch()
        if self._exchange is not None:
            self._exchange.cancel()
            self._exchange = None
        self._done = True


def _upstream_headers(
    headers: Headers, provider: Provider, body_len: int, plan: ExchangePlan
) -> Headers:
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
    if named or plan.drop_headers:
        # Headers the client named in Connection are hop-by-hop too. Credentials are dropped
        # anyway, so naming them cannot smuggle anything through.
        gone = (named or set()) | plan.drop_headers
        out = [h for h in out if h[0] not in gone]
    out.extend(plan.set_headers)
    if provider.auth_header is not None:
        out.append(provider.auth_header)  # validated when the config was loaded
    out.append((b"content-length", b"%d" % body_len))
    return out
