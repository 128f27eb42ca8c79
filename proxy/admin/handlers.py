"""The admin listener's answers: liveness, readiness (false while draining), counters, and
the health of every upstream candidate (``/admin/upstreams``: breaker state, outlier ejection,
the selector's live stats; docs/resilience.md shows the document).

The admin port runs the same connection and stream machinery as the data port, with this
factory in place of the proxy's, so it needs no HTTP code of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from proxy.events import RequestHeaders
from proxy.filters.api import DataStatus, Dialect, FilterCallbacks, HeadersStatus
from proxy.headers import Headers
from proxy.http.info import StreamInfo
from proxy.http.stream import ActiveStream, RequestInfo
from proxy.limits.redis import limits_stats
from proxy.routing.catalog import info_for
from proxy.routing.types import Candidate

if TYPE_CHECKING:
    from proxy.limits.api import Limiter
    from proxy.protocol.connection import DownstreamConnection
    from proxy.routing.runtime import RuntimeConfig

StatsSource = Callable[[], dict[str, object]]
ReadySource = Callable[[], bool]
UPSTREAMS_PATH = b"/admin/upstreams"


class AdminFilter:
    __slots__ = ("_cb", "_path", "_ready", "_stats", "_upstreams")

    def __init__(
        self,
        path: bytes,
        ready: ReadySource,
        stats: StatsSource,
        upstreams: StatsSource | None = None,
    ) -> None:
        self._path = path.split(b"?", 1)[0]
        self._ready = ready
        self._stats = stats
        self._upstreams = upstreams

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        path = self._path
        if path == b"/healthz":
            self._reply(200, {"status": "ok"})
        elif path == b"/readyz":
            ready = self._ready()
            self._reply(200 if ready else 503, {"ready": ready})
        elif path == b"/stats":
            self._reply(200, self._stats())
        elif path == UPSTREAMS_PATH and self._upstreams is not None:
            self._reply(200, self._upstreams())
        else:
            paths = ["/healthz", "/readyz", "/stats"]
            if self._upstreams is not None:
                paths.append(UPSTREAMS_PATH.decode())
            self._reply(404, {"error": "not found", "paths": paths})
        return HeadersStatus.STOP

    def _reply(self, status: int, doc: object) -> None:
        body = orjson.dumps(doc)
        headers: Headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ]
        self._cb.send_response(status, headers, body)

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.STOP_NO_BUFFER

    def on_destroy(self) -> None:
        pass


class AdminStreamFactory:
    def __init__(
        self,
        ready: ReadySource,
        stats: StatsSource,
        clock: Callable[[], float],
        upstreams: StatsSource | None = None,
    ) -> None:
        self._ready = ready
        self._stats = stats
        self._clock = clock
        self._upstreams = upstreams

    def new_stream(
        self, sink: DownstreamConnection, event: RequestHeaders, protocol: str, now: float
    ) -> ActiveStream:
        info = StreamInfo(now, protocol)
        request = RequestInfo(
            event.method, event.path, "", event.authority, event.headers, Dialect.OPENAI
        )
        f = AdminFilter(event.path, self._ready, self._stats, self._upstreams)
        return ActiveStream(sink, event.stream_id, request, info, [f], [])

    def stream_done(self, stream: ActiveStream) -> None:
        pass


def upstreams_doc(runtime: RuntimeConfig, now: float) -> dict[str, object]:
    """``/admin/upstreams``: per candidate (every configured route's, then any other one a
    breaker tracks) its health, breaker, its deployment's ejection state and the selector's
    live stats; per provider the outlier detector; and the health book's bound."""
    health = runtime.health
    selector = runtime.selector
    seen: dict[str, Candidate] = {}
    for route in (*runtime.routes.values(), *runtime.aliases.values()):
        for cand in selector.candidates(route):
            seen.setdefault(cand.key, cand)
    for key, provider_name, deployment_name, model in health.tracked_keys():
        provider = runtime.providers.get(provider_name)
        if key in seen or provider is None:
            continue
        for deployment in provider.deployments:  # a candidate an explicit request made
            if deployment.name == deployment_name:
                seen[key] = Candidate(provider, deployment, model, info_for(provider, model))
    candidates: dict[str, object] = {}
    for key, cand in seen.items():
        stats = selector.stats(cand)
        last_error = stats.last_error_s
        candidates[key] = {
            "provider": cand.provider.name,
            "deployment": cand.deployment.name,
            "model": cand.model,
            **health.candidate_snapshot(cand, now),
            "selector": {
                "outstanding": stats.outstanding,
                "requests": stats.requests,
                "errors": stats.errors,
                "ttft_ewma_s": round(stats.ttft_s, 6) if stats.samples else None,
                "ttft_samples": stats.samples,
                "last_error_age_s": round(now - last_error, 3) if last_error is not None else None,
            },
        }
    clusters = {}
    for name in runtime.providers:
        detector = health.detector(name)
        if detector is not None:
            clusters[name] = detector.snapshot(now)
    return {
        "candidates": candidates,
        "clusters": clusters,
        "health": {
            "tracked": health.tracked,
            "max_tracked": health.max_keys,
            "evicted_total": health.evicted_total,
        },
    }


def limits_doc(limiter: Limiter) -> dict[str, object]:
    """The ``limits`` object of ``/stats``: the backend, and for Redis its breaker state and
    counters (errors, decisions that fell back to local limits, dropped background calls;
    docs/limits.md)."""
    return limits_stats(limiter)
