"""Claude Code's call types (proxy/routing/claude_code.py) on the real TUI captures, and the
routing decision each gets: with and without ANTHROPIC_SMALL_FAST_MODEL /
ANTHROPIC_DEFAULT_HAIKU_MODEL, with each route set or unset (falling back to the existing
scenarios), with each switch off, and the rule order among claude-code-router's."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.config.loader import load_config_dict
from proxy.filters.api import Dialect
from proxy.routing.claude_code import (
    HAIKU_ALIAS,
    SMALL_FAST_ALIAS,
    haiku_tier,
    is_claude_code,
    is_compact_call,
    is_title_call,
    subagent_kind,
)
from proxy.routing.decide import TITLE_MAX_ATTEMPTS, Decider, Decision
from proxy.routing.runtime import RuntimeConfig
from proxy.routing.scenarios import ScenarioRules, detect
from proxy.routing.sessions import SessionUsage

FIXTURES = Path(__file__).parents[2] / "fixtures" / "routing"

TITLE_MAIN = "cc_tui_01_title_main_model"  # no env vars: the main model's name
MAIN = "cc_tui_02_main_turn1"
COMPACT = "cc_tui_03_compact"
TITLE_SMALL = "cc_tui_04_title_small_fast"  # ANTHROPIC_SMALL_FAST_MODEL=cc-small-fast-x
EXPLORE_CUSTOM = "cc_tui_05_explore_subagent_custom_haiku"  # ANTHROPIC_DEFAULT_HAIKU_MODEL
EXPLORE_DEFAULT = "cc_tui_06_explore_subagent_default_haiku"  # claude-haiku-4-5-20251001
TUI = [TITLE_MAIN, MAIN, COMPACT, TITLE_SMALL, EXPLORE_CUSTOM, EXPLORE_DEFAULT]


def capture(name: str) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
    raw = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    headers = [(k.lower().encode(), v.encode()) for k, v in raw["headers"]]
    return raw["body"], headers


def with_model(name: str, model: str) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
    """A capture as Claude Code sends it when the variable names ``model`` instead."""
    body, headers = capture(name)
    body["model"] = model
    return body, headers


# --- the signals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "title", "subagent", "compact", "tier"),
    [
        (TITLE_MAIN, True, None, False, None),
        (MAIN, False, None, False, None),
        (COMPACT, False, None, True, None),
        (TITLE_SMALL, True, None, False, "a Claude Code request with max_tokens 32000"),
        (EXPLORE_CUSTOM, False, "readonly", False, "the model name contains 'haiku'"),
        (EXPLORE_DEFAULT, False, "readonly", False, "the model name contains 'haiku'"),
    ],
)
def test_signals_on_captures(
    name: str, title: bool, subagent: str | None, compact: bool, tier: str | None
) -> None:
    body, _ = capture(name)
    before = copy.deepcopy(body)
    assert is_claude_code(body)
    assert is_title_call(body) is title
    assert subagent_kind(body) == subagent
    assert is_compact_call(body) is compact
    assert haiku_tier(body, body["model"]) == tier
    assert body == before  # read only


def test_subagent_with_a_write_tool_is_write_capable() -> None:
    body, _ = capture(EXPLORE_CUSTOM)
    body["tools"].append({"name": "Edit", "description": "e", "input_schema": {}})
    assert subagent_kind(body) == "write"


def test_main_turn_is_not_a_subagent_even_with_few_tools() -> None:
    body, _ = capture(MAIN)
    body["tools"] = body["tools"][:3]
    assert subagent_kind(body) is None


@pytest.mark.parametrize(
    ("change", "title"),
    [
        (lambda b: b.pop("tools"), False),  # absent is not []
        (lambda b: b.__setitem__("tools", [{"name": "x"}]), False),
        (lambda b: b["output_config"].pop("format"), False),
        (lambda b: b["output_config"]["format"].__setitem__("type", "text"), False),
        (lambda b: b.pop("thinking"), True),  # the shape decides, not thinking
        (lambda b: b["system"].pop(0), False),  # not Claude Code's: an SDK's structured output
    ],
)
def test_title_needs_empty_tools_and_a_json_schema(change: Any, title: bool) -> None:
    body, _ = capture(TITLE_MAIN)
    change(body)
    assert is_title_call(body) is title


def test_compact_reads_past_trailing_system_messages_only() -> None:
    body, _ = capture(COMPACT)
    body["messages"].append({"role": "system", "content": "agents: ..."})
    assert is_compact_call(body)
    body["messages"].append({"role": "assistant", "content": "ok"})
    assert not is_compact_call(body)


def test_compact_instruction_quoted_earlier_is_not_compact() -> None:
    body, _ = capture(COMPACT)
    last = body["messages"][-1]["content"]
    last[-1], last[0] = last[0], last[-1]
    assert not is_compact_call(body)


def test_max_tokens_32000_counts_only_for_claude_code() -> None:
    body = {"model": "gpt-4.1", "max_tokens": 32000, "messages": []}
    assert haiku_tier(body, "gpt-4.1") is None
    body["system"] = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1;"}]
    assert haiku_tier(body, "gpt-4.1") is not None
    assert haiku_tier({}, HAIKU_ALIAS) is not None
    assert haiku_tier({}, "Cc-HAIKU-x") is not None


# --- routing decisions on a real runtime -----------------------------------------------------

PROVIDERS = [
    {"name": p, "dialect": "anthropic", "base_url": "http://127.0.0.1:9"}
    for p in ("main", "cheap", "titles", "long", "sub", "explore")
]
EVERY_ROUTE = {
    "default": "main,opus",
    "think": "main,opus-thinking",
    "background": "cheap,small",
    "long_context": "long,lc",
    "title": "titles,t",
    "compact": "long,compact",
    "subagent": "sub,w",
    "subagent_readonly": "explore,ro",
}


def runtime(**router: Any) -> RuntimeConfig:
    cfg = load_config_dict({"providers": PROVIDERS, "router": router}, env={})
    return RuntimeConfig.from_config(cfg, clock=lambda: 0.0, rng=random.Random(1))


def decide(rt: RuntimeConfig, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> Decision:
    decider = Decider(rt, SessionUsage(clock=lambda: 0.0), lambda: 0.0)
    size = len(orjson.dumps(body))
    facts, rules = decider.prepare(body, headers, Dialect.ANTHROPIC, size)
    return decider.decide(facts, rules, None, body=body)


def target(d: Decision) -> str:
    first = d.selection.ordered[0]
    return f"{first.provider.name},{first.model}"


# (capture, model override or None) x (scenario, target) with every route configured.
ENV_CASES = [
    # Without the variables: the title call carries the main model, Explore the built-in haiku.
    (TITLE_MAIN, None, "title", "titles,t"),
    (EXPLORE_DEFAULT, None, "subagent", "explore,ro"),
    # With them, as the TUI was recorded (custom names) ...
    (TITLE_SMALL, None, "title", "titles,t"),
    (EXPLORE_CUSTOM, None, "subagent", "explore,ro"),
    # ... and as `junction claude` sets them (Junction's aliases).
    (TITLE_MAIN, SMALL_FAST_ALIAS, "title", "titles,t"),
    (EXPLORE_DEFAULT, HAIKU_ALIAS, "subagent", "explore,ro"),
    (MAIN, None, "think", "main,opus-thinking"),
    (COMPACT, None, "compact", "long,compact"),
]


@pytest.mark.parametrize(("name", "model", "scenario", "expected"), ENV_CASES)
def test_every_route_set(name: str, model: str | None, scenario: str, expected: str) -> None:
    body, headers = with_model(name, model) if model else capture(name)
    d = decide(runtime(**EVERY_ROUTE), body, headers)
    assert (d.scenario, target(d)) == (scenario, expected)
    assert d.facts.session_id == orjson.loads(body["metadata"]["user_id"])["session_id"]


# Junction's defaults with only `background` set: title and Explore fall back to it.
@pytest.mark.parametrize(
    ("name", "model", "scenario", "expected"),
    [
        (TITLE_MAIN, None, "title", "cheap,small"),
        (TITLE_SMALL, None, "title", "cheap,small"),
        (TITLE_MAIN, SMALL_FAST_ALIAS, "title", "cheap,small"),
        (EXPLORE_DEFAULT, None, "background", "cheap,small"),
        (EXPLORE_CUSTOM, None, "background", "cheap,small"),  # haiku tier; CCR: default
        (EXPLORE_DEFAULT, HAIKU_ALIAS, "background", "cheap,small"),
        (MAIN, None, "default", "main,opus"),
        (COMPACT, None, "default", "main,opus"),  # no compact, no long_context route
    ],
)
def test_background_only(name: str, model: str | None, scenario: str, expected: str) -> None:
    body, headers = with_model(name, model) if model else capture(name)
    d = decide(runtime(default="main,opus", background="cheap,small"), body, headers)
    assert (d.scenario, target(d)) == (scenario, expected)


def test_compact_falls_back_to_long_context_and_subagent_to_subagent() -> None:
    rt = runtime(default="main,opus", long_context="long,lc", subagent="sub,w")
    body, headers = capture(COMPACT)
    assert target(decide(rt, body, headers)) == "long,lc"
    body, headers = capture(EXPLORE_DEFAULT)
    d = decide(rt, body, headers)
    assert (d.scenario, d.route.name, target(d)) == ("subagent", "subagent", "sub,w")


def test_write_capable_subagent_skips_the_readonly_route() -> None:
    body, headers = capture(EXPLORE_CUSTOM)
    body["tools"].append({"name": "Write", "description": "w", "input_schema": {}})
    d = decide(runtime(**EVERY_ROUTE), body, headers)
    assert (d.route.name, target(d)) == ("subagent", "sub,w")
    rt = runtime(default="main,opus", background="cheap,small", subagent_readonly="explore,ro")
    assert target(decide(rt, body, headers)) == "cheap,small"  # not read-only: haiku tier


def test_junction_aliases_without_background_go_to_default() -> None:
    body, headers = with_model(TITLE_MAIN, SMALL_FAST_ALIAS)
    d = decide(runtime(default="main,opus"), body, headers)
    assert (d.scenario, target(d)) == ("default", "main,opus")


@pytest.mark.parametrize(
    ("switch", "name", "scenario", "expected"),
    [
        ("title", TITLE_MAIN, "default", "main,opus"),  # claude-code-router's answer
        ("title", TITLE_SMALL, "background", "cheap,small"),  # still the haiku tier
        ("compact", COMPACT, "think", "main,opus-thinking"),
        ("subagent", EXPLORE_DEFAULT, "background", "cheap,small"),
        ("haiku_tier", EXPLORE_CUSTOM, "subagent", "explore,ro"),
    ],
)
def test_each_switch_turns_its_signal_off(
    switch: str, name: str, scenario: str, expected: str
) -> None:
    body, headers = capture(name)
    d = decide(runtime(**EVERY_ROUTE, claude_code={switch: False}), body, headers)
    assert (d.scenario, target(d)) == (scenario, expected)


def test_haiku_tier_switch_off_keeps_ccr_background_rule() -> None:
    rt = runtime(default="main,opus", background="cheap,small", claude_code={"haiku_tier": False})
    body, headers = capture(EXPLORE_CUSTOM)  # cc-haiku-x: no "claude"
    assert decide(rt, body, headers).scenario == "default"
    body, headers = capture(EXPLORE_DEFAULT)  # claude-haiku-...: CCR's rule
    assert decide(rt, body, headers).scenario == "background"


def test_title_beats_explicit_and_explicit_beats_subagent() -> None:
    rt = runtime(**EVERY_ROUTE)
    body, headers = with_model(TITLE_MAIN, "main,opus")  # after /model main,opus
    assert decide(rt, body, headers).scenario == "title"
    body, headers = with_model(EXPLORE_DEFAULT, "sub,pinned")
    d = decide(rt, body, headers)
    assert (d.scenario, target(d)) == ("explicit", "sub,pinned")


def test_compact_beats_long_context_and_long_context_beats_subagent() -> None:
    rules = ScenarioRules(long_context=True, compact=True, subagent_readonly=True)
    body, _ = capture(COMPACT)
    d = detect(body, model=body["model"], tokens=90_000, previous_input_tokens=None, rules=rules)
    assert (d.scenario, d.route) == ("compact", "compact")
    body, _ = capture(EXPLORE_DEFAULT)
    d = detect(body, model=body["model"], tokens=90_000, previous_input_tokens=None, rules=rules)
    assert (d.scenario, d.route) == ("long_context", "long_context")


def test_title_is_tried_twice_at_most() -> None:
    rt = runtime(**EVERY_ROUTE)
    assert rt.max_attempts > TITLE_MAX_ATTEMPTS
    body, headers = capture(TITLE_MAIN)
    assert decide(rt, body, headers).max_attempts == TITLE_MAX_ATTEMPTS
    body, headers = capture(MAIN)
    assert decide(rt, body, headers).max_attempts == rt.max_attempts


@pytest.mark.parametrize("name", TUI)
def test_reason_names_the_route(name: str) -> None:
    body, headers = capture(name)
    d = decide(runtime(**EVERY_ROUTE), body, headers)
    assert d.reason.startswith(d.scenario + ":")
    if d.scenario in ("title", "compact", "subagent"):
        assert f"router.{d.route.name}" in d.reason
