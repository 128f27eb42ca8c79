"""Claude Code's call types, recognised by the shape of the request. Pure, no I/O.

Claude Code 2.1 makes four kinds of call besides the main turn (reference: protocol.md §1.3,
captures in tests/fixtures/routing/cc_tui_*), and since the title call carries the main
model's name unless ANTHROPIC_SMALL_FAST_MODEL is set, a model-name rule cannot tell them
apart. Their shapes can:

* title: a Claude Code request (the billing block first) with ``tools: []`` (present and
  empty) and an ``output_config.format`` of type ``json_schema`` (the structured-outputs
  beta): the session-title call. Other clients' structured-output requests are not titles;
* subagent: the first system block is the billing header and carries
  ``cc_is_subagent=true``; read-only when none of its tools can write files (Explore);
* compact: the last user message ends with a text block starting with the compaction
  instruction ``CRITICAL: Respond with TEXT ONLY.``;
* haiku tier: a model name containing ``haiku``, one of Junction's own background aliases
  (what `junction claude` sets ANTHROPIC_SMALL_FAST_MODEL / ANTHROPIC_DEFAULT_HAIKU_MODEL
  to), or a Claude Code request with ``max_tokens`` 32000 (what Claude Code asks of its
  small model, whatever it is called).

Every check reads a few dict keys, the start of one short system block and the start of one
text block: no scan of the prompt, so the cost stays under a microsecond or two on a 100 KB
request (docs/routing.md gives the figure).
"""

from __future__ import annotations

from typing import Any, Final

BILLING_PREFIX: Final = "x-anthropic-billing-header:"
SUBAGENT_MARK: Final = "cc_is_subagent=true"
# The billing block is about 90 characters; anything much longer is not Claude Code's.
MAX_BILLING_BLOCK_CHARS: Final = 512
COMPACT_PREFIX: Final = "CRITICAL: Respond with TEXT ONLY."
HAIKU_TIER_MAX_TOKENS: Final = 32_000

# The names `junction claude` gives Claude Code for its small/fast and haiku models; they
# resolve to the background route (proxy/routing/runtime.py), else to the default route.
SMALL_FAST_ALIAS: Final = "junction-small-fast"
HAIKU_ALIAS: Final = "junction-haiku"
BACKGROUND_ALIASES: Final = frozenset({SMALL_FAST_ALIAS, HAIKU_ALIAS})

# Tools that change files: a subagent holding none of them is read-only (Explore, Plan).
# Bash is not counted: Claude Code gives it to Explore, whose prompt forbids writing.
WRITE_TOOLS: Final = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})


def is_claude_code(body: dict[str, Any]) -> bool:
    """The request's first system block is Claude Code's billing header."""
    return _billing_block(body) is not None


def is_title_call(body: dict[str, Any]) -> bool:
    """A Claude Code request with ``tools: []`` and a JSON-schema ``output_config.format``."""
    tools = body.get("tools")
    if not isinstance(tools, list) or tools:
        return False
    config = body.get("output_config")
    if not isinstance(config, dict):
        return False
    fmt = config.get("format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return False
    return _billing_block(body) is not None


def subagent_kind(body: dict[str, Any]) -> str | None:
    """``"readonly"`` or ``"write"`` for a Claude Code subagent's request, else None."""
    billing = _billing_block(body)
    if billing is None or SUBAGENT_MARK not in billing:
        return None
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, dict) and tool.get("name") in WRITE_TOOLS:
                return "write"
    return "readonly"


def is_compact_call(body: dict[str, Any]) -> bool:
    """The last user message (past trailing role:system messages) ends with a text block
    starting with Claude Code's compaction instruction."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    for message in reversed(messages):
        if not isinstance(message, dict):
            return False
        role = message.get("role")
        if role == "system":
            continue
        if role != "user":
            return False
        content = message.get("content")
        if isinstance(content, str):
            return content.startswith(COMPACT_PREFIX)
        if not isinstance(content, list) or not content:
            return False
        block = content[-1]
        if not isinstance(block, dict) or block.get("type") != "text":
            return False
        text = block.get("text")
        return isinstance(text, str) and text.startswith(COMPACT_PREFIX)
    return False


def haiku_tier(body: dict[str, Any], model: str) -> str | None:
    """Why the request is a small-model call (for the reason line), or None."""
    if model in BACKGROUND_ALIASES:
        return f"model {model!r} is Junction's background alias"
    if "haiku" in model.lower():
        return "the model name contains 'haiku'"
    if body.get("max_tokens") == HAIKU_TIER_MAX_TOKENS and _billing_block(body) is not None:
        return f"a Claude Code request with max_tokens {HAIKU_TIER_MAX_TOKENS}"
    return None


def _billing_block(body: dict[str, Any]) -> str | None:
    system = body.get("system")
    if not isinstance(system, list) or not system:
        return None
    first = system[0]
    if not isinstance(first, dict):
        return None
    text = first.get("text")
    if (
        isinstance(text, str)
        and len(text) <= MAX_BILLING_BLOCK_CHARS
        and text.startswith(BILLING_PREFIX)
    ):
        return text
    return None
