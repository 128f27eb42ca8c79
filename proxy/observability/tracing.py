"""OpenTelemetry spans of a finished stream: one server span, one client span per attempt.

How this works. While tracing is on, each stream gets a `TraceState` when it starts (ids and
the sampling decision, proxy/observability/trace_context.py) and the router stamps each
upstream attempt's ``traceparent`` from it. Nothing else happens on the request path: when
the stream ends, `Tracing.finish` makes the spans of a sampled trace from the timings the
stream recorded (its start and end, and one `AttemptRecord` per attempt), with the ids chosen
up front — the SDK draws span ids from an id generator, and ours hands out the preset one.
With tracing off no `Tracing` exists, streams carry no `TraceState`, and the SDK is never
imported.

Attributes follow the OpenTelemetry GenAI semantic conventions (``gen_ai.system``,
``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ...) and
the HTTP ones; Junction's own are under ``junction.``. No prompt, answer or key is recorded.
Spans are exported by OTLP over HTTP in a background thread (the SDK's batch processor).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from proxy.config.observability import TracingConfig
from proxy.observability.trace_context import TraceContextSource

if TYPE_CHECKING:
    from proxy.headers import Headers
    from proxy.http.info import StreamInfo
    from proxy.routing.runtime import RuntimeConfig

_FAILED_OUTCOMES = frozenset({"server_error", "connect_failure", "reset", "timeout"})


class _PresetIds(IdGenerator):
    """Hands out the id set just before a span is made; random ids otherwise."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        value, self.span_id = self.span_id, 0
        return value or self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        value, self.trace_id = self.trace_id, 0
        return value or self._random.generate_trace_id()


class Tracing:
    """The worker's tracer: see the module docstring."""

    def __init__(
        self,
        config: TracingConfig,
        *,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._wall = wall
        self._clock = clock
        self.source = TraceContextSource(config.sample_ratio, rng)
        self._ids = _PresetIds()
        self.provider = TracerProvider(
            sampler=ALWAYS_ON,  # sampling is decided per trace up front (trace_context.py)
            resource=Resource.create({"service.name": config.service_name}),
            id_generator=self._ids,
            shutdown_on_exit=False,
        )
        if config.otlp_endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(
                endpoint=config.otlp_endpoint, timeout=config.export_timeout_s
            )
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self.provider.get_tracer("junction")

    def start(self, info: StreamInfo, headers: Headers) -> None:
        info.trace = self.source.start(headers)

    def finish(self, info: StreamInfo, runtime: RuntimeConfig) -> None:
        state = info.trace
        if state is None or not state.sampled:
            return
        offset_ns = int((self._wall() - self._clock()) * 1e9)

        def ns(t: float) -> int:
            return int(t * 1e9) + offset_ns

        if state.remote_parent:
            parent = SpanContext(
                state.trace_id,
                state.parent_span_id,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            context = otel_trace.set_span_in_context(NonRecordingSpan(parent))
        else:
            context = None
            self._ids.trace_id = state.trace_id
        self._ids.span_id = state.span_id
        method = info.method.decode("latin-1")
        path = info.path.split(b"?", 1)[0][:256].decode("latin-1")
        server = self._tracer.start_span(
            f"{method} {path}",
            context=context,
            kind=SpanKind.SERVER,
            attributes=_server_attributes(info, method, path),
            start_time=ns(info.start_s),
        )
        if info.status >= 500 or (not info.status and info.flags):
            server.set_status(Status(StatusCode.ERROR, ",".join(info.flags) or None))
        inside = otel_trace.set_span_in_context(server)
        # Records are appended as attempts end, span ids drawn as they start: a hedge that
        # lost ends before the primary that won, so pair them in start order. The usage is
        # the answer's: the last attempt to end that was not abandoned.
        answered = next((t for t in reversed(info.tries) if t.outcome != "abandoned"), None)
        started = sorted(info.tries, key=lambda t: t.start_s)
        pairs = zip(started, state.attempt_span_ids, strict=False)
        for i, (attempt, span_id) in enumerate(pairs):
            provider = runtime.providers.get(attempt.provider)
            system = provider.dialect.value if provider is not None else attempt.provider
            attrs: dict[str, Any] = {
                "gen_ai.system": system,
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": attempt.model,
                "junction.provider": attempt.provider,
                "junction.deployment": attempt.deployment,
                "junction.attempt": i + 1,
                "junction.outcome": attempt.outcome,
            }
            if attempt.status:
                attrs["http.response.status_code"] = attempt.status
            if provider is not None:
                for deployment in provider.deployments:
                    if deployment.name == attempt.deployment:
                        attrs["server.address"] = deployment.origin.host
                        attrs["server.port"] = deployment.origin.port
            if attempt.ttfb_s:
                attrs["junction.time_to_first_byte_s"] = round(attempt.ttfb_s, 6)
            if attempt is answered and info.input_tokens >= 0:
                attrs["gen_ai.usage.input_tokens"] = info.input_tokens
                attrs["gen_ai.usage.output_tokens"] = max(info.output_tokens, 0)
            if attempt.outcome in _FAILED_OUTCOMES:
                attrs["error.type"] = attempt.outcome
            self._ids.span_id = span_id
            client = self._tracer.start_span(
                f"chat {attempt.model}",
                context=inside,
                kind=SpanKind.CLIENT,
                attributes=attrs,
                start_time=ns(attempt.start_s),
            )
            if "error.type" in attrs:
                client.set_status(Status(StatusCode.ERROR, attempt.outcome))
            client.end(end_time=ns(attempt.end_s))
        server.end(end_time=ns(info.end_s))

    def shutdown(self) -> None:
        """Export what is queued (bounded by the exporter's timeout) and stop."""
        self.provider.shutdown()


def _server_attributes(info: StreamInfo, method: str, path: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "http.request.method": method,
        "url.path": path,
        "http.response.status_code": info.status,
        "network.protocol.name": "http",
        "junction.request_id": info.request_id.decode("latin-1"),
        "junction.attempts": len(info.tries),
    }
    if info.dialect:
        attrs["junction.client_dialect"] = info.dialect
    if info.route:
        attrs["junction.route"] = info.route
    if info.flags:
        attrs["junction.response_flags"] = ",".join(info.flags)
    if info.upstream_provider:
        attrs["junction.provider"] = info.upstream_provider
        attrs["gen_ai.request.model"] = info.upstream_model
    if info.input_tokens >= 0:
        attrs["gen_ai.usage.input_tokens"] = info.input_tokens
        attrs["gen_ai.usage.output_tokens"] = max(info.output_tokens, 0)
        attrs["junction.cost_usd"] = info.cost_usd
    if info.cached_tokens >= 0:
        attrs["junction.usage.cached_tokens"] = info.cached_tokens
    if info.api_key_name:
        attrs["junction.key"] = info.api_key_name
    return attrs
