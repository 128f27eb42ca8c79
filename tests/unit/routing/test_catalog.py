"""Built-in model metadata: names as each provider spells them find the right family."""

from __future__ import annotations

import pytest

from proxy.dialects.transformers.registry import provider_transformers
from proxy.filters.api import Dialect
from proxy.routing.catalog import UNKNOWN, info_for, lookup, match, normalise, with_overrides
from proxy.routing.types import ModelInfo, Provider


@pytest.mark.parametrize(
    ("model", "normalised"),
    [
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("qwen2.5-coder:32b", "qwen2-5-coder"),
        (
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "us-anthropic-claude-haiku-4-5-20251001-v1",
        ),
        ("models/Gemini-2.5-Pro", "gemini-2-5-pro"),
        ("meta_llama/Llama-3.3-70B", "llama-3-3-70b"),
    ],
)
def test_normalise(model: str, normalised: str) -> None:
    assert normalise(model) == normalised


@pytest.mark.parametrize(
    ("model", "family"),
    [
        # Anthropic, OpenRouter, Vertex and Bedrock spellings of the same families.
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4"),
        ("claude-opus-4-5", "claude-opus-4-5"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("anthropic/claude-3.7-sonnet", "claude-3-7-sonnet"),
        # OpenAI: the smaller sizes are not taken for the family.
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4.1", "gpt-4-1"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4-1-mini"),
        ("gpt-5", "gpt-5"),
        ("gpt-5.1", "gpt-5"),
        ("gpt-5-mini", "gpt-5-mini"),
        ("gpt-5.1-codex-mini", "gpt-5-mini"),
        ("gpt-5-nano", "gpt-5-nano"),
        ("o3", "o3"),
        ("openai/o3-2025-04-16", "o3"),
        ("o3-mini", "o3-mini"),
        ("o4-mini", "o4-mini"),
        ("o1", "o1"),
        # Google, DeepSeek, Qwen, Llama.
        ("google/gemini-2.5-pro", "gemini-2-5-pro"),
        ("gemini-2.5-flash", "gemini-2-5-flash"),
        ("gemini-2.5-flash-lite", "gemini-2-5-flash-lite"),
        ("deepseek-chat", "deepseek-chat"),
        ("deepseek/deepseek-chat-v3.1", "deepseek-chat"),
        ("deepseek-reasoner", "deepseek-reasoner"),
        ("qwen2.5-coder:latest", "qwen2-5-coder"),
        ("qwen/qwen3-coder", "qwen3-coder"),
        ("qwen3-coder-plus", "qwen3-coder-plus"),
        ("meta-llama/llama-3.3-70b-instruct", "llama-3-3"),
        ("llama-3.1-8b-instant", "llama-3-1"),
        ("llama3.1:70b", "llama-3-1"),
        ("llama3", "llama-3"),
    ],
)
def test_family_match(model: str, family: str) -> None:
    hit = match(model)
    assert hit is not None and hit[0] == family


@pytest.mark.parametrize(
    "model",
    ["my-finetune", "gpt-4", "gpt-4-1106-preview", "chatgpt-4o-latest", "mistral-large", ""],
)
def test_unknown_models_are_permissive(model: str) -> None:
    assert match(model) is None
    info = lookup(model)
    assert info == UNKNOWN
    assert info.context_window is None and info.input_price is None and info.quality is None
    assert info.tools and info.images and info.thinking


def test_well_known_figures() -> None:
    sonnet = lookup("anthropic/claude-sonnet-4.5")
    assert (sonnet.context_window, sonnet.input_price, sonnet.output_price) == (200_000, 3.0, 15.0)
    assert sonnet.tools and sonnet.images and sonnet.thinking
    gpt4o = lookup("gpt-4o")
    assert (gpt4o.context_window, gpt4o.max_output) == (128_000, 16_384)
    assert not gpt4o.thinking
    assert not lookup("deepseek-chat").images
    assert not lookup("deepseek-chat").thinking and lookup("deepseek-reasoner").thinking
    assert lookup("gemini-2.5-pro").context_window == 1_048_576
    # Open weights: the price depends on the host.
    assert lookup("qwen2.5-coder").input_price is None
    assert lookup("qwen2.5-coder").context_window == 32_768


def test_every_priced_family_has_both_prices_and_sane_figures() -> None:
    from proxy.routing.catalog import _FAMILIES

    for name, _, info in _FAMILIES:
        assert (info.input_price is None) == (info.output_price is None), name
        assert info.quality is not None and 0 <= info.quality <= 1, name
        if info.context_window is not None and info.max_output is not None:
            assert info.max_output <= info.context_window, name
        assert match(name) is not None and match(name) == (name, info), name


def test_overrides_replace_only_the_given_fields() -> None:
    base = lookup("gemini-2.5-pro")
    changed = with_overrides(base, {"context_window": 2_000_000, "quality": 0.5})
    assert changed.context_window == 2_000_000 and changed.quality == 0.5
    assert changed.input_price == base.input_price and changed.max_output == base.max_output
    assert with_overrides(base, {}) == base
    with pytest.raises(ValueError, match="not model info fields: speed"):
        with_overrides(base, {"speed": 1})


def test_info_for_prefers_the_providers_entry() -> None:
    mine = ModelInfo(8_192, 1_024, False, False, False, 0.0, 0.0, 0.3)
    provider = Provider(
        name="local",
        dialect=Dialect.OPENAI,
        deployments=(),
        models=(),
        transformers=provider_transformers([], {}, where="providers.local"),
        model_info={"qwen2.5-coder": mine},
    )
    assert info_for(provider, "qwen2.5-coder") is mine
    assert info_for(provider, "gpt-4o") == lookup("gpt-4o")
