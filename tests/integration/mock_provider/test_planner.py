"""The sans-I/O core on its own: schema placeholders, answers and plans, with a fake clock."""

from __future__ import annotations

import json

from proxy.mock_provider.content import placeholder
from proxy.mock_provider.options import FailMode, MockOptions, parse_overrides
from proxy.mock_provider.plan import Ending, Kind
from proxy.mock_provider.planner import Planner

BODY = json.dumps(
    {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}
).encode()


def test_placeholder_follows_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": ["null", "integer"], "exclusiveMinimum": 4},
            "b": {"anyOf": [{"type": "number", "minimum": 3}, {"type": "string"}]},
            "c": {"const": "fixed"},
            "d": {"type": "array", "minItems": 2, "items": {"type": "boolean"}},
            "e": {"properties": {"f": {"type": "null"}}, "required": ["f"]},
            "skipped": {"type": "string"},
        },
        "required": ["a", "b", "c", "d", "e"],
    }
    assert placeholder(schema) == {
        "a": 5,
        "b": 3,
        "c": "fixed",
        "d": [True, True],
        "e": {"f": None},
    }
    deep: dict[str, object] = {"type": "object", "required": ["x"], "properties": {}}
    node = deep
    for _ in range(20):  # nesting beyond the bound stops with a plain value
        child: dict[str, object] = {"type": "object", "required": ["x"], "properties": {}}
        node["properties"] = {"x": child}
        node = child
    assert json.dumps(placeholder(deep)).count("{") <= 10


def test_same_request_same_words_fresh_ids() -> None:
    now = [1_700_000_000.0]
    planner = Planner(MockOptions(), clock=lambda: now[0])
    first = planner.plan(b"POST", b"/v1/chat/completions", [], BODY)
    now[0] += 5  # a new second: the cached OpenAI rendering must not reuse the old `created`
    second = planner.plan(b"POST", b"/v1/chat/completions", [], BODY)
    a, b = json.loads(first.chunks[0]), json.loads(second.chunks[0])
    assert a["choices"] == b["choices"] and a["id"] != b["id"]
    assert b["created"] == a["created"] + 5
    assert first.immediate and second.immediate


def test_overrides_and_fault_plans() -> None:
    planner = Planner(MockOptions(latency_ms=20))
    stream_body = BODY.replace(b'"max_tokens": 50', b'"max_tokens": 50, "stream": true')
    plan = planner.plan(
        b"POST", b"/v1/messages", [(b"x-mock-fail", b"reset-mid-stream")], stream_body
    )
    assert plan.kind is Kind.RESPOND and plan.ending is Ending.RESET and plan.streaming
    assert plan.first_byte_delay_s == 0.02 and not plan.immediate
    assert plan.chunks[0].startswith(b"event: message_start")
    whole = planner.plan(b"POST", b"/v1/messages", [], stream_body)
    assert 2 <= len(plan.chunks) < len(whole.chunks)
    paced = planner.plan(b"POST", b"/v1/messages", [(b"x-mock-tokens-per-s", b"50")], stream_body)
    assert paced.delays_s is not None and max(paced.delays_s) == 0.02
    assert (
        planner.plan(b"POST", b"/v1/messages", [(b"x-mock-fail", b"stall")], b"{").kind
        is Kind.STALL
    )
    bad = planner.plan(b"POST", b"/v1/messages", [(b"x-mock-latency-ms", b"-1")], BODY)
    assert bad.status == 400
    assert FailMode.parse("STATUS:529") == FailMode("status", 529)
    assert parse_overrides([(b"x-mock-status", b"429")]).status == 429
