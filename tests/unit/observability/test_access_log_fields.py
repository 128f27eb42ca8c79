"""The access log's fields from a full StreamInfo, in both formats."""

from __future__ import annotations

import orjson

from proxy.http.info import AttemptRecord, StreamInfo
from proxy.observability.access_log import (
    MAX_REMEMBERED_TAILS,
    JsonLines,
    render_json,
    render_text,
)

NOW = 1767607200.25  # 2026-01-05T10:00:00.250Z


def full_info() -> StreamInfo:
    info = StreamInfo(100.0, "HTTP/2")
    info.method = b"POST"
    info.path = b"/v1/chat/completions"
    info.request_id = b"req-42"
    info.dialect = "openai"
    info.status = 200
    info.bytes_received = 512
    info.bytes_sent = 2048
    info.response_started_s = 100.4
    info.end_s = 101.5
    info.add_flag("FB")
    info.upstream_provider = "anthropic"
    info.upstream_model = "claude-sonnet-4-5"
    info.upstream_deployment = "us-east"
    info.upstream_host = "api.example"
    info.route = "default"
    info.scenario = "default"
    info.session_id = "3f1c-session"
    info.attempts = 2
    info.input_tokens = 1200
    info.output_tokens = 300
    info.cached_tokens = 1000
    info.cost_usd = 0.0081
    info.cache = "miss"
    info.api_key_name = "ci-bot"
    info.tries = [
        AttemptRecord(
            100.0, 100.1, "other", "default", "m", "other/default/m", 529, "server_error", 0.0
        ),
        AttemptRecord(
            100.1, 101.5, "anthropic", "us-east", "claude-sonnet-4-5", "k", 200, "success", 0.3
        ),
    ]
    return info


def test_json_has_every_field() -> None:
    line = orjson.loads(render_json(full_info(), "half_open", NOW))
    assert line == {
        "ts": NOW,
        "request_id": "req-42",
        "protocol": "HTTP/2",
        "dialect": "openai",
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "flags": "FB",
        "bytes_in": 512,
        "bytes_out": 2048,
        "ttfb_ms": 400.0,
        "duration_ms": 1500.0,
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "deployment": "us-east",
        "upstream_host": "api.example",
        "route": "default",
        "scenario": "default",
        "session": "3f1c-session",
        "attempts": 2,
        "retries": 1,
        "upstream_status": 200,
        "breaker": "half_open",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cached_tokens": 1000,
        "cost_usd": 0.0081,
        "cache": "miss",
        "key": "ci-bot",
    }


def test_text_is_one_line_with_control_characters_escaped() -> None:
    info = full_info()
    info.path = b"/v1/messages\x1b[31m\r\nFAKE"
    text = render_text(info, "closed", NOW).decode()
    assert text.endswith("\n") and text.count("\n") == 1 and "\x1b" not in text
    assert text == (
        "2026-01-05T10:00:00.250Z req=req-42 POST /v1/messages\\x1b[31m\\r\\nFAKE 200 "
        "openai>anthropic/claude-sonnet-4-5@us-east 1500.0ms ttfb=400.0ms in=1200 out=300 "
        "cached=1000 $0.008100 tries=2 flags=FB breaker=closed cache=miss key=ci-bot\n"
    )


def test_remembered_fields_follow_each_request() -> None:
    # The config-derived part of a line is remembered per combination: a request that differs
    # in any one of those fields must get its own values, never a neighbour's.
    lines = JsonLines()
    first = orjson.loads(lines.line(full_info(), "closed", NOW))
    changes: dict[str, tuple[str, object]] = {
        "method": ("method", b"GET"),
        "path": ("path", b"/v1/messages"),
        "status": ("status", 429),
        "attempts": ("attempts", 3),
        "upstream_provider": ("provider", "openai"),
        "upstream_model": ("model", "gpt-4o"),
        "upstream_deployment": ("deployment", "eu"),
        "upstream_host": ("upstream_host", "eu.example"),
        "route": ("route", "background"),
        "scenario": ("scenario", "background"),
        "cache": ("cache", "hit"),
        "api_key_name": ("key", "other-bot"),
        "dialect": ("dialect", "anthropic"),
        "protocol": ("protocol", "HTTP/1.1"),
    }
    for attr, (field, value) in changes.items():
        info = full_info()
        setattr(info, attr, value)
        line = orjson.loads(lines.line(info, "closed", NOW))
        shown = value.decode() if isinstance(value, bytes) else value
        assert line == {**first, field: shown}, attr
    info = full_info()
    info.add_flag("RT")
    assert orjson.loads(lines.line(info, "closed", NOW)) == {**first, "flags": "FB,RT"}
    info = full_info()
    info.tries = info.tries[1:]  # one attempt: no retries, its status
    line = orjson.loads(lines.line(info, "closed", NOW))
    assert line == {**first, "retries": 0}
    info.tries = []  # none: no upstream status either
    line = orjson.loads(lines.line(info, "closed", NOW))
    assert line == {**first, "retries": 0, "upstream_status": None}
    info = full_info()
    info.tries[-1].status = 0  # an attempt without a response head
    line = orjson.loads(lines.line(info, "closed", NOW))
    assert line == {**first, "upstream_status": None}
    info = full_info()
    info.status, info.attempts = 0, 0  # a zero is a value, not null
    line = orjson.loads(lines.line(info, "closed", NOW))
    assert line == {**first, "status": 0, "attempts": 0}
    assert orjson.loads(lines.line(full_info(), "open", NOW)) == {**first, "breaker": "open"}
    # Empty names are null, and the request's own figures are never remembered.
    info = full_info()
    info.api_key_name, info.cache, info.request_id = "", "", b"req-43"
    info.bytes_sent, info.input_tokens, info.cost_usd = 7, -1, 0.5
    line = orjson.loads(lines.line(info, "", NOW + 1))
    assert (line["key"], line["cache"], line["breaker"]) == (None, None, None)
    assert (line["request_id"], line["bytes_out"], line["input_tokens"]) == ("req-43", 7, None)
    assert (line["cost_usd"], line["ts"]) == (0.5, NOW + 1)


def test_remembered_fields_are_bounded() -> None:
    lines = JsonLines()
    for n in range(MAX_REMEMBERED_TAILS + 10):
        info = full_info()
        info.api_key_name = f"key-{n}"
        assert orjson.loads(lines.line(info, "closed", NOW))["key"] == f"key-{n}"
        assert len(lines._tails) <= MAX_REMEMBERED_TAILS
