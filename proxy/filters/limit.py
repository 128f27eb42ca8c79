"""Per-key model allow-lists and rate, concurrency and spend limits, once the body is parsed.

How this works: the filter sits after the body filter (which holds header iteration until
the JSON body is parsed) and before the router. It reads the model the client asked for and
works out where the request is expected to go — an explicit ``provider,model``, an alias, the
default route when it names that model, the provider listing the model, else the default
route; the scenario rules and the selector run later, in the router, and may still pick
another target of the operator's routes. Then:

1. Allow-list: the key (recorded by `AuthFilter`) must allow the requested model and, when
   the router honours ``<CCR-SUBAGENT-MODEL>`` tags, the tag's model too — otherwise the tag
   would reach any model. Refused: 403 ``permission_error``.
2. Admission: the limiter (one per worker, proxy/limits/) checks the key's, the model's and
   the provider's limits with a token estimate of the input (proxy/dialects/tokens.py, only
   when a token or spend limit applies). Refused: 429 ``rate_limit_error`` with
   ``retry-after`` in whole seconds (rounded up), response flag RL.
3. When the stream ends, for any reason (answer, error, client gone), ``on_destroy`` releases
   the concurrency slots and, when the provider's usage is on the stream info
   (``input_tokens``/``output_tokens``), has the limiter correct its estimate with it.

A limiter may answer asynchronously (a shared backend); the filter then holds the request
until the answer, buffering its body, and cancels the wait if the stream ends first. An answer
that fails with a `ProxyError` (Redis down with ``fail_closed``) is the client's error reply;
any other failure lets the request go on.
``/v1/messages/count_tokens`` is checked against the allow-list only: counting costs nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from proxy.config.auth import limit_settings, provider_problems
from proxy.config.problems import format_loc
from proxy.dialects.tokens import count_tokens
from proxy.errors import ConfigError, ProxyError
from proxy.filters.api import DataStatus, DecoderFilter, FilterCallbacks, HeadersStatus
from proxy.headers import Headers
from proxy.limits.api import Admission, AdmitResult, Limiter, ModelPrice, Pricing, Rejection
from proxy.limits.redis import limiter_for
from proxy.routing.catalog import info_for, lookup
from proxy.routing.scenarios import SUBAGENT_CLOSE, SUBAGENT_OPEN

if TYPE_CHECKING:
    from proxy.config.model import JunctionConfig
    from proxy.filters.auth import ApiKey
    from proxy.routing.runtime import RuntimeConfig
    from proxy.routing.types import Provider, Target

COUNT_TOKENS_PATH: Final = "/v1/messages/count_tokens"
MAX_SHOWN_MODEL_CHARS: Final = 200


def expected_target(runtime: RuntimeConfig, requested: str) -> Target | None:
    """Where a request for ``requested`` goes unless a scenario rule sends it elsewhere (the
    route resolution of proxy/routing/decide.py, first target). None: it names a provider
    that does not exist (the router answers 404)."""
    if "," in requested:
        name, _, model = requested.partition(",")
        route = runtime.explicit_route(name.strip(), model.strip())
        return route.targets[0] if route is not None else None
    alias = runtime.aliases.get(requested)
    if alias is not None:
        return alias.targets[0]
    default = runtime.routes["default"]
    if any(t.model == requested for t in default.targets):
        return default.targets[0]
    listed = runtime.by_model.get(requested)
    return listed if listed is not None else default.targets[0]


def subagent_model(body: dict[str, Any]) -> str | None:
    """The ``provider,model`` of the first subagent tag in the system prompt, read without
    changing the body (the router removes the tag)."""
    system = body.get("system")
    texts: list[str] = []
    if isinstance(system, str):
        texts.append(system)
    elif isinstance(system, list):
        for block in system:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                texts.append(block["text"])
    for text in texts:
        start = text.find(SUBAGENT_OPEN)
        if start < 0:
            continue
        value_start = start + len(SUBAGENT_OPEN)
        end = text.find(SUBAGENT_CLOSE, value_start)
        if end >= 0:
            return text[value_start:end].strip()
    return None


def catalog_pricing(providers: dict[str, Provider]) -> Pricing:
    """Prices from the model catalog, with each provider's ``model_info`` overrides."""

    def price(provider: str, model: str) -> ModelPrice | None:
        found = providers.get(provider)
        info = info_for(found, model) if found is not None else lookup(model)
        if info.input_price is None and info.output_price is None:
            return None
        return ModelPrice(
            info.input_price or 0.0, info.output_price or 0.0, info.cached_input_price
        )

    return price


def configured_limiter(
    cfg: JunctionConfig, providers: dict[str, Provider], previous: Limiter | None
) -> Limiter:
    """The worker's limiter with ``cfg``'s limits: ``previous`` (the running one, so counts,
    windows and held slots survive a reload) or a new one — in-process, or shared through
    Redis (wrapping the in-process one as its fallback) when ``redis:`` is configured; the
    caller closes a replaced one (`close_limiter`). Raises ConfigError for a provider name
    the limit sections use that no provider has."""
    problems = provider_problems(providers, cfg.auth, cfg.rate_limits)
    if problems:
        raise ConfigError("\n".join(f"{format_loc(loc)}: {message}" for loc, message in problems))
    limiter = limiter_for(cfg.redis.settings() if cfg.redis is not None else None, previous)
    limiter.configure(limit_settings(cfg.auth, cfg.rate_limits), catalog_pricing(providers))
    return limiter


def limit_filters(runtime: RuntimeConfig) -> list[DecoderFilter]:
    """The filters that follow the body filter: `LimitFilter` when some limit or allow-list
    is configured, else none."""
    if runtime.limiter.active or runtime.auth.restricts_models:
        return [LimitFilter(runtime)]
    return []


class LimitFilter:
    __slots__ = ("_admission", "_cb", "_pending", "_runtime", "_wall")

    def __init__(self, runtime: RuntimeConfig, wall: Callable[[], float] = time.time) -> None:
        self._runtime = runtime
        self._wall = wall
        self._admission: Admission | None = None
        self._pending: asyncio.Future[AdmitResult] | None = None

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        req = self._cb.request
        body = req.body_json
        if not isinstance(body, dict):
            return HeadersStatus.CONTINUE  # the router answers 400
        runtime = self._runtime
        name = self._cb.info.api_key_name or None
        key = runtime.auth.key(name) if name is not None else None
        requested = body.get("model")
        requested = requested if isinstance(requested, str) else ""
        target = expected_target(runtime, requested)
        if key is not None and key.allowed and not self._allowed(key, body, requested, target):
            return HeadersStatus.STOP
        limiter = runtime.limiter
        if req.route_path == COUNT_TOKENS_PATH or not limiter.active:
            return HeadersStatus.CONTINUE
        model, provider = (target.model, target.provider.name) if target else (requested, "")
        tokens = (
            count_tokens(body, req.dialect) if limiter.counts_tokens(name, model, provider) else 0
        )
        result = limiter.admit(name, model, provider, tokens, self._wall())
        if isinstance(result, Admission):
            self._admission = result
            return HeadersStatus.CONTINUE
        if isinstance(result, Rejection):
            self._reject(result)
            return HeadersStatus.STOP
        self._wait(result)
        return HeadersStatus.STOP

    def _allowed(
        self, key: ApiKey, body: dict[str, Any], requested: str, target: Target | None
    ) -> bool:
        names: list[tuple[str, Target | None]] = [(requested, target)]
        if self._runtime.rules.subagent_tag:
            tagged = subagent_model(body)
            if tagged:
                names.append((tagged, expected_target(self._runtime, tagged)))
        for name, where in names:
            pair = (where.provider.name, where.model) if where is not None else None
            if not key.allows(name, pair):
                shown = name[:MAX_SHOWN_MODEL_CHARS]
                self._cb.send_local_reply(
                    403,
                    f"API key {key.name!r} is not allowed to use model {shown!r}",
                    kind="permission_error",
                )
                return False
        return True

    def _reject(self, rejection: Rejection) -> None:
        seconds = max(1, math.ceil(rejection.retry_after_s))
        self._cb.info.add_flag("RL")
        self._cb.send_local_reply(
            429,
            f"{rejection.message}; retry after {seconds} s",
            kind="rate_limit_error",
            headers=[(b"retry-after", b"%d" % seconds)],
        )

    def _wait(self, answer: Awaitable[AdmitResult]) -> None:
        self._pending = asyncio.ensure_future(answer)
        self._pending.add_done_callback(self._answered)

    def _answered(self, future: asyncio.Future[AdmitResult]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        result = None if error is not None else future.result()
        if self._pending is not future:
            # The stream ended after the answer came but before this callback ran: give
            # back what the admission took.
            if isinstance(result, Admission):
                self._runtime.limiter.release(result)
            return
        self._pending = None
        if result is None:
            if isinstance(error, ProxyError):
                # A backend configured to refuse when it cannot decide (fail_closed).
                self._cb.send_error(error)
                return
            # A backend that fails must not fail the request (the backend logs and counts
            # its own failures): the request goes on.
            self._cb.continue_decoding()
            return
        if isinstance(result, Rejection):
            self._reject(result)
            return
        self._admission = result
        self._cb.continue_decoding()

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        # While the limiter's answer is pending the body waits here.
        return DataStatus.STOP_AND_BUFFER if self._pending is not None else DataStatus.CONTINUE

    def on_destroy(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        admission = self._admission
        if admission is None:
            return
        self._admission = None
        limiter = self._runtime.limiter
        info = self._cb.info
        if info.input_tokens >= 0:
            limiter.record_usage(
                admission,
                info.input_tokens,
                max(info.output_tokens, 0),
                self._wall(),
                max(info.cached_tokens, 0),
            )
        limiter.release(admission)
