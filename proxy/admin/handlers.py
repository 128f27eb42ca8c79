"""The admin listener's answers: liveness, readiness (false while draining) and counters.

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

if TYPE_CHECKING:
    from proxy.protocol.connection import DownstreamConnection

StatsSource = Callable[[], dict[str, object]]
ReadySource = Callable[[], bool]


class AdminFilter:
    __slots__ = ("_cb", "_path", "_ready", "_stats")

    def __init__(self, path: bytes, ready: ReadySource, stats: StatsSource) -> None:
        self._path = path.split(b"?", 1)[0]
        self._ready = ready
        self._stats = stats

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
        else:
            self._reply(404, {"error": "not found", "paths": ["/healthz", "/readyz", "/stats"]})
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
    def __init__(self, ready: ReadySource, stats: StatsSource, clock: Callable[[], float]) -> None:
        self._ready = ready
        self._stats = stats
        self._clock = clock

    def new_stream(
        self, sink: DownstreamConnection, event: RequestHeaders, protocol: str, now: float
    ) -> ActiveStream:
        info = StreamInfo(now, protocol)
        request = RequestInfo(
            event.method, event.path, "", event.authority, event.headers, Dialect.OPENAI
        )
        f = AdminFilter(event.path, self._ready, self._stats)
        return ActiveStream(sink, event.stream_id, request, info, [f], [])

    def stream_done(self, stream: ActiveStream) -> None:
        pass
