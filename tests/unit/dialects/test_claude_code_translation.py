"""What current Claude Code sends, translated for OpenAI-dialect providers and cleaned for
third-party Anthropic-compatible ones (protocol.md §1.3): structured output both ways, effort
with and without thinking, role:system messages, and the `structuredoutput` and
`anthropiccompat` transformers. Bodies are the real TUI captures."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.dialects.pipeline import plan_exchange
from proxy.dialects.transformers.api import TransformContext
from proxy.dialects.transformers.registry import TransformerChain, build_chain
from proxy.dialects.transformers.structured import (
    SCHEMA_INSTRUCTION,
    AnthropicCompatTransformer,
    StructuredOutputTransformer,
    fold_system_messages,
)
from proxy.dialects.translate.a2o_request import (
    STRUCTURED_OUTPUT_NAME,
    anthropic_to_openai_request,
)
from proxy.dialects.translate.o2a_request import openai_to_anthropic_request
from proxy.errors import TranslationError
from proxy.filters.api import Dialect

FIXTURES = Path(__file__).parents[2] / "fixtures" / "routing"
TITLE_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}},
    "required": ["title"],
    "additionalProperties": False,
}


def body_of(name: str) -> dict[str, Any]:
    raw = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    body: dict[str, Any] = raw["body"]
    return body


def ctx(dialect: Dialect) -> TransformContext:
    return TransformContext(
        provider="p", dialect=dialect, model="m", client_dialect=Dialect.ANTHROPIC, stream=True
    )


def plan(body: dict[str, Any], model: str, transformers: list[Any] | None = None) -> Any:
    chain = TransformerChain(build_chain(transformers, where="t")) if transformers else None
    p = plan_exchange(
        client=Dialect.ANTHROPIC,
        provider=Dialect.OPENAI,
        provider_name="oai",
        path=b"/v1/messages?beta=true",
        body_json=body,
        raw_body=None,
        model=model,
        chain=chain,
        id_hex="0" * 24,
        now_unix=1,
    )
    return orjson.loads(p.body)


# --- Anthropic -> OpenAI ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cc_tui_01_title_main_model", "cc_tui_04_title_small_fast"])
def test_title_call_asks_for_the_json_schema(name: str) -> None:
    body = body_of(name)
    before = copy.deepcopy(body)
    out = anthropic_to_openai_request(body, model="gpt-4.1-mini")
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": STRUCTURED_OUTPUT_NAME, "schema": TITLE_SCHEMA},
    }
    assert "tools" not in out and "tool_choice" not in out  # tools: [] is no tools
    assert [m["role"] for m in out["messages"]] == ["system", "user"]
    assert "x-anthropic-billing-header" not in out["messages"][0]["content"]
    assert body == before


def test_thinking_disabled_with_effort_sends_no_effort() -> None:
    body = body_of("cc_tui_01_title_main_model")  # thinking disabled + effort high
    assert "reasoning_effort" not in anthropic_to_openai_request(body, model="o4-mini")
    assert "reasoning_effort" not in plan(body, "o4-mini")


@pytest.mark.parametrize(
    ("model", "effort"),
    [("o4-mini", "high"), ("gpt-5-mini", "high"), ("gpt-4.1-mini", None)],
)
def test_effort_without_thinking_goes_where_the_model_takes_it(
    model: str, effort: str | None
) -> None:
    body = body_of("cc_tui_05_explore_subagent_custom_haiku")  # no thinking key, effort high
    assert "thinking" not in body and body["output_config"] == {"effort": "high"}
    assert plan(body, model).get("reasoning_effort") == effort


def test_effort_without_thinking_reaches_the_reasoning_transformer() -> None:
    body = body_of("cc_tui_05_explore_subagent_custom_haiku")
    out = plan(body, "deepseek-chat", [["reasoning", {"style": "enable_thinking"}]])
    assert out.get("enable_thinking") is True


def test_explore_subagent_translates_whole() -> None:
    body = body_of("cc_tui_05_explore_subagent_custom_haiku")
    out = anthropic_to_openai_request(body, model="gpt-4.1-mini")
    assert [t["function"]["name"] for t in out["tools"]] == [t["name"] for t in body["tools"]]
    roles = [m["role"] for m in out["messages"]]
    # The role:system skills message stays a system message, in place, after the user turn.
    assert roles == ["system", "user", "system"]
    assert out["messages"][2]["content"].startswith("The following skills are available")
    assert "context_management" not in out and "output_config" not in out
    assert "response_format" not in out


def test_output_config_format_without_a_schema_is_a_clear_400() -> None:
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"format": {"type": "json_schema"}},
    }
    with pytest.raises(TranslationError) as info:
        anthropic_to_openai_request(body, model="gpt-4.1")
    assert info.value.field == "output_config.format.schema"


# --- OpenAI -> Anthropic, and back --------------------------------------------------------------


def test_response_format_json_schema_becomes_output_config_format() -> None:
    body = {
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": "title this"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "t", "schema": TITLE_SCHEMA, "strict": True},
        },
    }
    out = openai_to_anthropic_request(body, model="claude-haiku-4-5")
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": TITLE_SCHEMA}}
    # and the title call's format survives a round trip through both translators
    back = anthropic_to_openai_request(out, model="gpt-4.1")
    assert back["response_format"]["json_schema"]["schema"] == TITLE_SCHEMA


def test_response_format_json_object_is_still_dropped() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "json please"}],
        "response_format": {"type": "json_object"},
    }
    assert "output_config" not in openai_to_anthropic_request(body, model="m")


# --- structuredoutput: providers without json_schema ------------------------------------------


@pytest.mark.parametrize(
    ("mode", "kept"), [("json_object", {"type": "json_object"}), ("prompt", None)]
)
def test_structuredoutput_falls_back_to_an_instruction(
    mode: str, kept: dict[str, str] | None
) -> None:
    body = body_of("cc_tui_01_title_main_model")
    out = plan(body, "llama3", [["structuredoutput", {"mode": mode}]])
    assert out.get("response_format") == kept
    system = out["messages"][0]
    assert system["role"] == "system"
    assert system["content"].endswith(SCHEMA_INSTRUCTION + orjson.dumps(TITLE_SCHEMA).decode())
    assert system["content"].startswith("You are Claude Code")  # the prompt is kept


def test_structuredoutput_leaves_other_requests_alone_and_does_not_mutate() -> None:
    t = StructuredOutputTransformer()
    plain = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert t.transform_request(plain, ctx(Dialect.OPENAI)) is plain
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": {}}},
    }
    before = copy.deepcopy(body)
    out = t.transform_request(body, ctx(Dialect.OPENAI))
    assert body == before
    assert out["messages"][0] == {"role": "system", "content": SCHEMA_INSTRUCTION + "{}"}


def test_structuredoutput_rejects_an_unknown_mode_and_anthropic_providers() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        StructuredOutputTransformer(mode="tool")
    assert Dialect.ANTHROPIC not in StructuredOutputTransformer.dialects


# --- anthropiccompat: third-party Anthropic-compatible endpoints ------------------------------


def test_anthropiccompat_drops_fields_and_folds_system_messages() -> None:
    body = body_of("cc_tui_02_main_turn1")
    before = copy.deepcopy(body)
    system_msg = next(m for m in body["messages"] if m["role"] == "system")
    out = AnthropicCompatTransformer().transform_request(body, ctx(Dialect.ANTHROPIC))
    assert body == before
    assert "context_management" not in out and out["output_config"] == {"effort": "high"}
    assert [m["role"] for m in out["messages"]] == ["user"]
    assert out["system"][: len(body["system"])] == body["system"]
    assert out["system"][-1] == {"type": "text", "text": system_msg["content"]}


def test_anthropiccompat_options() -> None:
    body = body_of("cc_tui_02_main_turn1")
    t = AnthropicCompatTransformer(
        drop=["context_management", "output_config"], fold_system_messages=False
    )
    out = t.transform_request(body, ctx(Dialect.ANTHROPIC))
    assert "output_config" not in out and out["messages"] == body["messages"]
    with pytest.raises(ValueError, match="must not name"):
        AnthropicCompatTransformer(drop=["messages"])
    chain = build_chain([["anthropiccompat", {"drop": ["context_management"]}]], where="t")
    assert chain[0].name == "anthropiccompat"


def test_fold_keeps_a_string_system_and_skips_blank_messages() -> None:
    body = {
        "system": "You are X.",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "  "},
            {"role": "system", "content": [{"type": "text", "text": "Agents: a, b"}]},
        ],
    }
    out = fold_system_messages(body)
    assert out["system"] == [
        {"type": "text", "text": "You are X."},
        {"type": "text", "text": "Agents: a, b"},
    ]
    assert out["messages"] == [{"role": "user", "content": "hi"}]
    no_system = {"messages": [{"role": "user", "content": "hi"}]}
    assert fold_system_messages(no_system) is no_system
