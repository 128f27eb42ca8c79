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

from proxy.admin.api import RELOAD_PATH, AdminApi, Reply
from proxy.cache.admin import CACHE_PATH, CacheAdminFilter
from proxy.events import RequestHeaders
from proxy.filters.api import DataStatus, Dialect, FilterCallbacks, HeadersStatus
from proxy.headers import Headers
from proxy.http.info import StreamInfo
from proxy.http.stream import ActiveStream, RequestInfo
from proxy.limits.redis import limits_stats
from proxy.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from proxy.routing.catalog import info_for
from proxy.routing.types import Candidate

if TYPE_CHECKING:
    from proxy.cache.store import ResponseCache
    from proxy.limits.api import Limiter
    from proxy.protocol.connection import DownstreamConnection
    from proxy.routing.runtime import RuntimeConfig

StatsSource = Callable[[], dict[str, object]]
ReadySource = Callable[[], bool]
UPSTREAMS_PATH = b"/admin/upstreams"


class AdminFilter:
    __slots__ = ("_api", "_cb", "_method", "_path", "_ready", "_stats", "_upstreams")

    def __init__(
        self,
        path: bytes,
        ready: ReadySource,
        stats: StatsSource,
        upstreams: StatsSource | None = None,
        api: AdminApi | None = None,
        method: bytes = b"GET",
    ) -> None:
        self._path = path.split(b"?", 1)[0]
        self._ready = ready
        self._stats = stats
        self._upstreams = upstreams
        self._api = api if api is not None else AdminApi()
        self._method = method

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        path = self._path
        api = self._api
        if path not in (b"/healthz", b"/readyz") and not api.authorized(headers):
            # Probes stay open; everything else needs the token when one is configured.
            self._reply(401, {"error": "admin token required"}, [(b"www-authenticate", b"Bearer")])
            return HeadersStatus.STOP
        reply = self._api_reply(path)
        if reply is not None:
            self._send(reply)
        elif path == b"/healthz":
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
            paths += api.paths()
            self._reply(404, {"error": "not found", "paths": paths})
        return HeadersStatus.STOP

    def _api_reply(self, path: bytes) -> Reply | None:
        """The answer of an `AdminApi` path, or None for the paths handled here."""
        api = self._api
        if path == b"/metrics" and api.metrics is not None:
            return Reply(200, api.metrics(), METRICS_CONTENT_TYPE)
        if path == RELOAD_PATH and api.reload is not None:
            if self._method != b"POST":
                return Reply(
                    405, orjson.dumps({"error": "use POST"}), headers=((b"allow", b"POST"),)
                )
            outcome = api.reload()
            return Reply(200 if outcome.get("reloaded") else 422, orjson.dumps(outcome))
        source = {
            b"/admin/config": api.config,
            b"/admin/routes": api.routes,
            b"/admin/usage": api.usage,
        }.get(path)
        if source is None:
            return None
        return Reply(200, orjson.dumps(source()))

    def _send(self, reply: Reply) -> None:
        headers: Headers = [
            (b"content-type", reply.content_type),
            (b"content-length", b"%d" % len(reply.body)),
            *reply.headers,
        ]
        self._cb.send_response(reply.status, headers, reply.body)

    def _reply(self, status: int, doc: object, extra: Headers | None = None) -> None:
        body = orjson.dumps(doc)
        headers: Headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ]
        if extra:
            headers += extra
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
        api: AdminApi | None = None,
        cache: Callable[[], ResponseCache | None] | None = None,
    ) -> None:
        self._ready = ready
        self._stats = stats
        self._clock = clock
        self._upstreams = upstreams
        self._api = api
        self._cache = cache  # the running config's response cache (/admin/cache)

    def new_stream(
        self, sink: DownstreamConnection, event: RequestHeaders, protocol: str, now: float
    ) -> ActiveStream:
        info = StreamInfo(now, protocol)
        request = RequestInfo(
            event.method, event.path, "", event.authority, event.headers, Dialect.OPENAI
        )
        path, _, query = event.path.partition(b"?")
        if path == CACHE_PATH and self._cache is not None:
            api = self._api if self._api is not None else AdminApi()
            cached = CacheAdminFilter(self._cache(), event.method, query, api.authorized)
            return ActiveStream(sink, event.stream_id, request, info, [cached], [])
        f = AdminFilter(
            event.path, self._ready, self._stats, self._upstreams, self._api, event.method
        )
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
        "resources": runtime.resources.snapshot(),
        "retry_budget": {
            "active_requests": runtime.retry_budget.active_requests,
            "active_retries": runtime.retry_budget.active_retries,
            "refused_total": runtime.retry_budget.refused,
        },
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
