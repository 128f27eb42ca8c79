from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cache.key import _without_cache_control, cache_key, canonical_body
from proxy.cache.policy import Mode, admits, is_deterministic, request_mode, route_policies
from proxy.config.cache import CacheConfig

BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "temperature": 0,
    "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "hi"}],
    "tools": [
        {"name": "t", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}
    ],
}


def key(body: dict[str, Any], **over: Any) -> str:
    args: dict[str, Any] = {
        "dialect": "anthropic",
        "path": "/v1/messages",
        "tenant": "team-a",
        "fingerprint": "f" * 16,
        "headers": [(b"anthropic-version", b"2023-06-01")],
        "body": body,
        **over,
    }
    return cache_key(**args)


def test_volatile_fields_and_cache_control_do_not_split_the_key() -> None:
    base = key(BODY)
    assert len(base) == 64
    noisy = {
        **{k: BODY[k] for k in reversed(list(BODY))},
        "stream": True,
        "metadata": {"user_id": "u-123"},
        "system": [{"type": "text", "text": "be brief"}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
    }
    assert key(noisy) == base
    assert (
        key(BODY, headers=[(b"x-request-id", b"abc"), (b"anthropic-version", b"2023-06-01")])
        == base
    )


@pytest.mark.parametrize(
    "change",
    [
        {"model": "claude-haiku-4-5"},
        {"max_tokens": 101},
        {"temperature": 0.5},
        {"messages": [{"role": "user", "content": "hello"}]},
        {"tool_choice": {"type": "any"}},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"stop_sequences": ["x"]},
        {"some_future_field": 1},
    ],
)
def test_answer_determining_fields_split_the_key(change: dict[str, Any]) -> None:
    assert key({**BODY, **change}) != key(BODY)


@pytest.mark.parametrize(
    "over",
    [
        {"tenant": "team-b"},
        {"tenant": ""},
        {"fingerprint": "0" * 16},
        {"dialect": "openai"},
        {"path": "/v1/chat/completions"},
        {"headers": [(b"anthropic-version", b"2023-06-01"), (b"anthropic-beta", b"x")]},
    ],
)
def test_tenant_route_dialect_and_headers_split_the_key(over: dict[str, Any]) -> None:
    assert key(BODY, **over) != key(BODY)


def test_canonical_body_keeps_a_string_that_mentions_cache_control() -> None:
    body = {"messages": [{"role": "user", "content": 'say "cache_control"'}]}
    assert b'say \\"cache_control\\"' in canonical_body(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0.0, "n": 1}, True),
        ({"top_k": 1, "temperature": 1}, True),
        ({}, False),
        ({"temperature": 0.2}, False),
        ({"temperature": 0, "n": 3}, False),
        ({"temperature": "0"}, False),
        ({"temperature": False}, False),
        ({"top_k": 2}, False),
    ],
)
def test_deterministic(body: dict[str, Any], expected: bool) -> None:
    assert is_deterministic(body) is expected
    assert admits("deterministic", body) is expected
    assert admits("all", body) and not admits("off", body)


def test_request_mode_and_ttl() -> None:
    assert request_mode([]) == (Mode.NORMAL, None)
    assert request_mode([(b"cache-control", b"No-Cache")]) == (Mode.REFRESH, None)
    assert request_mode([(b"cache-control", b"no-cache, no-store")]) == (Mode.BYPASS, None)
    assert request_mode([(b"x-junction-cache-ttl", b"30")]) == (Mode.NORMAL, 30.0)
    for bad in (b"-1", b"abc", b"inf", b"nan", b"0", b"1" * 40):
        assert request_mode([(b"x-junction-cache-ttl", bad)])[1] is None


def test_route_policies_take_the_section_defaults_and_clamp() -> None:
    cfg = CacheConfig(
        policy="all",
        ttl_s=100,
        max_ttl_s=500,
        routes={"evals": {"ttl_s": 9999}, "chat": {"policy": "off"}},  # type: ignore[dict-item]
    )
    policies = route_policies(cfg)
    assert policies["default"].policy == "all" and policies["default"].ttl_s == 100
    assert policies["evals"].policy == "all" and policies["evals"].ttl_s == 500
    assert policies["chat"].policy == "off" and policies["chat"].ttl_s == 100
    assert cfg.route_problems({"evals"}) == [
        (("cache", "routes", "chat"), "no such route: use 'default' or an alias (evals)")
    ]


_text = st.text(alphabet=st.sampled_from('ab{}"\\,:cache_control '), max_size=12)
_marker = st.one_of(
    st.fixed_dictionaries({"type": st.just("ephemeral")}),
    st.fixed_dictionaries({"type": st.just("ephemeral"), "ttl": _text}),
    st.just(None),
    _text,
)
_json = st.recursive(
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), _text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["text", "type", "a", "z", "cache_control"]), inner, max_size=4
        ),
        st.builds(
            lambda d, m: {**d, "cache_control": m},
            st.dictionaries(_text, inner, max_size=3),
            _marker,
        ),
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(["messages", "system", "tools", "x"]), _json, max_size=4))
@settings(max_examples=300, deadline=None)
def test_the_fast_marker_cut_equals_the_exact_rebuild(body: dict[str, Any]) -> None:
    exact = orjson.dumps(_without_cache_control(body), option=orjson.OPT_SORT_KEYS)
    assert canonical_body(body) == exact
