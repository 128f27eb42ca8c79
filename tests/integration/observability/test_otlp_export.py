"""Spans leave by OTLP over HTTP to the endpoint the config names (a scripted collector)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.integration.proxy.harness import Running
from tests.support.h1server import ScriptedHttp1Server, respond

from .support import message, post


def test_spans_are_exported_to_the_configured_endpoint(
    junction_factory: Callable[..., Running],
    upstream: Callable[[Any], ScriptedHttp1Server],
) -> None:
    collector = upstream(respond(200, body=b""))
    run = junction_factory(
        tracing={
            "enabled": True,
            "otlp_endpoint": f"http://127.0.0.1:{collector.port}/v1/traces",
            "service_name": "junction-test",
        }
    )
    assert post(run, message()).status_code == 200
    run.drain()  # shutting down flushes the exporter's batch
    (sent,) = collector.requests
    assert sent.path == b"/v1/traces"
    assert sent.header(b"content-type") == b"application/x-protobuf"
    export = ExportTraceServiceRequest.FromString(sent.body)
    (resource_spans,) = export.resource_spans
    attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attrs["service.name"] == "junction-test"
    names = sorted(s.name for scope in resource_spans.scope_spans for s in scope.spans)
    assert names == ["POST /v1/messages", "chat claude-sonnet-4-5"]
