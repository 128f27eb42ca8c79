"""One request's routing decision: facts -> scenario -> route -> ordered candidates.

How this works: `RouteFacts.of` reads what routing needs from the parsed body once (model,
token estimate, max_tokens, tools, images, system text, session id). `Decider.scenario` runs
the claude-code-router rules (proxy/routing/scenarios.py) and remembers the session's size for
the long-context rule of its next turn. A custom router, when configured, is asked next; its
``provider,model`` answer wins, and anything else (None, an exception, an answer over its
time budget) leaves the rules' choice. `Decider.decide` then resolves the route — an explicit
``provider,model``, the scenario's route, an alias, the provider that lists the model, or the
default — and asks the selector for candidates able to serve the request, choice first.

Pure apart from the clock and the logging of custom-router failures; the router filter owns
the I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from proxy.dialects.tokens import count_tokens
from proxy.errors import BadRequestError, NoHealthyUpstreamError, NoRouteError
from proxy.filters.api import Dialect
from proxy.headers import Headers
from proxy.routing.runtime import EXPLICIT_ROUTE, RuntimeConfig
from proxy.routing.scenarios import ScenarioDecision, detect, session_id
from proxy.routing.selection import failure_status, rejection_lines
from proxy.routing.sessions import SessionUsage
from proxy.routing.types import Requirements, Route, Selection

log = logging.getLogger("junction.routing")

TITLE_MAX_ATTEMPTS: Final = 2  # a failed title call is tried again once at most
DEFAULT_MAX_TOKENS: Final = 4096  # what a request that names none is assumed to allow
# A request of N body bytes holds fewer than N + TOKEN_BOUND_SLACK input tokens (a token
# covers at least a byte; the slack covers the fixed costs: per message, the tool prompt).
TOKEN_BOUND_SLACK: Final = 2048
ROUGH_BYTES_PER_TOKEN: Final = 4  # the figure shown when tokens were not counted
MAX_SYSTEM_VIEW_CHARS: Final = 64 * 1024  # system text shown to a custom router
MAX_VIEW_HEADERS: Final = 64
# Never shown to a custom router: the client's credentials.
_HIDDEN_HEADERS: Final = frozenset({b"authorization", b"x-api-key", b"proxy-authorization"})


@dataclass(slots=True, init=False)
class RouteFacts:
    """What routing reads from a request. Also the read-only view a custom router gets."""

    model: str
    dialect: str  # "anthropic" or "openai": the client's
    tokens: int  # estimated input tokens
    max_tokens: int
    tools: tuple[str, ...]  # tool names (server tools by their type)
    thinking: bool
    images: bool  # an image anywhere in the conversation
    system: str  # the system text (only filled when a custom router is configured)
    session_id: str | None
    headers: Mapping[str, str]  # lower-case names, credentials removed (custom router only)
    scenario: str  # what the built-in rules chose
    tokens_exact: bool  # False: ``tokens`` is a rough figure no decision depended on

    def __init__(
        self,
        *,
        model: str,
        dialect: str,
        tokens: int,
        max_tokens: int,
        tools: tuple[str, ...],
        thinking: bool,
        images: bool,
        system: str,
        session_id: str | None,
        headers: Mapping[str, str],
        scenario: str,
        tokens_exact: bool,
    ) -> None:
        self.model = model
        self.dialect = dialect
        self.tokens = tokens
        self.max_tokens = max_tokens
        self.tools = tools
        self.thinking = thinking
        self.images = images
        self.system = system
        self.session_id = session_id
        self.headers = headers
        self.scenario = scenario
        self.tokens_exact = tokens_exact


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(slots=True, init=False)
class Decision:
    scenario: str
    route: Route
    selection: Selection
    facts: RouteFacts
    reason: str
    max_attempts: int  # upstream attempts allowed, fallbacks and retries included

    def __init__(
        self,
        scenario: str,
        route: Route,
        selection: Selection,
        facts: RouteFacts,
        reason: str,
        max_attempts: int,
    ) -> None:
        self.scenario = scenario
        self.route = route
        self.selection = selection
        self.facts = facts
        self.reason = reason
        self.max_attempts = max_attempts


class Decider:
    """Routing decisions against one runtime; the session memory outlives reloads."""

    __slots__ = ("_clock", "_runtime", "_sessions")

    def __init__(
        self, runtime: RuntimeConfig, sessions: SessionUsage, clock: Callable[[], float]
    ) -> None:
        self._runtime = runtime
        self._sessions = sessions
        self._clock = clock

    def prepare(
        self,
        body: dict[str, Any],
        headers: Headers,
        dialect: Dialect,
        size: int,
        *,
        exact: bool = False,
    ) -> tuple[RouteFacts, ScenarioDecision]:
        """The request's facts and the rules' scenario. Removes the subagent tag from
        ``body`` (in place). ``size`` is the body's length in bytes.

        Counting tokens costs microseconds on small requests and up to half a millisecond on
        Claude Code's, so it is skipped when no decision can depend on it: no long-context
        rule, no custom router, no image, and even ``size`` tokens (an upper bound, with
        slack for fixed costs) plus ``max_tokens`` fit every configured context window.
        """
        runtime = self._runtime
        model = body.get("model")
        model = model if isinstance(model, str) else ""
        limit = body.get("max_tokens")
        if limit is None:
            limit = body.get("max_completion_tokens")
        max_tokens = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_TOKENS
        images = _has_image(body)
        custom = runtime.custom is not None
        exact = (
            exact
            or custom
            or images
            or runtime.rules.long_context
            or size + TOKEN_BOUND_SLACK + max_tokens >= runtime.min_context_window
        )
        tokens = count_tokens(body, dialect) if exact else size // ROUGH_BYTES_PER_TOKEN
        sid = session_id(body, headers)
        previous = self._sessions.get(sid) if sid and runtime.rules.long_context else None
        rules = detect(
            body, model=model, tokens=tokens, previous_input_tokens=previous, rules=runtime.rules
        )
        if sid and exact:
            # The estimate stands in for the provider's reported usage: it is known now, for
            # every dialect, whether the answer streams or not.
            self._sessions.put(sid, tokens)
        thinking = body.get("thinking")
        facts = RouteFacts(
            model=model,
            dialect="anthropic" if dialect is Dialect.ANTHROPIC else "openai",  # no enum property
            tokens=tokens,
            max_tokens=max_tokens,
            tools=_tool_names(body.get("tools")),
            thinking=(isinstance(thinking, dict) and thinking.get("type") != "disabled")
            or isinstance(body.get("reasoning_effort"), str),
            images=images,
            system=_system_text(body)[:MAX_SYSTEM_VIEW_CHARS] if custom else "",
            session_id=sid,
            headers=_header_view(headers) if custom else _NO_HEADERS,
            scenario=rules.scenario,
            tokens_exact=exact,
        )
        return facts, rules

    def ask_custom(self, facts: RouteFacts) -> str | None:
        """A synchronous custom router's answer, or None to use the rules."""
        custom = self._runtime.custom
        if custom is None:
            return None
        started = self._clock()
        try:
            answer = custom(facts)
        except Exception as exc:  # a user's function: any failure falls back to the rules
            log.warning("router.custom raised %s: %s; the rules decide", type(exc).__name__, exc)
            return None
        took = self._clock() - started
        if took > self._runtime.custom_budget_s:
            log.warning(
                "router.custom took %.1f ms, over its %.1f ms budget; the rules decide",
                took * 1000,
                self._runtime.custom_budget_s * 1000,
            )
            return None
        return custom_answer(answer)

    def decide(
        self,
        facts: RouteFacts,
        rules: ScenarioDecision,
        custom: str | None,
        *,
        body: dict[str, Any] | None = None,
        healthy: Callable[[Any], bool] | None = None,
    ) -> Decision:
        """Raises NoRouteError (404) for an unknown ``provider,model``, BadRequestError (400)
        when no candidate can serve the request as written, NoHealthyUpstreamError (503)
        when the only ones that could are unhealthy."""
        runtime = self._runtime
        scenario: str = rules.scenario
        reason = rules.reason
        explicit = rules.explicit if scenario in ("explicit", "subagent") else None
        if custom is not None:
            explicit, scenario, reason = custom, "custom", f"router.custom chose {custom}"
        if explicit is not None:
            route = _explicit(runtime, explicit)
        elif rules.route and rules.route in runtime.routes:
            route = runtime.routes[rules.route]
        else:
            route = _by_model(runtime, facts.model)
            if route is not runtime.routes["default"]:
                reason = f"model {facts.model!r}: {route.name}"
        tokens = facts.tokens
        if not facts.tokens_exact and route.name == EXPLICIT_ROUTE and body is not None:
            # A target the request names may be a model with a small window that the
            # configured minimum did not cover: count.
            tokens = count_tokens(body, Dialect(facts.dialect))
        need = Requirements(
            tokens=tokens,
            max_tokens=facts.max_tokens,
            tools=bool(facts.tools),
            images=facts.images,
            # Thinking is dropped in translation for models without it; only the think
            # route insists on a model that has it.
            thinking=scenario == "think",
        )
        if healthy is None:
            selection = runtime.selector.select(route, need, session=facts.session_id)
        else:
            selection = runtime.selector.select(
                route, need, session=facts.session_id, healthy=healthy
            )
        if not selection.ordered:
            lines = "; ".join(rejection_lines(selection)) or "the route has no candidates"
            message = f"no provider can serve this request ({route.name}): {lines}"
            if failure_status(selection) == 400:
                raise BadRequestError(message)
            raise NoHealthyUpstreamError(
                message, candidates=tuple(c for c, _ in selection.rejected)
            )
        attempts = runtime.max_attempts
        if scenario == "title":
            # Titles are best-effort and Claude Code asks again on its next prompt.
            attempts = min(attempts, TITLE_MAX_ATTEMPTS)
        return Decision(scenario, route, selection, facts, reason, attempts)


def custom_answer(answer: object) -> str | None:
    """A custom router's return value as a ``provider,model`` string, or None."""
    if isinstance(answer, str) and "," in answer:
        return answer.strip()
    if answer is not None:
        log.warning("router.custom returned %r, not 'provider,model'; the rules decide", answer)
    return None


def _explicit(runtime: RuntimeConfig, ref: str) -> Route:
    name, _, model = ref.partition(",")
    route = runtime.explicit_route(name.strip(), model.strip())
    if route is None:
        known = ", ".join(runtime.providers)
        raise NoRouteError(
            f"model {ref[:200]!r} names provider {name.strip()[:100]!r}, which is not"
            f" configured (providers: {known})"
        )
    return route


def _by_model(runtime: RuntimeConfig, model: str) -> Route:
    """An alias; else the default route when one of its targets is this model (its
    fallbacks and strategy apply); else the provider that lists the model; else default."""
    alias = runtime.aliases.get(model)
    if alias is not None:
        return alias
    default = runtime.routes["default"]
    if any(t.model == model for t in default.targets):
        return default
    listed = runtime.by_model.get(model)
    if listed is not None:
        route = runtime.explicit_route(listed.provider.name, model)
        if route is not None:
            return route
    return runtime.routes["default"]


def _tool_names(tools: object) -> tuple[str, ...]:
    if not isinstance(tools, list):
        return ()
    names: list[str] = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        name = tool.get("name")
        if not isinstance(name, str):
            fn = tool.get("function")
            name = fn.get("name") if isinstance(fn, dict) else tool.get("type")
        if isinstance(name, str):
            names.append(name)
    return tuple(names)


def _has_image(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and _blocks_have_image(content):
            return True
    return False


def _blocks_have_image(blocks: list[Any]) -> bool:
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("image", "image_url"):
            return True
        inner = block.get("content")
        if kind == "tool_result" and isinstance(inner, list) and _blocks_have_image(inner):
            return True
    return False


def _system_text(body: dict[str, Any]) -> str:
    system = body.get("system")
    if isinstance(system, str):
        return system
    parts: list[str] = []
    if isinstance(system, list):
        parts.extend(
            b["text"] for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict) and m.get("role") in ("system", "developer"):
                content = m.get("content")
                if isinstance(content, str):
                    parts.append(content)
    return "\n\n".join(parts)


def _header_view(headers: Headers) -> Mapping[str, str]:
    view: dict[str, str] = {}
    for k, v in headers[:MAX_VIEW_HEADERS]:
        if k not in _HIDDEN_HEADERS:
            view[k.decode("latin-1")] = v.decode("latin-1")
    return MappingProxyType(view)
