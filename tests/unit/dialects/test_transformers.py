"""Provider transformers: golden requests, responses and streams per built-in, the JSON
repair, chain order, the registry and config validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import load_config
from proxy.dialects.transformers import tools as tools_module
from proxy.dialects.transformers.api import BaseTransformer, JSONObject, TransformContext
from proxy.dialects.transformers.json_repair import (
    MAX_REPAIR_DEPTH,
    JsonRepairError,
    repair_arguments,
    repair_json,
)
from proxy.dialects.transformers.registry import (
    BUILTIN,
    TransformerChain,
    TransformerConfigError,
    build_chain,
    provider_transformers,
)
from proxy.dialects.transformers.tools import unrepaired_arguments
from proxy.errors import ConfigError
from proxy.filters.api import Dialect

OPENAI = Dialect.OPENAI
ANTHROPIC = Dialect.ANTHROPIC
USER_CLASS = "tests.fixtures.dialects.transformers.user_transformer"


def ctx(dialect: Dialect = OPENAI, *, model: str = "m", stream: bool = False) -> TransformContext:
    return TransformContext(
        provider="p", dialect=dialect, model=model, client_dialect=ANTHROPIC, stream=stream
    )


def one(spec: object) -> Any:
    (transformer,) = build_chain([spec], where="t")
    return transformer


def request(spec: object, body: JSONObject, context: TransformContext | None = None) -> JSONObject:
    """Run a request hook and check that it left its input alone."""
    before = copy.deepcopy(body)
    out: JSONObject = one(spec).transform_request(body, context or ctx())
    assert body == before, "request hooks must not change their input"
    return out


def run_stream(
    spec: object, objs: list[JSONObject], context: TransformContext | None = None
) -> list[JSONObject]:
    chain = TransformerChain([one(spec)])
    context = context or ctx(stream=True)
    out: list[JSONObject] = []
    for obj in objs:
        out += chain.stream(obj, context)
    return out + chain.end(context)


def chunk(delta: JSONObject, finish: str | None = None, **extra: Any) -> JSONObject:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def call(index: int, arguments: str, *, name: str | None = None) -> JSONObject:
    entry: JSONObject = {"index": index, "function": {"arguments": arguments}}
    if name is not None:
        entry = {"index": index, "id": f"call_{index}", "type": "function"}
        entry["function"] = {"name": name, "arguments": arguments}
    return entry


# --- parameters -----------------------------------------------------------------------------


def test_maxtoken_clamps_and_fills_for_anthropic() -> None:
    spec = ["maxtoken", {"max_tokens": 8192}]
    body = {"model": "m", "max_tokens": 64000, "max_completion_tokens": 100}
    assert request(spec, body) == {"model": "m", "max_tokens": 8192, "max_completion_tokens": 100}
    assert request(spec, {"model": "m"}) == {"model": "m"}
    assert request(spec, {"model": "m"}, ctx(ANTHROPIC)) == {"model": "m", "max_tokens": 8192}
    small = {"max_tokens": 10}
    assert request(spec, small) is small


def test_maxcompletiontokens_renames() -> None:
    spec = "maxcompletiontokens"
    assert request(spec, {"max_tokens": 5, "x": 1}) == {"x": 1, "max_completion_tokens": 5}
    both = {"max_tokens": 5, "max_completion_tokens": 9}
    assert request(spec, both) == {"max_completion_tokens": 5}
    assert request(spec, {"max_tokens": 50, "max_completion_tokens": 9}) == {
        "max_completion_tokens": 9
    }
    assert request(spec, {"max_completion_tokens": 9}) == {"max_completion_tokens": 9}


def test_sampling_sets_overrides_and_removes() -> None:
    spec = ["sampling", {"temperature": 0.6, "top_k": 20, "top_p": None}]
    body = {"temperature": 1, "top_p": 0.9, "model": "m"}
    assert request(spec, body) == {"model": "m", "temperature": 0.6, "top_k": 20}


def test_customparams_merges_mappings_and_null_removes() -> None:
    spec = ["customparams", {"extra_body": {"b": 2}, "seed": 7, "user": None}]
    body = {"extra_body": {"a": 1}, "user": "u", "model": "m"}
    assert request(spec, body) == {"extra_body": {"a": 1, "b": 2}, "model": "m", "seed": 7}


def test_streamoptions() -> None:
    assert request("streamoptions", {"stream": True}) == {
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert request("streamoptions", {"stream": True, "stream_options": {"x": 1}}) == {
        "stream": True,
        "stream_options": {"x": 1, "include_usage": True},
    }
    assert request("streamoptions", {"stream": False, "stream_options": {}}) == {"stream": False}


CACHED_ANTHROPIC: JSONObject = {
    "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
                {"type": "tool_result", "tool_use_id": "t", "content": "r"},
            ],
        }
    ],
    "tools": [
        {
            "name": "T",
            "cache_control": {"type": "ephemeral"},
            "input_schema": {"type": "object", "properties": {"cache_control": {"type": "string"}}},
        }
    ],
}


def test_cleancache_removes_markers_but_not_schema_properties() -> None:
    out = request("cleancache", CACHED_ANTHROPIC, ctx(ANTHROPIC))
    assert out == {
        "system": [{"type": "text", "text": "s"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "tool_result", "tool_use_id": "t", "content": "r"},
                ],
            }
        ],
        "tools": [
            {
                "name": "T",
                "input_schema": {
                    "type": "object",
                    "properties": {"cache_control": {"type": "string"}},
                },
            }
        ],
    }
    # Untouched subtrees are shared, not copied.
    assert out["messages"][0]["content"][1] is CACHED_ANTHROPIC["messages"][0]["content"][1]
    plain = {"messages": [{"role": "user", "content": "x"}]}
    assert request("cleancache", plain) is plain


# Shaped like Claude Code's schemas (protocol.md §1.1).
CC_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "format": {"type": "string", "format": "uri", "default": "x"},
        "when": {"type": "string", "format": "date-time"},
        "limit": {"type": "integer", "exclusiveMinimum": 0},
        "ratio": {"type": "number", "exclusiveMaximum": 1.5, "maximum": 3},
        "old": {"type": "number", "exclusiveMinimum": True, "minimum": 2},
        "tags": {
            "type": "array",
            "items": {"anyOf": [{"type": "string", "format": "email"}, {"const": "none"}]},
        },
        "env": {
            "type": "object",
            "propertyNames": {"pattern": "^[A-Z]+$"},
            "additionalProperties": {"type": "string"},
        },
    },
    "required": ["format"],
    "$defs": {"d": {"type": "string", "default": ""}},
}
CC_SCHEMA_CLEAN = {
    "type": "object",
    "properties": {
        "format": {"type": "string"},
        "when": {"type": "string", "format": "date-time"},
        "limit": {"type": "integer", "minimum": 1},
        "ratio": {"type": "number", "maximum": 3},
        "old": {"type": "number", "minimum": 2},
        "tags": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"const": "none"}]}},
        "env": {"type": "object"},
    },
    "required": ["format"],
    "$defs": {"d": {"type": "string"}},
}


def test_cleanschema_openai_and_anthropic() -> None:
    openai_body = {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": CC_SCHEMA}}]
    }
    assert request("cleanschema", openai_body) == {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": CC_SCHEMA_CLEAN}}]
    }
    anthropic_body = {"tools": [{"name": "f", "input_schema": CC_SCHEMA}, {"type": "web_search"}]}
    assert request("cleanschema", anthropic_body, ctx(ANTHROPIC)) == {
        "tools": [{"name": "f", "input_schema": CC_SCHEMA_CLEAN}, {"type": "web_search"}]
    }
    clean = {"tools": [{"name": "f", "input_schema": CC_SCHEMA_CLEAN}]}
    assert request("cleanschema", clean, ctx(ANTHROPIC)) is clean


def test_cleanschema_options() -> None:
    spec = ["cleanschema", {"remove": ["default"], "keep_formats": []}]
    body = {
        "tools": [{"name": "f", "input_schema": {"type": "string", "default": 1, "format": "x"}}]
    }
    assert request(spec, body, ctx(ANTHROPIC)) == {
        "tools": [{"name": "f", "input_schema": {"type": "string", "format": "x"}}]
    }


RESPONSE = {
    "id": "x",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}


@pytest.mark.parametrize(
    "spec",
    [
        ["maxtoken", {"max_tokens": 5}],
        "maxcompletiontokens",
        ["sampling", {"temperature": 0}],
        ["customparams", {"a": 1}],
        "streamoptions",
        "cleancache",
        "cleanschema",
        "groq",
        "tooluse",
        "enhancetool",
    ],
)
def test_request_side_transformers_leave_plain_responses_alone(spec: object) -> None:
    transformer = one(spec)
    assert transformer.transform_response(copy.deepcopy(RESPONSE), ctx()) == RESPONSE
    text = chunk({"content": "hi"})
    assert run_stream(spec, [copy.deepcopy(text), chunk({}, "stop")]) == [text, chunk({}, "stop")]


def test_options_are_not_shared_with_requests() -> None:
    transformer = one(["customparams", {"extra_body": {"a": [1]}}])
    out = transformer.transform_request({}, ctx())
    out["extra_body"]["a"].append(2)
    assert transformer.transform_request({}, ctx()) == {"extra_body": {"a": [1]}}


# --- providers ------------------------------------------------------------------------------


def test_deepseek_request() -> None:
    body = {
        "model": "deepseek-chat",
        "max_completion_tokens": 64000,
        "top_k": 5,
        "reasoning_effort": "high",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": {}}},
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "s", "cache_control": {}}]},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1", "reasoning_content": "old"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": None, "reasoning_content": "now", "tool_calls": []},
            {"role": "tool", "tool_call_id": "c", "content": "r"},
        ],
    }
    assert request("deepseek", body) == {
        "model": "deepseek-chat",
        "max_tokens": 8192,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "s"}]},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": None, "reasoning_content": "now", "tool_calls": []},
            {"role": "tool", "tool_call_id": "c", "content": "r"},
        ],
    }
    assert request(["deepseek", {"max_tokens": 32000}], {"max_tokens": 64000}) == {
        "max_tokens": 32000
    }
    keep = {"max_tokens": 100, "response_format": {"type": "json_object"}}
    assert request("deepseek", keep) is keep


def test_deepseek_reports_cache_hits_as_cached_tokens() -> None:
    deepseek = one("deepseek")
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "prompt_cache_hit_tokens": 8}
    body = deepseek.transform_response({"choices": [], "usage": dict(usage)}, ctx())
    assert body["usage"] == {**usage, "prompt_tokens_details": {"cached_tokens": 8}}
    present = {**usage, "prompt_tokens_details": {"cached_tokens": 3}}
    (out,) = run_stream("deepseek", [{"choices": [], "usage": copy.deepcopy(present)}])
    assert out["usage"] == present


def test_openrouter_cache_control_only_for_anthropic_models_and_options() -> None:
    spec = ["openrouter", {"provider": {"order": ["x"]}, "transforms": ["middle-out"]}]
    body = {
        "model": "anthropic/claude-sonnet-4.5",
        "provider": {"allow_fallbacks": False},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "t", "cache_control": {}}]}
        ],
    }
    assert request(spec, body) == {
        **body,
        "provider": {"allow_fallbacks": False, "order": ["x"]},
        "transforms": ["middle-out"],
    }
    other = {**body, "model": "google/gemini-2.5-pro"}
    assert request("openrouter", other)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "t"}]}
    ]


def test_openrouter_and_reasoning_move_reasoning_text() -> None:
    body = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "reasoning": "hm", "content": "a"}}
        ]
    }
    for name in ("openrouter", "reasoning"):
        out = one(name).transform_response(copy.deepcopy(body), ctx())
        assert out["choices"][0]["message"] == {
            "role": "assistant",
            "content": "a",
            "reasoning_content": "hm",
        }
        stream = run_stream(
            name, [chunk({"reasoning": "x"}), chunk({"reasoning": None, "content": "y"})]
        )
        assert [c["choices"][0]["delta"] for c in stream] == [
            {"reasoning_content": "x"},
            {"content": "y"},
        ]


def test_groq_request() -> None:
    body = {
        "model": "llama",
        "top_k": 1,
        "logprobs": True,
        "top_logprobs": 2,
        "logit_bias": {},
        "reasoning": {"effort": "low"},
        "reasoning_effort": "low",
        "messages": [
            {
                "role": "user",
                "name": "bob",
                "content": [{"type": "text", "text": "t", "cache_control": {}}],
            }
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {"$schema": "s", "type": "object", "format": "keep"},
                },
            }
        ],
    }
    assert request("groq", body) == {
        "model": "llama",
        "reasoning_effort": "low",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "t"}]}],
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "format": "keep"}},
            }
        ],
    }


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"reasoning": {"effort": "high"}}),
        ({"style": "reasoning_max_tokens"}, {"reasoning": {"max_tokens": 24576}}),
        ({"style": "enable_thinking"}, {"enable_thinking": True, "thinking_budget": 24576}),
        ({"style": "thinking"}, {"thinking": {"type": "enabled", "budget_tokens": 24576}}),
        ({"style": "effort"}, {"reasoning_effort": "high"}),
        (
            {"style": "thinking", "budgets": {"high": 4000}},
            {"thinking": {"type": "enabled", "budget_tokens": 4000}},
        ),
        ({"enable": False}, {"reasoning": {"enabled": False}}),
        ({"enable": False, "style": "thinking"}, {"thinking": {"type": "disabled"}}),
    ],
)
def test_reasoning_request_styles(options: JSONObject, expected: JSONObject) -> None:
    body = {"model": "m", "max_tokens": 64000, "reasoning_effort": "high"}
    assert request(["reasoning", options], body) == {"model": "m", "max_tokens": 64000, **expected}


def test_reasoning_budget_stays_below_max_tokens_and_no_effort_is_left_alone() -> None:
    body = {"max_tokens": 2000, "reasoning_effort": "high"}
    assert request(["reasoning", {"style": "enable_thinking"}], body) == {
        "max_tokens": 2000,
        "enable_thinking": True,
        "thinking_budget": 1999,
    }
    plain = {"max_tokens": 2000}
    assert request("reasoning", plain) is plain


# --- tooluse --------------------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}]


def test_tooluse_request() -> None:
    body: JSONObject = {
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}],
        "tools": TOOLS,
    }
    out = request("tooluse", body)
    assert out["tool_choice"] == "required"
    assert [t["function"]["name"] for t in out["tools"]] == ["Read", "ExitTool"]
    assert out["tools"][1]["function"]["parameters"]["required"] == ["response"]
    assert out["messages"][0]["content"].startswith("sys\n\n<system-reminder>")
    assert out["messages"][1:] == body["messages"][1:]
    no_system = request("tooluse", {"messages": [{"role": "user", "content": "q"}], "tools": TOOLS})
    assert no_system["messages"][0]["role"] == "system"
    untouched: JSONObject
    for untouched in (
        {"messages": [], "tools": TOOLS, "tool_choice": "none"},
        {
            "messages": [],
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "Read"}},
        },
        {"messages": [], "tools": []},
    ):
        assert request("tooluse", untouched) is untouched


def test_tooluse_response_turns_exit_tool_into_text() -> None:
    exit_call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "ExitTool", "arguments": '{"response": "Done."}'},
    }
    body = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [exit_call]},
                "finish_reason": "tool_calls",
            }
        ]
    }
    assert one("tooluse").transform_response(body, ctx()) == {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Done."},
                "finish_reason": "stop",
            }
        ]
    }
    read = {"id": "c2", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
    mixed = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "a", "tool_calls": [read, exit_call]},
                "finish_reason": "tool_calls",
            }
        ]
    }
    assert one("tooluse").transform_response(mixed, ctx()) == {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "a\nDone.", "tool_calls": [read]},
                "finish_reason": "tool_calls",
            }
        ]
    }


def test_tooluse_stream_turns_exit_tool_into_text() -> None:
    objs = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"tool_calls": [call(0, "", name="ExitTool")]}),
        chunk({"tool_calls": [call(0, '{"respon')]}),
        chunk({"tool_calls": [call(0, 'se": "Hi"}')]}),
        chunk({}, "tool_calls"),
    ]
    assert run_stream("tooluse", objs) == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hi"}),
        chunk({}, "stop"),
    ]


def test_tooluse_stream_keeps_other_calls() -> None:
    objs = [
        chunk({"tool_calls": [call(0, "{}", name="Read")]}),
        chunk({"tool_calls": [call(1, '{"response": "x"}', name="ExitTool")]}),
        chunk({}, "tool_calls"),
    ]
    assert run_stream("tooluse", objs) == [
        chunk({"tool_calls": [call(0, "{}", name="Read")]}),
        chunk({"content": "x"}),
        chunk({}, "tool_calls"),
    ]


# --- enhancetool ----------------------------------------------------------------------------


def test_enhancetool_response_openai_and_anthropic() -> None:
    context = ctx()
    calls = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{'path': 'x',}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"ok": 1}'}},
        {"id": "c", "type": "function", "function": {"name": "h", "arguments": "not json"}},
    ]
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": calls}}]}
    out = one("enhancetool").transform_response(body, context)
    assert [c["function"]["arguments"] for c in out["choices"][0]["message"]["tool_calls"]] == [
        '{"path":"x"}',
        '{"ok": 1}',
        "{}",
    ]
    assert unrepaired_arguments(context) == ["not json"]
    anthropic = {"content": [{"type": "tool_use", "id": "t", "name": "f", "input": '{"a": True'}]}
    out = one("enhancetool").transform_response(anthropic, ctx(ANTHROPIC))
    assert out["content"] == [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": True}}]


def test_enhancetool_stream_openai_interleaved_calls() -> None:
    objs = [
        chunk({"role": "assistant"}),
        chunk({"tool_calls": [call(0, '{"a": ', name="f")]}),
        chunk({"tool_calls": [call(1, "{'b'", name="g")]}),
        chunk({"tool_calls": [call(0, "[1, 2,]")]}),
        chunk({"tool_calls": [call(1, ": None")]}),
        chunk({}, "tool_calls", usage=None),
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 1},
        },
    ]
    out = run_stream("enhancetool", objs)
    assert out == [
        chunk({"role": "assistant"}),
        chunk({"tool_calls": [call(0, "", name="f")]}),
        chunk({"tool_calls": [call(1, "", name="g")]}),
        chunk({"tool_calls": [call(0, '{"a":[1,2]}')]}, usage=None),
        chunk({"tool_calls": [call(1, '{"b":null}')]}, usage=None),
        chunk({}, "tool_calls", usage=None),
        objs[-1],
    ]


def test_enhancetool_stream_valid_arguments_pass_unchanged_and_end_flushes() -> None:
    objs = [
        chunk({"tool_calls": [call(0, '{"a": 1}', name="f")]}),
        chunk({"tool_calls": [call(1, "", name="g")]}),
    ]
    assert run_stream("enhancetool", objs) == [
        chunk({"tool_calls": [call(0, "", name="f")]}),
        chunk({"tool_calls": [call(1, "", name="g")]}),
        chunk({"tool_calls": [call(0, '{"a": 1}')]}),
        chunk({"tool_calls": [call(1, "{}")]}),
    ]


def test_enhancetool_finish_chunk_with_content_is_split() -> None:
    objs = [chunk({"tool_calls": [call(0, "{", name="f")]}), chunk({"content": "x"}, "tool_calls")]
    assert run_stream("enhancetool", objs) == [
        chunk({"tool_calls": [call(0, "", name="f")]}),
        chunk({"content": "x"}),
        chunk({"tool_calls": [call(0, "{}")]}),
        chunk({}, "tool_calls"),
    ]


def test_enhancetool_stream_anthropic() -> None:
    def delta(index: int, partial: str) -> JSONObject:
        return {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "input_json_delta", "partial_json": partial},
        }

    start = {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
    }
    text = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "hi"},
    }
    stop = {"type": "content_block_stop", "index": 1}
    objs = [
        text,
        start,
        delta(1, ""),
        delta(1, '{"path": "a'),
        delta(1, "b"),
        stop,
        {"type": "message_stop"},
    ]
    assert run_stream("enhancetool", copy.deepcopy(objs), ctx(ANTHROPIC, stream=True)) == [
        text,
        start,
        delta(1, '{"path":"ab"}'),
        stop,
        {"type": "message_stop"},
    ]


def test_enhancetool_overflow_streams_raw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools_module, "MAX_BUFFERED_ARGUMENT_CHARS", 8)
    objs = [
        chunk({"tool_calls": [call(0, '{"a": ', name="f")]}),
        chunk({"tool_calls": [call(0, '"long value"')]}),
        chunk({"tool_calls": [call(0, "}")]}),
        chunk({}, "tool_calls"),
    ]
    assert run_stream("enhancetool", objs) == [
        chunk({"tool_calls": [call(0, "", name="f")]}),
        chunk({"tool_calls": [call(0, '{"a": "long value"')]}),
        chunk({"tool_calls": [call(0, "}")]}),
        chunk({}, "tool_calls"),
    ]


# --- JSON repair ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1,}', {"a": 1}),
        ("{'a': 'it\\'s'}", {"a": "it's"}),
        ('{"a": [1, 2', {"a": [1, 2]}),
        ('{"a": "unclosed', {"a": "unclosed"}),
        ('{"a": True, "b": False, "c": None}', {"a": True, "b": False, "c": None}),
        ("{a: 1, b: two}", {"a": 1, "b": "two"}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Arguments: {"a": 1} -- done', {"a": 1}),
        ('"{\\"a\\": 1}"', {"a": 1}),
        ('{"a":', {}),
        ('{"a": tr', {"a": True}),
        ('{"a": nu', {"a": None}),
        ('{"a": 1.', {"a": 1.0}),
        ('{"a": -', {}),
        ('{"a": 1 "b": 2}', {"a": 1, "b": 2}),
        ('{"a": , "b": 2}', {"b": 2}),
        ('{"a": "x\ny"}', {"a": "x\ny"}),
        ('{"p": "C:\\Users"}', {"p": "C:\\Users"}),
        ('{"a": "\\ud83d\\ude00", "b": "\\u00', {"a": "\U0001f600", "b": ""}),
        ('{"a": 1} // comment', {"a": 1}),
        ('{/* c */ "a": [1,,2]}', {"a": [1, 2]}),
        ('{"a": NaN, "b": -Infinity, "c": 1e999}', {"a": None, "b": None, "c": None}),
        ('{"a": 1}}', {"a": 1}),
        ("", {}),
        ("   ", {}),
        ("{", {}),
        ('{"', {}),
        ('{"a": {"b": [{"c": "d', {"a": {"b": [{"c": "d"}]}}),
    ],
)
def test_repair_arguments(text: str, expected: JSONObject) -> None:
    assert repair_arguments(text) == expected


@pytest.mark.parametrize("text", ["[1, 2]", "nope", "42", "}", "[" * (MAX_REPAIR_DEPTH + 2)])
def test_repair_arguments_refuses(text: str) -> None:
    with pytest.raises(JsonRepairError):
        repair_arguments(text)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
JSON_OBJECTS = st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5)


@settings(max_examples=150, deadline=None)
@given(value=JSON_VALUES, ascii_only=st.booleans(), indent=st.sampled_from([None, 2]))
def test_tolerant_parser_reads_valid_json_exactly(
    value: Any, ascii_only: bool, indent: int | None
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert repair_json(text) == value
    # Trailing prose defeats the fast path: the tolerant parser must read the same value.
    assert repair_json(text + " trailing words") == value


@settings(max_examples=150, deadline=None)
@given(obj=JSON_OBJECTS)
def test_repair_of_any_object_is_that_object(obj: JSONObject) -> None:
    assert repair_arguments(json.dumps(obj)) == obj


@settings(max_examples=150, deadline=None)
@given(obj=JSON_OBJECTS, data=st.data())
def test_truncated_objects_repair_to_json_objects(obj: JSONObject, data: st.DataObject) -> None:
    text = json.dumps(obj, ensure_ascii=data.draw(st.booleans()))
    cut = data.draw(st.integers(0, len(text)))
    repaired = repair_arguments(text[:cut])
    assert isinstance(repaired, dict)
    assert json.loads(json.dumps(repaired)) == repaired


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_repair_of_any_text_returns_or_refuses(text: str) -> None:
    try:
        value = repair_arguments(text)
    except JsonRepairError:
        return
    assert isinstance(value, dict)
    assert json.loads(json.dumps(value)) == value


# --- chain order and registry ---------------------------------------------------------------


class Recorder(BaseTransformer):
    def __init__(self, name: str, *, hold: bool = False) -> None:
        self.name = name
        self.hold = hold

    def transform_request(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        return {**body, "seen": [*body.get("seen", []), self.name]}

    def transform_response(self, body: JSONObject, ctx: TransformContext) -> JSONObject:
        body["seen"] = [*body.get("seen", []), self.name]
        return body

    def transform_stream(self, obj: JSONObject, ctx: TransformContext) -> list[JSONObject]:
        obj["seen"] = [*obj.get("seen", []), self.name]
        if self.hold:
            ctx.state.setdefault("held", []).append(obj)
            return []
        return [obj]

    def stream_end(self, ctx: TransformContext) -> list[JSONObject]:
        return ctx.state.pop("held", []) if self.hold else []


def test_chain_order_rule() -> None:
    chain = TransformerChain([Recorder("first"), Recorder("second")])
    context = ctx()
    assert chain.request({}, context) == {"seen": ["first", "second"]}
    assert chain.response({}, context) == {"seen": ["second", "first"]}
    assert chain.stream({}, context) == [{"seen": ["second", "first"]}]
    assert chain.end(context) == []
    assert not TransformerChain([]) and len(chain) == 2


def test_chain_end_releases_pass_the_later_transformers() -> None:
    chain = TransformerChain([Recorder("outer"), Recorder("holder", hold=True)])
    context = ctx()
    assert chain.stream({"n": 1}, context) == []
    assert chain.end(context) == [{"n": 1, "seen": ["holder", "outer"]}]


def test_every_builtin_builds_without_options_except_maxtoken() -> None:
    for name in BUILTIN:
        spec: object = ["maxtoken", {"max_tokens": 1}] if name == "maxtoken" else name
        assert one(spec).name == name
    assert one("DeepSeek").name == "deepseek"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("foo", "t[0]: unknown transformer 'foo' (known: anthropiccompat, cleancache, "),
        (
            ["maxtoken"],
            "t[0]: bad options for 'maxtoken': missing a required argument: 'max_tokens'",
        ),
        (
            ["maxtoken", {"max_tokens": 0}],
            "t[0]: maxtoken: option 'max_tokens' must be a positive integer (got 0)",
        ),
        (
            ["streamoptions", {"x": 1}],
            "t[0]: bad options for 'streamoptions': got an unexpected keyword argument 'x'",
        ),
        (["sampling", {"temp": 1}], "t[0]: sampling: unknown option 'temp'"),
        (["maxtoken", 5], "t[0]: options for 'maxtoken' must be a mapping of names to values"),
        ([], "t[0]: must be a transformer name or [name, {options}]"),
        (3, "t[0]: must be a transformer name or [name, {options}]"),
        ("no_such_module_x:Foo", "t[0]: cannot import 'no_such_module_x:Foo' (ModuleNotFoundError"),
        (
            f"{USER_CLASS}:Missing",
            f"t[0]: cannot import '{USER_CLASS}:Missing' (no class 'Missing'",
        ),
        (
            f"{USER_CLASS}:NotATransformer",
            f"t[0]: '{USER_CLASS}:NotATransformer' is not a transformer",
        ),
        (
            [f"{USER_CLASS}:TagTransformer", {"tag": ""}],
            f"t[0]: {USER_CLASS}:TagTransformer: option 'tag' must not be empty",
        ),
    ],
)
def test_registry_errors(spec: object, message: str) -> None:
    with pytest.raises(TransformerConfigError) as info:
        build_chain(["cleancache", spec], where="t")
    assert info.value.message.replace("t[1]", "t[0]").startswith(message)
    assert [index for index, _ in info.value.problems] == [1]


def test_registry_reports_every_bad_entry() -> None:
    with pytest.raises(TransformerConfigError) as info:
        build_chain(["foo", "groq", "bar"], where="providers[2].transformers")
    lines = info.value.message.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "providers[2].transformers[0]",
        "providers[2].transformers[2]",
    ]
    with pytest.raises(ConfigError, match="must be a list"):
        build_chain("groq", where="x")


@pytest.mark.parametrize("path", [f"{USER_CLASS}:TagTransformer", f"{USER_CLASS}.TagTransformer"])
def test_user_transformer_by_import_path(path: str) -> None:
    chain = TransformerChain(build_chain([[path, {"tag": "blue"}], "streamoptions"], where="t"))
    context = ctx(stream=True)
    assert chain.request({"stream": True}, context) == {
        "stream": True,
        "x_tag": "blue",
        "stream_options": {"include_usage": True},
    }
    chain.stream({"a": 1}, context)
    assert context.state["tag.seen"] == 1


def test_provider_transformers_append_model_chains() -> None:
    built = provider_transformers(
        ["cleancache"],
        {"deepseek-reasoner": [["maxtoken", {"max_tokens": 100}]]},
        where="providers[0]",
    )
    assert [t.name for t in built.chain("deepseek-chat").transformers] == ["cleancache"]
    assert [t.name for t in built.chain("deepseek-reasoner").transformers] == [
        "cleancache",
        "maxtoken",
    ]
    assert not provider_transformers([], {}, where="p").chain("x")
    with pytest.raises(ConfigError, match=r"providers\[0\]\.model_transformers\.m\[0\]: unknown"):
        provider_transformers([], {"m": ["nope"]}, where="providers[0]")


# --- config ---------------------------------------------------------------------------------

CONFIG = """\
providers:
  - name: anthropic
    dialect: anthropic
    base_url: https://api.anthropic.com
    transformers: [cleancache]
  - name: deepseek
    dialect: openai
    base_url: https://api.deepseek.com
    models: [deepseek-chat, deepseek-reasoner]
    transformers: {transformers}
    model_transformers:
      deepseek-chat: [tooluse]
router:
  default: anthropic,claude-sonnet-4-5
"""


def load(tmp_path: Path, transformers: str) -> Any:
    path = tmp_path / "junction.yaml"
    path.write_text(CONFIG.replace("{transformers}", transformers), encoding="utf-8")
    return load_config(path, env={})


def test_config_accepts_transformers(tmp_path: Path) -> None:
    cfg = load(
        tmp_path, '[deepseek, [maxtoken, {max_tokens: 4096}], "' + USER_CLASS + ':TagTransformer"]'
    )
    provider = cfg.provider("deepseek")
    assert provider.transformers == [
        "deepseek",
        ["maxtoken", {"max_tokens": 4096}],
        f"{USER_CLASS}:TagTransformer",
    ]
    assert provider.model_transformers == {"deepseek-chat": ["tooluse"]}
    assert hash(cfg) == hash(
        load(
            tmp_path,
            '[deepseek, [maxtoken, {max_tokens: 4096}], "' + USER_CLASS + ':TagTransformer"]',
        )
    )


def test_config_rejects_bad_transformers(tmp_path: Path) -> None:
    text = CONFIG.replace("{transformers}", "[deepseek, foo, [maxtoken, {max_tokens: -1}]]")
    text = text.replace(
        "      deepseek-chat: [tooluse]", "      deepseek-chat: [tooluse]\n      gpt-5: [groq]"
    )
    text = text.replace("    transformers: [cleancache]", "    transformers: [cleancache, groq]")
    path = tmp_path / "junction.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.message.splitlines() == [
        "providers[0].transformers[1]: 'groq' does not work with anthropic providers",
        "providers[1].transformers[1]: unknown transformer 'foo' (known: "
        + ", ".join(sorted(BUILTIN))
        + "; or module:Class)",
        "providers[1].transformers[2]: maxtoken: option 'max_tokens' must be a positive integer"
        " (got -1)",
        "providers[1].model_transformers.gpt-5: provider 'deepseek' has no model 'gpt-5' "
        "(models: deepseek-chat, deepseek-reasoner)",
    ]
