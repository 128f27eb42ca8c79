"""Built-in metadata for well-known models: context window, output cap, capabilities, prices.

How this works: a model name is normalised (lower case; the part after the last ``/``, so
OpenRouter's ``anthropic/claude-sonnet-4.5`` and Vertex's ``claude-sonnet-4-5@20250929`` lose
their decoration; anything after ``:`` or ``@`` dropped, as in Ollama's ``qwen2.5-coder:32b``
and Bedrock's ``...-v1:0``; ``.`` and ``_`` become ``-``). The normalised name is looked up
exactly among the families' canonical names, then searched for each family's pattern in
order, most specific first (``gpt-4o-mini`` before ``gpt-4o``). A pattern matches on whole
``-``-separated words, so ``o3`` finds ``openai/o3-2025-04-16`` but not ``gpt-4o3``. A name
nothing matches gets `UNKNOWN`: every capability assumed, no context window (so no context
filtering), no price and no quality.

The figures are DEFAULTS, to be overridden per provider in the config (``model_info``), field
by field. Prices are USD per million tokens from the vendors' public price pages as of late
2025 / early 2026 (standard tier, the lowest prompt-size tier where a vendor has several):
input (uncached), output, and where given a third figure, input read from the prompt cache
(Anthropic cache reads, OpenAI cached input, DeepSeek cache hits; cache writes count as
input); context windows and output caps from the vendors' model pages.
Open-weight models (Llama, Qwen, DeepSeek R1/V3 weights, gpt-oss) have no price: it depends
on who hosts them, and a local server costs nothing, so set ``input_price`` for yours.
``quality`` is a rough 0..1 ranking (our judgement from public coding and reasoning
leaderboards), only meant for the cost strategy's ``quality_floor``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Final

from proxy.routing.types import ModelInfo, Provider

UNKNOWN: Final = ModelInfo(
    context_window=None,
    max_output=None,
    tools=True,
    images=True,
    thinking=True,
    input_price=None,
    output_price=None,
    quality=None,
)

_INFO_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(ModelInfo))


def _m(
    context: int | None,
    output: int | None,
    caps: str,
    prices: tuple[float, float] | tuple[float, float, float] | None,
    quality: float,
) -> ModelInfo:
    """caps: letters for tools (t), images (i), thinking (r, reasoning). prices: input,
    output and, where the vendor discounts prompt-cache reads, cached input."""
    return ModelInfo(
        context_window=context,
        max_output=output,
        tools="t" in caps,
        images="i" in caps,
        thinking="r" in caps,
        input_price=None if prices is None else prices[0],
        output_price=None if prices is None else prices[1],
        quality=quality,
        cached_input_price=prices[2] if prices is not None and len(prices) == 3 else None,
    )


_M = 1_048_576  # Google's and OpenAI's "1M" context

# (canonical name, pattern over the normalised name, info). Order matters: the first pattern
# that matches wins, so a family's specific members come before the family.
_FAMILIES: Final[tuple[tuple[str, str, ModelInfo], ...]] = (
    # Anthropic (docs.anthropic.com models overview and pricing pages).
    ("claude-opus-4-5", r"claude-opus-4-[5-9]", _m(200_000, 64_000, "tir", (5.0, 25.0, 0.5), 0.95)),
    ("claude-opus-4", r"claude-opus-4", _m(200_000, 32_000, "tir", (15.0, 75.0, 1.5), 0.92)),
    (
        "claude-sonnet-4-5",
        r"claude-sonnet-4-[5-9]",
        _m(200_000, 64_000, "tir", (3.0, 15.0, 0.3), 0.92),
    ),
    ("claude-sonnet-4", r"claude-sonnet-4", _m(200_000, 64_000, "tir", (3.0, 15.0, 0.3), 0.88)),
    ("claude-haiku-4-5", r"claude-haiku-4", _m(200_000, 64_000, "tir", (1.0, 5.0, 0.1), 0.8)),
    ("claude-3-7-sonnet", r"claude-3-7-sonnet", _m(200_000, 64_000, "tir", (3.0, 15.0, 0.3), 0.85)),
    ("claude-3-5-sonnet", r"claude-3-5-sonnet", _m(200_000, 8_192, "ti", (3.0, 15.0, 0.3), 0.8)),
    ("claude-3-5-haiku", r"claude-3-5-haiku", _m(200_000, 8_192, "ti", (0.8, 4.0, 0.08), 0.65)),
    ("claude-3-opus", r"claude-3-opus", _m(200_000, 4_096, "ti", (15.0, 75.0, 1.5), 0.75)),
    ("claude-3-haiku", r"claude-3-haiku", _m(200_000, 4_096, "ti", (0.25, 1.25, 0.03), 0.5)),
    # OpenAI (platform.openai.com models and pricing pages). GPT-5's 400K window is 272K of
    # input plus 128K of output.
    ("gpt-5-nano", r"gpt-5(-\d+)?-nano", _m(400_000, 128_000, "tir", (0.05, 0.4, 0.005), 0.7)),
    (
        "gpt-5-mini",
        r"gpt-5(-\d+)?(-codex)?-mini",
        _m(400_000, 128_000, "tir", (0.25, 2.0, 0.025), 0.82),
    ),
    ("gpt-5-pro", r"gpt-5(-\d+)?-pro", _m(400_000, 272_000, "tir", (15.0, 120.0), 0.95)),
    ("gpt-5-chat", r"gpt-5(-\d+)?-chat", _m(128_000, 16_384, "ti", (1.25, 10.0, 0.125), 0.85)),
    ("gpt-5", r"gpt-5", _m(400_000, 128_000, "tir", (1.25, 10.0, 0.125), 0.92)),
    ("gpt-4-1-nano", r"gpt-4-1-nano", _m(_M, 32_768, "ti", (0.1, 0.4, 0.025), 0.6)),
    ("gpt-4-1-mini", r"gpt-4-1-mini", _m(_M, 32_768, "ti", (0.4, 1.6, 0.1), 0.72)),
    ("gpt-4-1", r"gpt-4-1", _m(_M, 32_768, "ti", (2.0, 8.0, 0.5), 0.82)),
    ("gpt-4o-mini", r"gpt-4o-mini", _m(128_000, 16_384, "ti", (0.15, 0.6, 0.075), 0.62)),
    ("gpt-4o", r"gpt-4o", _m(128_000, 16_384, "ti", (2.5, 10.0, 1.25), 0.78)),
    ("gpt-oss-120b", r"gpt-oss-120b", _m(131_072, None, "tr", None, 0.78)),
    ("gpt-oss-20b", r"gpt-oss-20b", _m(131_072, None, "tr", None, 0.65)),
    ("o4-mini", r"o4-mini", _m(200_000, 100_000, "tir", (1.1, 4.4, 0.275), 0.84)),
    ("o3-pro", r"o3-pro", _m(200_000, 100_000, "tir", (20.0, 80.0), 0.93)),
    ("o3-mini", r"o3-mini", _m(200_000, 100_000, "tr", (1.1, 4.4), 0.8)),
    ("o3", r"o3", _m(200_000, 100_000, "tir", (2.0, 8.0, 0.5), 0.9)),
    ("o1-mini", r"o1-mini", _m(128_000, 65_536, "r", (1.1, 4.4), 0.72)),
    ("o1-pro", r"o1-pro", _m(200_000, 100_000, "tir", (150.0, 600.0), 0.88)),
    ("o1", r"o1", _m(200_000, 100_000, "tir", (15.0, 60.0), 0.85)),
    # Google (ai.google.dev Gemini models and pricing pages; prompts up to 200K tokens).
    ("gemini-3-pro", r"gemini-3-pro", _m(_M, 65_536, "tir", (2.0, 12.0), 0.95)),
    ("gemini-2-5-flash-lite", r"gemini-2-5-flash-lite", _m(_M, 65_536, "tir", (0.1, 0.4), 0.65)),
    ("gemini-2-5-flash", r"gemini-2-5-flash", _m(_M, 65_536, "tir", (0.3, 2.5), 0.8)),
    ("gemini-2-5-pro", r"gemini-2-5-pro", _m(_M, 65_536, "tir", (1.25, 10.0), 0.9)),
    ("gemini-2-0-flash-lite", r"gemini-2-0-flash-lite", _m(_M, 8_192, "ti", (0.075, 0.3), 0.55)),
    ("gemini-2-0-flash", r"gemini-2-0-flash", _m(_M, 8_192, "ti", (0.1, 0.4), 0.6)),
    # DeepSeek API (api-docs.deepseek.com pricing, V3.2; cache-miss input price).
    (
        "deepseek-reasoner",
        r"deepseek-reasoner",
        _m(128_000, 65_536, "tr", (0.28, 0.42, 0.028), 0.85),
    ),
    ("deepseek-chat", r"deepseek-chat", _m(128_000, 8_192, "t", (0.28, 0.42, 0.028), 0.8)),
    ("deepseek-r1", r"deepseek-r1", _m(128_000, None, "tr", None, 0.8)),
    ("deepseek-v3", r"deepseek-v3", _m(128_000, None, "t", None, 0.78)),
    # Qwen: Alibaba Cloud Model Studio (international, smallest prompt tier); open weights.
    ("qwen3-coder-plus", r"qwen3-coder-plus", _m(1_000_000, 65_536, "t", (1.0, 5.0), 0.82)),
    ("qwen3-coder-flash", r"qwen3-coder-flash", _m(1_000_000, 65_536, "t", (0.3, 1.5), 0.72)),
    ("qwen3-coder", r"qwen3-coder", _m(262_144, 65_536, "t", None, 0.8)),
    ("qwen2-5-coder", r"qwen2-5-coder", _m(32_768, None, "t", None, 0.6)),
    # Meta Llama 3.x, open weights (llama.com model cards). Llama 3.0 had an 8K window.
    ("llama-3-3", r"llama-?3-3", _m(131_072, None, "t", None, 0.65)),
    ("llama-3-2-vision", r"llama-?3-2-(11|90)b", _m(131_072, None, "ti", None, 0.55)),
    ("llama-3-2", r"llama-?3-2", _m(131_072, None, "t", None, 0.35)),
    ("llama-3-1-405b", r"llama-?3-1-405b", _m(131_072, None, "t", None, 0.7)),
    ("llama-3-1-70b", r"llama-?3-1-70b", _m(131_072, None, "t", None, 0.62)),
    ("llama-3-1", r"llama-?3-1", _m(131_072, None, "t", None, 0.4)),
    ("llama-3", r"llama-?3", _m(8_192, None, "t", None, 0.35)),
    # Popular in claude-code-router configs (z.ai, Moonshot and xAI price pages).
    ("glm-4-6", r"glm-4-6", _m(200_000, 128_000, "tr", (0.6, 2.2), 0.82)),
    ("glm-4-5-air", r"glm-4-5-air", _m(128_000, 96_000, "tr", (0.2, 1.1), 0.72)),
    ("glm-4-5", r"glm-4-5", _m(128_000, 96_000, "tr", (0.6, 2.2), 0.8)),
    ("kimi-k2-thinking", r"kimi-k2-thinking", _m(262_144, None, "tr", (0.6, 2.5), 0.84)),
    ("kimi-k2", r"kimi-k2", _m(262_144, None, "t", (0.6, 2.5), 0.8)),
    ("grok-code-fast", r"grok-code-fast", _m(256_000, 10_000, "tr", (0.2, 1.5), 0.75)),
    ("grok-4", r"grok-4", _m(256_000, None, "tir", (3.0, 15.0), 0.88)),
)

_EXACT: Final[dict[str, tuple[str, ModelInfo]]] = {
    name: (name, info) for name, _, info in _FAMILIES
}
# Whole words only: the pattern starts at the start of the name or after "-", and ends at
# the end or before "-".
_PATTERNS: Final[tuple[tuple[str, re.Pattern[str], ModelInfo], ...]] = tuple(
    (name, re.compile(rf"(?:^|-)(?:{pattern})(?:-|$)"), info) for name, pattern, info in _FAMILIES
)


def normalise(model: str) -> str:
    """The form families are matched on: ``Anthropic/Claude-Sonnet-4.5:beta`` ->
    ``claude-sonnet-4-5``."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    for mark in (":", "@"):
        name = name.split(mark, 1)[0]
    return name.replace(".", "-").replace("_", "-")


def match(model: str) -> tuple[str, ModelInfo] | None:
    """(the family's canonical name, its defaults) for a well-known model; None otherwise."""
    name = normalise(model)
    hit = _EXACT.get(name)
    if hit is not None:
        return hit
    for family, pattern, info in _PATTERNS:
        if pattern.search(name):
            return family, info
    return None


def lookup(model: str) -> ModelInfo:
    """The built-in defaults for ``model``; `UNKNOWN` (permissive) when it is not known."""
    hit = match(model)
    return UNKNOWN if hit is None else hit[1]


def with_overrides(info: ModelInfo, overrides: Mapping[str, object]) -> ModelInfo:
    """``info`` with the given fields replaced (the ones a config's ``model_info`` sets)."""
    unknown = set(overrides) - _INFO_FIELDS
    if unknown:
        raise ValueError(f"not model info fields: {', '.join(sorted(unknown))}")
    return dataclasses.replace(info, **overrides)  # type: ignore[arg-type]


def info_for(provider: Provider, model: str) -> ModelInfo:
    """What Junction knows of ``model`` on ``provider``: the config's entry (already merged
    over the defaults) or the built-in defaults."""
    info = provider.model_info.get(model)
    return lookup(model) if info is None else info
