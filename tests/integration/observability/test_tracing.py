"""Traces of a running Junction, collected with the SDK's in-memory exporter: a server span
per request, a client span per attempt, and the W3C traceparent the provider receives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.integration.proxy.harness import LoopThread, Running, start_mock
from tests.support.h1server import ScriptedHttp1Server

from .support import failing_first, message, post, scripted_config

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def traced(run: Running) -> InMemorySpanExporter:
    tracing = run.worker.observer.tracing
    assert tracing is not None
    exporter = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def spans(exporter: InMemorySpanExporter, run: Running) -> list[ReadableSpan]:
    run.lt.call(lambda: None)  # the stream ended on the loop before the reply was read
    return list(exporter.get_finished_spans())


def test_server_and_client_spans_follow_the_clients_traceparent(
    junction_factory: Callable[..., Running],
    upstream: Callable[[Any], ScriptedHttp1Server],
) -> None:
    responder = failing_first(1, status=529)
    server = upstream(responder)
    run = junction_factory(tracing={"enabled": True}, **scripted_config(server))
    exporter = traced(run)
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    assert post(run, message(), traceparent=traceparent).status_code == 200

    got = spans(exporter, run)
    (srv,) = [s for s in got if s.kind is SpanKind.SERVER]
    clients = sorted((s for s in got if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert len(clients) == 2  # the 529 and its retry
    assert srv.context is not None and srv.parent is not None
    assert f"{srv.context.trace_id:032x}" == CLIENT_TRACE
    assert f"{srv.parent.span_id:016x}" == CLIENT_SPAN and srv.parent.is_remote
    assert srv.name == "POST /v1/messages"
    assert srv.attributes is not None
    assert srv.attributes["http.response.status_code"] == 200
    assert srv.attributes["junction.attempts"] == 2
    assert srv.attributes["gen_ai.usage.input_tokens"] == 50

    # Each attempt's request carried a traceparent naming that attempt's client span.
    sent = [r.header(b"traceparent") for r in server.requests]
    for span, header in zip(clients, sent, strict=True):
        assert span.context is not None and span.parent is not None
        assert span.parent.span_id == srv.context.span_id
        assert header == f"00-{CLIENT_TRACE}-{span.context.span_id:016x}-01".encode()
        assert span.attributes is not None
        assert span.attributes["gen_ai.system"] == "anthropic"
        assert span.attributes["gen_ai.request.model"] == "claude-sonnet-4-5"
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["server.port"] == server.port
        assert srv.start_time is not None and span.start_time is not None
        assert srv.end_time is not None and span.end_time is not None
        assert srv.start_time <= span.start_time <= span.end_time <= srv.end_time
    failed, ok = clients
    assert failed.attributes is not None and ok.attributes is not None
    assert failed.attributes["http.response.status_code"] == 529
    assert failed.attributes["error.type"] == "server_error"
    assert failed.status.status_code is StatusCode.ERROR
    assert ok.attributes["gen_ai.usage.input_tokens"] == 50
    assert ok.attributes["gen_ai.usage.output_tokens"] == 7
    assert ok.attributes["junction.outcome"] == "success"


def test_a_new_trace_is_started_without_a_client_traceparent(
    junction_factory: Callable[..., Running],
    upstream: Callable[[Any], ScriptedHttp1Server],
) -> None:
    server = upstream(failing_first(0))
    run = junction_factory(tracing={"enabled": True}, **scripted_config(server))
    exporter = traced(run)
    assert post(run, message()).status_code == 200
    (srv,) = [s for s in spans(exporter, run) if s.kind is SpanKind.SERVER]
    assert srv.parent is None and srv.context is not None
    header = server.requests[0].header(b"traceparent")
    assert header is not None
    assert header.startswith(f"00-{srv.context.trace_id:032x}-".encode())
    assert header.endswith(b"-01")


def test_an_unsampled_trace_makes_no_span_but_still_propagates(
    junction_factory: Callable[..., Running],
    upstream: Callable[[Any], ScriptedHttp1Server],
) -> None:
    server = upstream(failing_first(0))
    run = junction_factory(
        tracing={"enabled": True, "sample_ratio": 0.0}, **scripted_config(server)
    )
    exporter = traced(run)
    assert post(run, message()).status_code == 200
    assert spans(exporter, run) == []
    header = server.requests[0].header(b"traceparent")
    assert header is not None and header.endswith(b"-00")


def test_without_tracing_the_clients_traceparent_passes_untouched(
    junction_factory: Callable[..., Running],
    upstream: Callable[[Any], ScriptedHttp1Server],
) -> None:
    server = upstream(failing_first(0))
    run = junction_factory(**scripted_config(server))
    assert run.worker.observer.tracing is None
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    assert post(run, message(), traceparent=traceparent).status_code == 200
    assert server.requests[0].header(b"traceparent") == traceparent.encode()


def test_a_hedge_that_lost_is_its_own_abandoned_span(
    junction_factory: Callable[..., Running], lt: LoopThread
) -> None:
    primary = start_mock(lt, latency_ms=400)
    slower = start_mock(lt, latency_ms=3000)
    try:
        providers = [
            {
                "name": name,
                "dialect": "anthropic",
                "base_url": f"http://127.0.0.1:{m.port}",
                "api_key": f"k-{name}",
                "models": ["claude-sonnet-4-5"],
            }
            for name, m in (("primary", primary), ("slower", slower))
        ]
        targets = ["primary,claude-sonnet-4-5", "slower,claude-sonnet-4-5"]
        run = junction_factory(
            providers=providers,
            router={"default": {"targets": targets, "hedge": {"delay_s": 0.1}}},
            upstream={"response_header_timeout_s": 10.0},
            tracing={"enabled": True},
        )
        exporter = traced(run)
        r = post(run, message(stream=True))
        assert r.status_code == 200 and r.headers["x-junction-route"] == targets[0]
        got = spans(exporter, run)
        clients = {s.attributes["junction.provider"]: s for s in got if s.kind is SpanKind.CLIENT}
        assert set(clients) == {"primary", "slower"}
        won, lost = clients["primary"].attributes, clients["slower"].attributes
        assert won["junction.outcome"] == "success" and won["server.port"] == primary.port
        assert won["gen_ai.usage.output_tokens"] > 0
        assert lost["junction.outcome"] == "abandoned" and lost["server.port"] == slower.port
        assert "gen_ai.usage.output_tokens" not in lost and "error.type" not in lost
        assert clients["primary"].start_time < clients["slower"].start_time  # the hedge later
        # Each provider was sent the id of its own attempt's span.
        for name, mock in (("primary", primary), ("slower", slower)):
            (received,) = mock.recorder.requests
            context = clients[name].context
            assert context is not None
            assert received.header("traceparent") == (
                f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
            )
    finally:
        lt.run(primary.stop())
        lt.run(slower.stop())
