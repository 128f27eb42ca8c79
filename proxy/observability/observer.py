"""What happens when a stream starts and ends, for everything that watches streams.

At the start: with tracing on, the stream's trace ids (the router stamps them on its
upstream requests). At the end, in this order: the usage is priced and added to the totals
(so the cost is on the info), then metrics, the access log line and the spans are made from
the same info. The proxy's stream factory calls it; nothing here touches the request path
before the end of a stream except `on_stream_start` while tracing is on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from proxy.observability.usage import UsageTotals
from proxy.resilience.breaker import STATE_NAMES

if TYPE_CHECKING:
    from proxy.headers import Headers
    from proxy.http.info import StreamInfo
    from proxy.observability.access_log import AccessLog
    from proxy.observability.proxy_metrics import ProxyMetrics
    from proxy.observability.tracing import Tracing
    from proxy.routing.runtime import RuntimeConfig


class StreamObserver:
    def __init__(
        self,
        *,
        access_log: AccessLog | None = None,
        metrics: ProxyMetrics | None = None,
        tracing: Tracing | None = None,
        usage: UsageTotals | None = None,
        started_unix_s: float | None = None,
    ) -> None:
        self.access_log = access_log
        self.metrics = metrics
        self.tracing = tracing
        self.usage = usage if usage is not None else UsageTotals()
        self.started_unix_s = started_unix_s if started_unix_s is not None else time.time()

    def on_stream_start(self, info: StreamInfo, headers: Headers) -> None:
        if self.tracing is not None:
            self.tracing.start(info, headers)

    def on_stream_done(self, info: StreamInfo, runtime: RuntimeConfig) -> None:
        self.usage.record(info, runtime)
        if self.metrics is not None:
            self.metrics.on_stream_done(info)
        if self.access_log is not None and runtime.access_log:
            breaker = ""
            if info.tries:
                found = runtime.health.breaker(info.tries[-1].key)
                if found is not None:
                    breaker = STATE_NAMES[found.state]
            self.access_log.record(info, breaker)
        if self.tracing is not None:
            self.tracing.finish(info, runtime)

    def usage_doc(self) -> dict[str, object]:
        return self.usage.doc(self.started_unix_s)
