"""Scenario detection: a table of requests x expected scenario (every rule, the order between
every pair of rules that can both match, unconfigured scenarios, each improvement over
claude-code-router), the subagent tag's removal, session ids, the real Claude Code captures,
and hypothesis: detect never raises."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.routing.scenarios import (
    MAX_SESSION_ID_CHARS,
    SCENARIO_ORDER,
    ScenarioDecision,
    ScenarioRules,
    compile_background_pattern,
    detect,
    session_id,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "routing"

# claude-code-router's rules alone: the Claude Code signals are tested in test_claude_code.py.
CCR_ONLY: dict[str, Any] = {
    "cc_title": False,
    "cc_compact": False,
    "cc_subagent": False,
    "haiku_tier": False,
}
ALL = ScenarioRules(
    background=True, think=True, long_context=True, web_search=True, image=True, **CCR_ONLY
)
NONE = ScenarioRules(**CCR_ONLY)
TAG = "<CCR-SUBAGENT-MODEL>sub,agent-model</CCR-SUBAGENT-MODEL>"
USER_HI = {"role": "user", "content": "hi"}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
IMAGE_MSG = {
    "role": "user",
    "content": [{"type": "text", "text": "what is this?"}, {"type": "image", "source": PNG}],
}
TOOL_RESULT_IMAGE_MSG = {
    "role": "user",
    "content": [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [{"type": "image", "source": PNG}],
        }
    ],
}
CC_SYSTEM_MSG = {"role": "system", "content": "Available agent types for the Agent tool: ..."}
WEB_SEARCH = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
READ_TOOL = [{"name": "Read", "description": "Read a file", "input_schema": {"type": "object"}}]
THINKING = {"type": "enabled", "budget_tokens": 31999}
HAIKU = "claude-3-5-haiku-20241022"
TAGGED_SYSTEM = [
    {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197;"},
    {"type": "text", "text": TAG + "You are a file search specialist."},
]


def row(
    id: str,
    expected: str,
    *,
    explicit: str | None = None,
    model: str = "claude-sonnet-4-5",
    tokens: int = 1000,
    prev: int | None = None,
    rules: ScenarioRules = ALL,
    **body: Any,
) -> Any:
    body.setdefault("messages", [USER_HI])
    return pytest.param(body, model, tokens, prev, rules, expected, explicit, id=id)


TABLE = [
    # --- each rule alone ---------------------------------------------------------------------
    row("default", "default"),
    row("default-no-messages", "default", messages=[]),
    row(
        "explicit",
        "explicit",
        explicit="openrouter,google/gemini-2.5-pro",
        model="openrouter,google/gemini-2.5-pro",
    ),
    row("explicit-unknown-provider-is-returned", "explicit", explicit="nope,zzz", model="nope,zzz"),
    row("explicit-empty-parts", "explicit", explicit=",", model=","),
    row("long-context-tokens", "long_context", tokens=60_001),
    row("long-context-at-threshold-is-not", "default", tokens=60_000),
    row(
        "long-context-custom-threshold",
        "long_context",
        tokens=1001,
        rules=ScenarioRules(long_context=True, long_context_threshold=1000),
    ),
    row("long-context-previous-turn", "long_context", tokens=20_001, prev=60_001),
    row("long-context-previous-turn-small-now", "default", tokens=20_000, prev=60_001),
    row("long-context-previous-turn-at-threshold", "default", tokens=20_001, prev=60_000),
    row("long-context-no-previous-turn", "default", tokens=59_999, prev=None),
    row(
        "subagent-system1-start",
        "subagent",
        explicit="sub,agent-model",
        system=copy.deepcopy(TAGGED_SYSTEM),
    ),
    row("background-ccr-rule", "background", model=HAIKU),
    row("background-claude-haiku-4-5", "background", model="claude-haiku-4-5-20251001"),
    row("background-ccr-rule-is-case-sensitive", "default", model="Claude-3-5-HAIKU"),
    row("background-needs-claude", "default", model="cc-haiku-x"),
    row("web-search", "web_search", tools=WEB_SEARCH),
    row("web-search-any-suffix", "web_search", tools=[*READ_TOOL, {"type": "web_search_2099"}]),
    row("custom-tools-are-not-web-search", "default", tools=READ_TOOL),
    row("think-enabled", "think", thinking=THINKING),
    row("think-adaptive", "think", thinking={"type": "adaptive"}),
    row("think-empty-object-is-truthy-as-in-js", "think", thinking={}),
    row("think-true", "think", thinking=True),
    row("think-disabled-is-not-think", "default", thinking={"type": "disabled"}),
    row("think-null", "default", thinking=None),
    row("think-false", "default", thinking=False),
    row("image-block", "image", messages=[IMAGE_MSG]),
    row(
        "image-in-tool-result",
        "image",
        messages=[USER_HI, {"role": "assistant", "content": "ok"}, TOOL_RESULT_IMAGE_MSG],
    ),
    row("image-before-claude-code-system-message", "image", messages=[IMAGE_MSG, CC_SYSTEM_MSG]),
    row(
        "image-only-in-older-user-message",
        "default",
        messages=[IMAGE_MSG, {"role": "assistant", "content": "a cat"}, USER_HI],
    ),
    row(
        "image-last-message-assistant",
        "default",
        messages=[IMAGE_MSG, {"role": "assistant", "content": "It is"}],
    ),
    row("image-string-content", "default", messages=[{"role": "user", "content": "image"}]),
    # --- order: every pair that can both match; the earlier rule wins -----------------------
    row("image-beats-explicit", "image", model="p,m", messages=[IMAGE_MSG]),
    row("image-beats-long-context", "image", tokens=100_000, messages=[IMAGE_MSG]),
    row("image-beats-subagent", "image", messages=[IMAGE_MSG], system=copy.deepcopy(TAGGED_SYSTEM)),
    row("image-beats-background", "image", model=HAIKU, messages=[IMAGE_MSG]),
    row("image-beats-web-search", "image", messages=[IMAGE_MSG], tools=WEB_SEARCH),
    row("image-beats-think", "image", messages=[IMAGE_MSG], thinking=THINKING),
    row("explicit-beats-long-context", "explicit", explicit="p,m", model="p,m", tokens=100_000),
    row(
        "explicit-beats-subagent",
        "explicit",
        explicit="p,m",
        model="p,m",
        system=copy.deepcopy(TAGGED_SYSTEM),
    ),
    row("explicit-beats-background", "explicit", explicit="p,claude-haiku", model="p,claude-haiku"),
    row("explicit-beats-web-search", "explicit", explicit="p,m", model="p,m", tools=WEB_SEARCH),
    row("explicit-beats-think", "explicit", explicit="p,m", model="p,m", thinking=THINKING),
    row(
        "long-context-beats-subagent",
        "long_context",
        tokens=70_000,
        system=copy.deepcopy(TAGGED_SYSTEM),
    ),
    row("long-context-beats-background", "long_context", tokens=70_000, model=HAIKU),
    row("long-context-beats-web-search", "long_context", tokens=70_000, tools=WEB_SEARCH),
    row("long-context-beats-think", "long_context", tokens=70_000, thinking=THINKING),
    row(
        "subagent-beats-background",
        "subagent",
        explicit="sub,agent-model",
        model=HAIKU,
        system=copy.deepcopy(TAGGED_SYSTEM),
    ),
    row(
        "subagent-beats-web-search",
        "subagent",
        explicit="sub,agent-model",
        tools=WEB_SEARCH,
        system=copy.deepcopy(TAGGED_SYSTEM),
    ),
    row(
        "subagent-beats-think",
        "subagent",
        explicit="sub,agent-model",
        thinking=THINKING,
        system=copy.deepcopy(TAGGED_SYSTEM),
    ),
    row("background-beats-web-search", "background", model=HAIKU, tools=WEB_SEARCH),
    row("background-beats-think", "background", model=HAIKU, thinking=THINKING),
    row("web-search-beats-think", "web_search", tools=WEB_SEARCH, thinking=THINKING),
    # --- unconfigured scenarios are skipped ----------------------------------------------------
    row(
        "nothing-configured",
        "default",
        rules=NONE,
        model=HAIKU,
        tokens=100_000,
        tools=WEB_SEARCH,
        thinking=THINKING,
        messages=[IMAGE_MSG],
    ),
    row("explicit-needs-no-route", "explicit", explicit="p,m", rules=NONE, model="p,m"),
    row(
        "subagent-needs-no-route",
        "subagent",
        explicit="sub,agent-model",
        rules=NONE,
        system=copy.deepcopy(TAGGED_SYSTEM),
    ),
    row(
        "image-unset-falls-to-think",
        "think",
        rules=ScenarioRules(think=True),
        messages=[IMAGE_MSG],
        thinking=THINKING,
    ),
    row(
        "long-context-unset",
        "default",
        rules=ScenarioRules(think=True),
        tokens=100_000,
        prev=100_000,
    ),
    row(
        "background-unset-falls-to-think",
        "think",
        rules=ScenarioRules(think=True),
        model=HAIKU,
        thinking=THINKING,
    ),
    row(
        "web-search-unset-falls-to-think",
        "think",
        rules=ScenarioRules(think=True),
        tools=WEB_SEARCH,
        thinking=THINKING,
    ),
    row(
        "think-unset",
        "default",
        rules=ScenarioRules(background=True, web_search=True, long_context=True, image=True),
        thinking=THINKING,
    ),
    row(
        "subagent-tag-off",
        "background",
        rules=ScenarioRules(background=True, subagent_tag=False),
        model=HAIKU,
        system=copy.deepcopy(TAGGED_SYSTEM),
    ),
    # --- improvements over claude-code-router ------------------------------------------------
    row(
        "tag-in-system0",
        "subagent",
        explicit="sub,agent-model",
        system=[{"type": "text", "text": TAG + "Be brief."}],
    ),
    row(
        "tag-in-system2",
        "subagent",
        explicit="sub,agent-model",
        system=[
            {"type": "text", "text": "x-anthropic-billing-header: cc_is_subagent=true;"},
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": TAG + "\nYou are a file search specialist."},
        ],
    ),
    row(
        "tag-in-string-system",
        "subagent",
        explicit="sub,agent-model",
        system="Intro. " + TAG + " Rest.",
    ),
    row(
        "tag-in-middle-of-text",
        "subagent",
        explicit="sub,agent-model",
        system=[
            {"type": "text", "text": "a"},
            {"type": "text", "text": "You are X.\n" + TAG + "\nDo Y."},
        ],
    ),
    row(
        "tag-value-is-stripped",
        "subagent",
        explicit="p,m",
        system="<CCR-SUBAGENT-MODEL> p,m\n</CCR-SUBAGENT-MODEL>x",
    ),
    row("tag-without-close-is-ignored", "default", system="<CCR-SUBAGENT-MODEL>p,m and no end"),
    row("tag-in-non-text-block-ignored", "default", system=[{"type": "image", "source": TAG}]),
    row(
        "background-pattern",
        "background",
        rules=ScenarioRules(
            background=True, background_pattern=compile_background_pattern("haiku")
        ),
        model="cc-haiku-x",
    ),
    row(
        "background-pattern-ignores-case",
        "background",
        rules=ScenarioRules(
            background=True, background_pattern=compile_background_pattern("HAIKU|mini")
        ),
        model="gpt-4o-mini",
    ),
    row(
        "background-pattern-replaces-ccr-rule",
        "default",
        rules=ScenarioRules(
            background=True, background_pattern=compile_background_pattern("^small-"), **CCR_ONLY
        ),
        model=HAIKU,
    ),
]


@pytest.mark.parametrize(
    ("body", "model", "tokens", "prev", "rules", "expected", "explicit"), TABLE
)
def test_table(
    body: dict[str, Any],
    model: str,
    tokens: int,
    prev: int | None,
    rules: ScenarioRules,
    expected: str,
    explicit: str | None,
) -> None:
    body = copy.deepcopy(body)
    before = copy.deepcopy(body)
    d = detect(body, model=model, tokens=tokens, previous_input_tokens=prev, rules=rules)
    assert (d.scenario, d.explicit) == (expected, explicit)
    assert d.reason.startswith(expected + ":")
    # Only removing the subagent tag changes the body, and body_changed says so.
    assert d.body_changed == (body != before)


def test_table_covers_every_scenario() -> None:
    claude_code_only = {"title", "compact"}  # test_claude_code.py
    assert {p.values[5] for p in TABLE} == set(SCENARIO_ORDER) - claude_code_only


# --- the tag's removal, golden ------------------------------------------------------------


def run(body: dict[str, Any], rules: ScenarioRules = ALL, **kw: Any) -> ScenarioDecision:
    kw.setdefault("model", "claude-sonnet-4-5")
    kw.setdefault("tokens", 1000)
    kw.setdefault("previous_input_tokens", None)
    body.setdefault("messages", [USER_HI])
    return detect(body, rules=rules, **kw)


def test_tag_removed_from_its_block_in_place() -> None:
    block = {
        "type": "text",
        "text": "You are X.\n" + TAG + "\nDo Y.",
        "cache_control": {"type": "ephemeral"},
    }
    body: dict[str, Any] = {"system": [{"type": "text", "text": "billing"}, block]}
    d = run(body)
    assert d == ScenarioDecision(
        "subagent",
        "sub,agent-model",
        True,
        "subagent: <CCR-SUBAGENT-MODEL> tag in system[1] names 'sub,agent-model'",
    )
    assert body["system"] == [
        {"type": "text", "text": "billing"},
        {"type": "text", "text": "You are X.\n\nDo Y.", "cache_control": {"type": "ephemeral"}},
    ]
    assert body["system"][1] is block


def test_block_left_blank_is_dropped() -> None:
    body: dict[str, Any] = {
        "system": [
            {"type": "text", "text": "a"},
            {"type": "text", "text": " \n" + TAG + "\n"},
            {"type": "text", "text": "c"},
        ]
    }
    assert run(body).scenario == "subagent"
    assert body["system"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "c"}]


def test_string_system_left_blank_is_removed() -> None:
    body: dict[str, Any] = {"system": TAG}
    assert run(body).explicit == "sub,agent-model"
    assert "system" not in body


def test_string_system_keeps_the_rest() -> None:
    body: dict[str, Any] = {"system": "Intro. " + TAG + " Rest."}
    run(body)
    assert body["system"] == "Intro.  Rest."


def test_only_the_first_tag_is_taken() -> None:
    body: dict[str, Any] = {
        "system": [
            {"type": "text", "text": "<CCR-SUBAGENT-MODEL>a,1</CCR-SUBAGENT-MODEL>x"},
            {"type": "text", "text": "<CCR-SUBAGENT-MODEL>b,2</CCR-SUBAGENT-MODEL>y"},
        ]
    }
    assert run(body).explicit == "a,1"
    assert body["system"][0]["text"] == "x"
    assert body["system"][1]["text"].startswith("<CCR-SUBAGENT-MODEL>b,2")


def test_tag_removed_when_an_earlier_rule_wins() -> None:
    body: dict[str, Any] = {"system": copy.deepcopy(TAGGED_SYSTEM)}
    d = run(body, tokens=70_000)
    assert d == ScenarioDecision(
        "long_context",
        None,
        True,
        "long_context: 70000 estimated tokens > threshold 60000; <CCR-SUBAGENT-MODEL> tag for"
        " 'sub,agent-model' removed from system[1]",
        "long_context",
    )
    assert body["system"][1]["text"] == "You are a file search specialist."


def test_tag_kept_when_subagent_tag_is_off() -> None:
    body: dict[str, Any] = {"system": copy.deepcopy(TAGGED_SYSTEM)}
    d = run(body, rules=ScenarioRules(subagent_tag=False))
    assert (d.scenario, d.body_changed) == ("default", False)
    assert body["system"] == TAGGED_SYSTEM


# --- reasons (what `junction route --explain` prints) -------------------------------------


@pytest.mark.parametrize(
    ("body", "kw", "reason"),
    [
        ({}, {}, "default: no scenario matched"),
        ({}, {"model": "p,m"}, "explicit: the request names 'p,m'"),
        (
            {},
            {"tokens": 25_000, "previous_input_tokens": 61_000},
            "long_context: the session's previous turn had 61000 input tokens > threshold 60000,"
            " and this one 25000 > 20000",
        ),
        (
            {},
            {"model": HAIKU},
            "background: model 'claude-3-5-haiku-20241022' contains 'claude' and 'haiku'",
        ),
        ({"tools": WEB_SEARCH}, {}, "web_search: a tool of type 'web_search_20250305'"),
        ({"thinking": THINKING}, {}, "think: thinking 'enabled'"),
        ({"thinking": True}, {}, "think: thinking bool"),
        ({"messages": [IMAGE_MSG]}, {}, "image: the last user message holds an image block"),
        (
            {"messages": [TOOL_RESULT_IMAGE_MSG]},
            {},
            "image: the last user message holds an image inside a tool_result",
        ),
        (
            {},
            {"model": "p," + "m" * 200},
            "explicit: the request names '" + "p," + "m" * 78 + "...'",
        ),
    ],
)
def test_reasons(body: dict[str, Any], kw: dict[str, Any], reason: str) -> None:
    assert run(body, **kw).reason == reason


def test_background_pattern_reason() -> None:
    rules = ScenarioRules(background=True, background_pattern=compile_background_pattern("haiku"))
    assert (
        run({}, rules=rules, model="cc-haiku-x").reason
        == "background: model 'cc-haiku-x' matches /haiku/"
    )


def test_bad_background_pattern() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        compile_background_pattern("(unclosed")


# --- session id ---------------------------------------------------------------------------

UUID = "a74c37ad-c691-4740-be29-19ff54f18d27"


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        ({}, [(b"x-claude-code-session-id", UUID.encode())], UUID),
        (
            {},
            [(b"x-other", b"1"), (b"x-claude-code-session-id", b" " + UUID.encode() + b" ")],
            UUID,
        ),
        (
            {
                "metadata": {
                    "user_id": orjson.dumps(
                        {"device_id": "d" * 64, "account_uuid": "", "session_id": UUID}
                    ).decode()
                }
            },
            [],
            UUID,
        ),
        ({"metadata": {"user_id": f"user_{'ab' * 32}_account__session_{UUID}"}}, [], UUID),
        ({"metadata": {"user_id": "user_x_session_s1_session_s2"}}, [], "s1"),  # CCR: split()[1]
        # the header wins over the body
        (
            {"metadata": {"user_id": "user_x_session_from-body"}},
            [(b"x-claude-code-session-id", b"from-header")],
            "from-header",
        ),
        # a bad header falls back to the body
        (
            {"metadata": {"user_id": "user_x_session_from-body"}},
            [(b"x-claude-code-session-id", b"")],
            "from-body",
        ),
        ({}, [], None),
        ({"metadata": {"user_id": "user_without_session"}}, [], None),
        ({"metadata": {"user_id": '{"session_id": 12}'}}, [], None),
        ({"metadata": {"user_id": '{"device_id": "x"}'}}, [], None),
        ({"metadata": {"user_id": "{not json_session_abc"}}, [], "abc"),
        ({"metadata": {"user_id": 5}}, [], None),
        ({"metadata": "user_x_session_abc"}, [], None),
        ({"metadata": {"user_id": "_session_" + "x" * (MAX_SESSION_ID_CHARS + 1)}}, [], None),
        (
            {"metadata": {"user_id": "_session_" + "x" * MAX_SESSION_ID_CHARS}},
            [],
            "x" * MAX_SESSION_ID_CHARS,
        ),
        ({"metadata": {"user_id": "_session_a\nb"}}, [], None),
        ({"metadata": {"user_id": '{"session_id": "' + "y" * 5000 + '"}'}}, [], None),
        ({}, [(b"x-claude-code-session-id", b"\xff" * 200)], None),
    ],
)
def test_session_id(
    body: dict[str, Any], headers: list[tuple[bytes, bytes]], expected: str | None
) -> None:
    assert session_id(body, headers) == expected


# --- real Claude Code captures --------------------------------------------------------------


def capture(name: str) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
    raw = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    headers = [(k.lower().encode(), v.encode()) for k, v in raw["headers"]]
    return raw["body"], headers


CAPTURES = [
    "cc_02_main_stream_text",
    "cc_04_haiku_model_thinking_budget",
    "cc_tui_01_title_main_model",
    "cc_tui_05_explore_subagent_custom_haiku",
    "cc_tui_06_explore_subagent_default_haiku",
]


@pytest.mark.parametrize(
    ("name", "rules", "expected"),
    [
        ("cc_02_main_stream_text", ALL, "think"),  # opus, thinking adaptive
        ("cc_02_main_stream_text", ScenarioRules(background=True), "default"),
        ("cc_04_haiku_model_thinking_budget", ALL, "background"),  # haiku + thinking enabled
        ("cc_04_haiku_model_thinking_budget", ScenarioRules(think=True), "think"),
        ("cc_tui_01_title_main_model", ALL, "default"),  # thinking disabled: CCR said "think"
        ("cc_tui_05_explore_subagent_custom_haiku", ALL, "default"),  # "cc-haiku-x": no "claude"
        (
            "cc_tui_05_explore_subagent_custom_haiku",
            ScenarioRules(background=True, background_pattern=compile_background_pattern("haiku")),
            "background",
        ),
        ("cc_tui_06_explore_subagent_default_haiku", ALL, "background"),
        ("cc_tui_06_explore_subagent_default_haiku", ScenarioRules(think=True), "default"),
    ],
)
def test_captures(name: str, rules: ScenarioRules, expected: str) -> None:
    body, _ = capture(name)
    before = copy.deepcopy(body)
    d = detect(body, model=body["model"], tokens=15_000, previous_input_tokens=None, rules=rules)
    assert d.scenario == expected
    assert body == before


def test_capture_long_session_turn() -> None:
    body, _ = capture("cc_02_main_stream_text")
    d = detect(body, model=body["model"], tokens=30_000, previous_input_tokens=90_000, rules=ALL)
    assert d.scenario == "long_context"


def test_capture_subagent_with_tag_in_its_prompt() -> None:
    # A custom agent whose prompt starts with the tag: Claude Code 2.1 puts it in system[2].
    body, _ = capture("cc_tui_05_explore_subagent_custom_haiku")
    prompt = body["system"][2]["text"]
    body["system"][2]["text"] = (
        "<CCR-SUBAGENT-MODEL>openrouter,qwen/qwen3-coder</CCR-SUBAGENT-MODEL>" + prompt
    )
    d = detect(body, model=body["model"], tokens=15_000, previous_input_tokens=None, rules=ALL)
    assert (d.scenario, d.explicit, d.body_changed) == (
        "subagent",
        "openrouter,qwen/qwen3-coder",
        True,
    )
    assert body["system"][2]["text"] == prompt
    assert len(body["system"]) == 3


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_session_ids(name: str) -> None:
    body, headers = capture(name)
    from_header = session_id(body, headers)
    from_body = session_id(body, [])
    assert from_header is not None
    assert from_header == from_body == orjson.loads(body["metadata"]["user_id"])["session_id"]


# --- never raises --------------------------------------------------------------------------

KEYS = st.sampled_from(
    ["system", "messages", "tools", "thinking", "metadata", "user_id", "session_id", "role",
     "content", "type", "text", "image", "user", "tool_result", "web_search_x", "output_config",
     "format", "max_tokens", "name"]
)  # fmt: skip
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["user", "system", "image", "disabled", "web_search_1", TAG, "a" + TAG + "b",
                       "<CCR-SUBAGENT-MODEL>", '{"session_id":"s"}', "u_session_s", "json_schema",
                       "x-anthropic-billing-header: cc_is_subagent=true;", "Edit", 32000,
                       "CRITICAL: Respond with TEXT ONLY."])
)  # fmt: skip
JSONISH = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)
PATTERNS = st.sampled_from(
    [None, compile_background_pattern("haiku"), compile_background_pattern("^x")]
)
RULES = st.builds(
    ScenarioRules,
    background=st.booleans(),
    think=st.booleans(),
    long_context=st.booleans(),
    web_search=st.booleans(),
    image=st.booleans(),
    long_context_threshold=st.integers(0, 200_000),
    background_pattern=PATTERNS,
    subagent_tag=st.booleans(),
    title=st.booleans(),
    compact=st.booleans(),
    subagent=st.booleans(),
    subagent_readonly=st.booleans(),
    cc_title=st.booleans(),
    cc_compact=st.booleans(),
    cc_subagent=st.booleans(),
    haiku_tier=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.dictionaries(KEYS, JSONISH, max_size=6),
    model=st.text(max_size=20) | st.sampled_from([HAIKU, "p,m", "claude-opus-4-8"]),
    tokens=st.integers(0, 300_000),
    prev=st.none() | st.integers(-5, 300_000),
    rules=RULES,
)
def test_detect_never_raises(
    body: dict[str, Any], model: str, tokens: int, prev: int | None, rules: ScenarioRules
) -> None:
    d = detect(body, model=model, tokens=tokens, previous_input_tokens=prev, rules=rules)
    assert d.scenario in SCENARIO_ORDER
    tagged = d.scenario == "subagent" and not d.route  # the tag names its target
    assert (d.explicit is not None) == (d.scenario == "explicit" or tagged)
    orjson.dumps(body)  # still JSON
    sid = session_id(body, [(b"x-claude-code-session-id", model.encode())])
    assert sid is None or (0 < len(sid) <= MAX_SESSION_ID_CHARS)
