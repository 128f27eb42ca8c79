"""Scenario detection: which of the router's scenarios a request falls into. Pure, no I/O.

``detect`` looks at a parsed Anthropic Messages body, the model the client asked for, the
token estimate of this request and the input tokens of the session's previous turn, and
answers one scenario. The rules are claude-code-router's (CCR 2.0.0, ``router.ts`` plus its
image agent), tried in this order, first match wins; a scenario the config does not set is
skipped, as in CCR:

1. image        the last user message holds an image block, directly or inside a block's
                ``content`` list (a tool_result). CCR's image agent rewrites ``body.model``
                to ``Router.image`` *before* its router runs, and the router then takes that
                ``provider,model`` value as explicit: so image beats every rule, explicit
                included. Junction keeps that order.
2. title        Junction's: Claude Code's session-title call (``tools: []`` with a JSON
                schema ``output_config.format``); route ``title``, else ``background``. Before
                explicit: with ``/model provider,model`` the title call carries that name.
3. explicit     ``model`` contains a comma: ``provider,model`` (Claude Code's ``/model p,m``).
                Returned as sent; the caller checks it and answers 404 if it names nothing.
4. compact      Junction's: the compaction turn (the TEXT ONLY instruction ends the last user
                message); route ``compact``, else ``long_context``.
5. long_context ``tokens > threshold``, or the previous turn's input tokens were over the
                threshold and this request is over 20,000 tokens.
6. subagent     a ``<CCR-SUBAGENT-MODEL>provider,model</CCR-SUBAGENT-MODEL>`` tag in a system
                block (switched by ``subagent_tag``, not by a route).
7. subagent     Junction's: ``cc_is_subagent=true`` in Claude Code's billing block; route
                ``subagent_readonly`` (no file-writing tools; else ``subagent``) or ``subagent``.
8. background   the model name contains ``claude`` and ``haiku`` (case-sensitive, as CCR), or
                matches ``background_pattern`` when one is set; and Junction's haiku tier: any
                ``haiku`` name, Junction's background aliases, Claude Code's ``max_tokens``
                32000.
9. web_search   a tool whose ``type`` starts with ``web_search``.
10. think       ``thinking`` is set (JavaScript truthiness, as CCR) and is not
                ``{"type": "disabled"}``.
11. default

The Claude Code signals (2, 4, 7 and the haiku tier) are in proxy/routing/claude_code.py;
each has a switch in ``ScenarioRules`` and is skipped, like any rule, when no route it may
use is configured.

Where Junction differs from CCR (each also in docs/routing.md):
* the subagent tag is found in any system block (or a string ``system``), anywhere in the
  text; CCR only reads a tag at the very start of ``system[1]``, and Claude Code moved it;
* the tag is removed whenever it is found, whichever rule wins (CCR forwards it when an
  earlier rule matched); a block left blank is dropped, since Anthropic rejects empty text;
* ``thinking: {"type": "disabled"}`` is not a thinking request (Claude Code sends it on title
  and Explore calls, which CCR sent to the think model);
* the image rule reads the last *user* message, skipping the role:system messages Claude Code
  now appends after it (CCR reads the very last message and so misses a first-turn image);
* background can be matched by a configurable regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from proxy.routing.claude_code import haiku_tier, is_compact_call, is_title_call, subagent_kind

Scenario = Literal[
    "image",
    "title",
    "explicit",
    "compact",
    "long_context",
    "subagent",
    "background",
    "web_search",
    "think",
    "default",
]
SCENARIO_ORDER: Final[tuple[Scenario, ...]] = (
    "image",
    "title",
    "explicit",
    "compact",
    "long_context",
    "subagent",
    "background",
    "web_search",
    "think",
    "default",
)

DEFAULT_LONG_CONTEXT_THRESHOLD: Final = 60_000
# CCR's second long-context test: a session whose previous turn was long stays on the long
# context route while this turn is above this many tokens.
LONG_CONTEXT_FOLLOWUP_TOKENS: Final = 20_000

SUBAGENT_OPEN: Final = "<CCR-SUBAGENT-MODEL>"
SUBAGENT_CLOSE: Final = "</CCR-SUBAGENT-MODEL>"

SESSION_HEADER: Final = b"x-claude-code-session-id"
MAX_SESSION_ID_CHARS: Final = 128
MAX_USER_ID_CHARS: Final = 4096  # metadata.user_id longer than this is not parsed
MAX_REASON_VALUE_CHARS: Final = 80  # client strings quoted in a reason are cut to this


@dataclass(frozen=True, slots=True)
class ScenarioRules:
    """Which scenarios the config sets a route for, and how to recognise them."""

    background: bool = False
    think: bool = False
    long_context: bool = False
    web_search: bool = False
    image: bool = False
    long_context_threshold: int = DEFAULT_LONG_CONTEXT_THRESHOLD
    background_pattern: re.Pattern[str] | None = None  # None: "claude" and "haiku" in the name
    subagent_tag: bool = True
    # Routes of the Claude Code scenarios (proxy/routing/claude_code.py) ...
    title: bool = False
    compact: bool = False
    subagent: bool = False
    subagent_readonly: bool = False
    # ... and their switches (router.claude_code): off, the signal is not looked for.
    cc_title: bool = True
    cc_compact: bool = True
    cc_subagent: bool = True
    haiku_tier: bool = True


@dataclass(slots=True, init=False)
class ScenarioDecision:
    scenario: Scenario
    explicit: str | None  # "provider,model" for explicit and the subagent tag, unchecked
    body_changed: bool  # the subagent tag was removed from the body
    reason: str  # one line for `junction route --explain` and the logs
    route: str  # the router key whose route serves it; "" for explicit and default

    def __init__(
        self,
        scenario: Scenario,
        explicit: str | None,
        body_changed: bool,
        reason: str,
        route: str = "",
    ) -> None:
        self.scenario = scenario
        self.explicit = explicit
        self.body_changed = body_changed
        self.reason = reason
        self.route = route


def compile_background_pattern(pattern: str) -> re.Pattern[str]:
    """``router.background_pattern`` compiled: searched anywhere in the model, ignoring case."""
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc


def detect(
    body: dict[str, Any],
    *,
    model: str,
    tokens: int,
    previous_input_tokens: int | None,
    rules: ScenarioRules,
) -> ScenarioDecision:
    """The scenario of one request. Removes the subagent tag from ``body`` in place."""
    tag: tuple[str, str] | None = None
    if rules.subagent_tag:
        tag = _take_subagent_tag(body)

    if rules.image:
        where = _last_user_image(body)
        if where is not None:
            why = f"image: the last user message holds an {where}"
            return _decide("image", None, tag, why, "image")

    if rules.cc_title and (rules.title or rules.background) and is_title_call(body):
        route = "title" if rules.title else "background"
        why = f"title: tools [] with a JSON schema output_config.format -> router.{route}"
        return _decide("title", None, tag, why, route)

    if "," in model:
        return _decide("explicit", model, tag, f"explicit: the request names {_q(model)}")

    if rules.cc_compact and (rules.compact or rules.long_context) and is_compact_call(body):
        route = "compact" if rules.compact else "long_context"
        why = (
            f"compact: the last user message ends with the TEXT ONLY instruction -> router.{route}"
        )
        return _decide("compact", None, tag, why, route)

    if rules.long_context:
        threshold = rules.long_context_threshold
        if tokens > threshold:
            why = f"long_context: {tokens} estimated tokens > threshold {threshold}"
            return _decide("long_context", None, tag, why, "long_context")
        if (
            previous_input_tokens is not None
            and previous_input_tokens > threshold
            and tokens > LONG_CONTEXT_FOLLOWUP_TOKENS
        ):
            why = (
                f"long_context: the session's previous turn had {previous_input_tokens} input"
                f" tokens > threshold {threshold}, and this one {tokens} > "
                f"{LONG_CONTEXT_FOLLOWUP_TOKENS}"
            )
            return _decide("long_context", None, tag, why, "long_context")

    if tag is not None:
        value, where = tag
        why = f"subagent: {SUBAGENT_OPEN} tag in {where} names {_q(value)}"
        return ScenarioDecision("subagent", value, True, why)

    if rules.cc_subagent and (rules.subagent or rules.subagent_readonly):
        kind = subagent_kind(body)
        if kind is not None:
            if kind == "readonly" and rules.subagent_readonly:
                route = "subagent_readonly"
            elif rules.subagent:
                route = "subagent"
            else:
                route = ""
            if route:
                why = f"subagent: cc_is_subagent=true, {kind} tools -> router.{route}"
                return _decide("subagent", None, tag, why, route)

    if rules.background:
        pattern = rules.background_pattern
        if pattern is None:
            if "claude" in model and "haiku" in model:
                why = f"background: model {_q(model)} contains 'claude' and 'haiku'"
                return _decide("background", None, tag, why, "background")
        elif pattern.search(model) is not None:
            why = f"background: model {_q(model)} matches /{pattern.pattern}/"
            return _decide("background", None, tag, why, "background")
        if rules.haiku_tier:
            tier = haiku_tier(body, model)
            if tier is not None:
                return _decide("background", None, tag, f"background: {tier}", "background")

    if rules.web_search:
        tool_type = _web_search_tool(body)
        if tool_type is not None:
            why = f"web_search: a tool of type {_q(tool_type)}"
            return _decide("web_search", None, tag, why, "web_search")

    if rules.think:
        thinking = body.get("thinking")
        if _js_truthy(thinking) and not (
            isinstance(thinking, dict) and thinking.get("type") == "disabled"
        ):
            kind = thinking.get("type") if isinstance(thinking, dict) else None
            shown = _q(kind) if isinstance(kind, str) else type(thinking).__name__
            return _decide("think", None, tag, f"think: thinking {shown}", "think")

    return _decide("default", None, tag, "default: no scenario matched")


def session_id(body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The Claude Code session of a request, or None.

    From the ``x-claude-code-session-id`` header (names lower-case), else from
    ``metadata.user_id``: Claude Code 2.x sends a JSON string with a ``session_id`` field;
    older versions sent ``user_<hash>_account_<uuid>_session_<uuid>``, split as CCR does.
    Anything longer than MAX_SESSION_ID_CHARS or not printable is ignored.
    """
    for name, value in headers:
        if name == SESSION_HEADER:
            sid = _clean_session(value.decode("latin-1"))
            if sid is not None:
                return sid
            break
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return None
    user_id = metadata.get("user_id")
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID_CHARS:
        return None
    if user_id[0] == "{":
        try:
            parsed = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return _clean_session(parsed.get("session_id"))
    parts = user_id.split("_session_", 2)
    return _clean_session(parts[1]) if len(parts) > 1 else None


# --- helpers --------------------------------------------------------------------------------


def _decide(
    scenario: Scenario,
    explicit: str | None,
    tag: tuple[str, str] | None,
    reason: str,
    route: str = "",
) -> ScenarioDecision:
    if tag is None:
        return ScenarioDecision(scenario, explicit, False, reason, route)
    value, where = tag
    note = f"; {SUBAGENT_OPEN} tag for {_q(value)} removed from {where}"
    return ScenarioDecision(scenario, explicit, True, reason + note, route)


def _take_subagent_tag(body: dict[str, Any]) -> tuple[str, str] | None:
    """Find the first tag in the system prompt, remove it in place: (value, where) or None."""
    system = body.get("system")
    if isinstance(system, str):
        if SUBAGENT_OPEN not in system:
            return None
        cut = _cut_tag(system)
        if cut is None:
            return None
        value, rest = cut
        if rest.strip():
            body["system"] = rest
        else:
            del body["system"]  # an empty system prompt is invalid; none at all is not
        return value, "system"
    if not isinstance(system, list):
        return None
    for i, block in enumerate(system):
        if not isinstance(block, dict):
            continue
        text = block.get("text")
        # `in` is a fast substring scan; it keeps the whole check to a few µs on a 30 KB prompt.
        if not isinstance(text, str) or SUBAGENT_OPEN not in text:
            continue
        cut = _cut_tag(text)
        if cut is None:
            continue
        value, rest = cut
        if rest.strip():
            block["text"] = rest
        else:
            del system[i]  # Anthropic rejects a text block with no non-whitespace text
        return value, f"system[{i}]"
    return None


def _cut_tag(text: str) -> tuple[str, str] | None:
    """(value, text without the tag) for the first complete tag, as CCR's lazy regex finds."""
    start = text.find(SUBAGENT_OPEN)
    if start < 0:
        return None
    value_start = start + len(SUBAGENT_OPEN)
    end = text.find(SUBAGENT_CLOSE, value_start)
    if end < 0:
        return None
    return text[value_start:end].strip(), text[:start] + text[end + len(SUBAGENT_CLOSE) :]


def _last_user_image(body: dict[str, Any]) -> str | None:
    """Where the last user message holds an image ("image block", "image inside a
    tool_result"), or None."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    last: Any = None
    # Claude Code appends role:system messages after the user's turn; look past them only.
    for message in reversed(messages):
        if not isinstance(message, dict):
            return None
        role = message.get("role")
        if role == "user":
            last = message
            break
        if role != "system":
            return None
    if last is None:
        return None
    content = last.get("content")
    if not isinstance(content, list):
        return None
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "image":
            return "image block"
        inner = block.get("content")
        if isinstance(inner, list):
            for sub in inner:
                if isinstance(sub, dict) and sub.get("type") == "image":
                    kind = block.get("type")
                    return f"image inside a {kind if isinstance(kind, str) else 'block'}"
    return None


def _web_search_tool(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    for tool in tools:
        if isinstance(tool, dict):
            kind = tool.get("type")
            if isinstance(kind, str) and kind.startswith("web_search"):
                return kind
    return None


def _js_truthy(value: object) -> bool:
    # CCR tests `if (body.thinking)`: in JavaScript every object and array is true, even empty.
    if isinstance(value, dict | list):
        return True
    return bool(value)


def _clean_session(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > MAX_SESSION_ID_CHARS or not value.isprintable():
        return None
    return value


def _q(value: str) -> str:
    if len(value) > MAX_REASON_VALUE_CHARS:
        value = value[:MAX_REASON_VALUE_CHARS] + "..."
    return repr(value)
