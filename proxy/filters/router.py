"""The terminal filter: decides the route, sends the request to a candidate, relays the answer.

How this works: header iteration reaches the router only once the body filter holds the whole
body (proxy routes are JSON). The router reads the routing facts, runs the scenario rules and
the custom router (proxy/routing/decide.py) and gets the route's candidates, choice first,
fallbacks after. Each attempt plans the exchange for its candidate (translation and
transformers when dialects differ, proxy/dialects/pipeline.py), rebuilds the headers
(hop-by-hop and client credentials removed, the deployment's key injected) and starts an
upstream exchange.

Fallback: while nothing has reached the client, a failed attempt — connect failure, reset,
timeout before the response headers, or a status in FALLBACK_STATUSES — moves to the next
candidate (translating again if it speaks the other dialect). The response head is held until
the first body bytes, so the client never sees a failed attempt. Once bytes went out, a failure
ends the stream in-band in the client's dialect.

Response bytes are relayed as they arrive — never buffered whole in passthrough — and the
upstream is paused while the client cannot keep up. Two deadlines guard each attempt: time to
the response headers and, once streaming, time without a byte. The worker's shared
DeadlineSweeper checks them against a progress counter, so the per-chunk path only bumps it.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from proxy.dialects.errors import kind_for_status
from proxy.dialects.pipeline import ExchangePlan, ResponseTranslator, plan_exchange
from proxy.dialects.tokens import count_tokens
from proxy.dialects.usage import UsageTap
from proxy.errors import (
    BadRequestError,
    NoHealthyUpstreamError,
    ProxyError,
    UpstreamAuthError,
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamOverflowError,
    UpstreamTimeoutError,
)
from proxy.filters.api import DataStatus, Dialect, FilterCallbacks, HeadersStatus
from proxy.filters.hedge import HedgeLeg, hedge_delay
from proxy.filters.passthrough import PassthroughCheck
from proxy.filters.stream_start import (
    MAX_HELD_WINDOW_BYTES,
    MAX_HOLD_S,
    STREAM_CONTENT,
    STREAM_ERROR,
    stream_verdict,
)
from proxy.headers import HOP_BY_HOP, Headers
from proxy.http.deadlines import DeadlineSweeper
from proxy.http.info import AttemptRecord
from proxy.resilience.breaker import Ticket
from proxy.resilience.outcome import OUTCOME_NAMES, Outcome
from proxy.resilience.resources import ClusterResources
from proxy.resilience.retry import reset_hint
from proxy.routing.decide import Decider, Decision, RouteFacts, custom_answer, log
from proxy.routing.runtime import RuntimeConfig
from proxy.routing.scenarios import ScenarioDecision
from proxy.routing.sessions import SessionUsage
from proxy.routing.types import Candidate, Provider, Selection, Timeouts
from proxy.upstream.api import Exchange, ResponseHandler, UpstreamClient

# Request headers that never reach a provider: credentials of the client (the provider's own
# key is injected), framing we recompute, and Junction's own control headers.
_DROP_REQUEST = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-api-key",
    b"authorization",
    b"proxy-authorization",
}
_INTERNAL_PREFIX = b"x-junction-"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
ROUTE_HEADER = b"x-junction-route"

# Statuses after which the next candidate is tried (before anything reached the client):
# rate limited, and the provider's own failures. A client error (400, 404, ...) is the
# request's fault and would fail the same way elsewhere.
FALLBACK_STATUSES: Final = frozenset({429, 500, 502, 503, 504, 529})
PROVIDER_AUTH_STATUSES: Final = frozenset({401, 403})  # the provider refused Junction's key
MAX_DISCARDED_BODY_BYTES: Final = 256 * 1024  # a failed attempt's body read before moving on


class RouterFilter:
    __slots__ = (
        "_activity_s",
        "_attempts",
        "_body",
        "_body_dirty",
        "_cand",
        "_cb",
        "_check",
        "_client",
        "_clock",
        "_cluster",
        "_cluster_retry",
        "_counted",
        "_custom_task",
        "_deadline_s",
        "_decider",
        "_decision",
        "_discard",
        "_discarded",
        "_done",
        "_exchange",
        "_first_byte_s",
        "_got_headers",
        "_has_retry_token",
        "_head",
        "_head_pending",
        "_hedge",
        "_hedge_after",
        "_hedged",
        "_held",
        "_held_bytes",
        "_held_since",
        "_hint_s",
        "_idle_s",
        "_index",
        "_paused",
        "_pending",
        "_progress",
        "_retries",
        "_retry_timer",
        "_runtime",
        "_seen_progress",
        "_sessions",
        "_sse",
        "_started_s",
        "_status",
        "_sweeper",
        "_ticket",
        "_translator",
        "_ttfb_s",
        "_usage",
        "_wall",
        "_watched",
        "_window",
    )

    def __init__(
        self,
        runtime: RuntimeConfig,
        client: UpstreamClient,
        sweeper: DeadlineSweeper,
        clock: Callable[[], float],
        sessions: SessionUsage,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._runtime = runtime
        self._client = client
        self._sweeper = sweeper
        self._clock = clock
        self._sessions = sessions
        self._wall = wall
        self._decider: Decider | None = None
        self._decision: Decision | None = None
        self._pending: tuple[RouteFacts, ScenarioDecision] | None = None
        self._custom_task: asyncio.Future[Any] | None = None
        self._body: bytes | None = None  # the whole request body, once it arrived
        self._body_dirty = False  # the parsed body changed (subagent tag removed)
        self._index = 0
        self._attempts = 0
        self._cand: Candidate | None = None
        self._ticket: Ticket | None = None
        self._counted = False  # counted in the retry budget's requests in flight
        self._has_retry_token = False
        self._retries = 0  # retries of the same candidate (fallbacks not included)
        self._hint_s: float | None = None  # the provider's "come back in" of the last failure
        self._retry_timer: asyncio.TimerHandle | None = None
        self._usage: UsageTap | None = None  # passthrough only; a translator has its own
        self._held: list[bytes] | None = None  # client bytes held until the stream's content
        self._held_bytes = 0
        self._held_since = 0.0
        self._window = b""  # the provider's first bytes, read for content or an error
        self._ttfb_s = 0.0
        self._cluster: ClusterResources | None = None  # the provider's limits, while counted
        self._cluster_retry = False
        self._check: PassthroughCheck | None = None  # passthrough 2xx: proxy/filters/passthrough
        self._hedge: HedgeLeg | None = None  # a hedged second attempt still racing
        self._hedge_after = 0.0  # this attempt's hedge delay (route.hedge); 0: none
        self._hedged = False  # one hedge per request
        self._first_byte_s = 0.0  # this attempt's deadlines (route, provider, upstream section)
        self._idle_s = 0.0
        self._deadline_s = 0.0  # the whole request's end (clock time); 0: none
        self._exchange: Exchange | None = None
        self._translator: ResponseTranslator | None = None
        self._watched = False
        self._head: tuple[int, Headers] | None = None
        self._head_pending = False
        self._discard = False
        self._discarded = 0
        self._progress = 0
        self._seen_progress = 0
        self._activity_s = 0.0
        self._started_s = 0.0
        self._status = 0
        self._got_headers = False
        self._sse = False  # the provider answered 2xx with an event stream
        self._paused = False
        self._done = False

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    # -- request ---------------------------------------------------------------------------

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        req = self._cb.request
        body = req.body_json
        try:
            if not isinstance(body, dict):
                raise BadRequestError("request body must be a JSON object")
            decider = self._decider = Decider(self._runtime, self._sessions, self._clock)
            size = self._cb.info.bytes_received
            facts, rules = decider.prepare(body, req.headers, req.dialect, size)
            self._body_dirty = rules.body_changed
            if self._runtime.custom is not None and self._runtime.custom_async:
                self._ask_async(facts, rules)
            else:
                custom = decider.ask_custom(facts)
                self._decision = decider.decide(
                    facts, rules, custom, body=body, healthy=self._healthy()
                )
        except ProxyError as exc:
            if isinstance(exc, NoHealthyUpstreamError):
                exc.retry_after_s = self._runtime.health.recovery_s(exc.candidates, self._clock())
            self._fail_early(exc)
            return HeadersStatus.STOP
        if end_stream:
            self._body = b""
            self._maybe_start()
        return HeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        if self._done or self._body is not None:
            return DataStatus.STOP_NO_BUFFER
        if not end_stream:
            return DataStatus.STOP_AND_BUFFER  # the body filter normally gathers it first
        self._body = data
        self._maybe_start()
        return DataStatus.CONTINUE

    def _healthy(self) -> Callable[[Candidate], bool]:
        return self._runtime.health.checker(self._clock())

    def _fail_early(self, exc: ProxyError) -> None:
        self._done = True
        self._cb.send_error(exc)

    def _ask_async(self, facts: RouteFacts, rules: ScenarioDecision) -> None:
        """An ``async def`` custom router, awaited within its budget."""
        custom = self._runtime.custom
        assert custom is not None
        self._pending = (facts, rules)
        self._custom_task = asyncio.ensure_future(
            asyncio.wait_for(custom(facts), self._runtime.custom_budget_s)
        )
        self._custom_task.add_done_callback(self._custom_done)

    def _custom_done(self, task: asyncio.Future[Any]) -> None:
        self._custom_task = None
        if self._done or self._pending is None or self._decider is None:
            return
        facts, rules = self._pending
        self._pending = None
        answer: str | None = None
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, TimeoutError):
            log.warning(
                "router.custom gave no answer within %.1f ms; the rules decide",
                self._runtime.custom_budget_s * 1000,
                extra={"request_id": self._cb.info.request_id},
            )
        elif exc is not None:
            log.warning(
                "router.custom raised %s: %s; the rules decide",
                type(exc).__name__,
                exc,
                extra={"request_id": self._cb.info.request_id},
            )
        else:
            answer = custom_answer(task.result())
        try:
            body = self._cb.request.body_json
            self._decision = self._decider.decide(
                facts,
                rules,
                answer,
                body=body if isinstance(body, dict) else None,
                healthy=self._healthy(),
            )
        except ProxyError as error:
            self._fail_early(error)
            return
        self._maybe_start()

    def _maybe_start(self) -> None:
        decision = self._decision
        if decision is None or self._body is None or self._done:
            return
        req = self._cb.request
        info = self._cb.info
        info.route = decision.route.name
        info.scenario = decision.scenario
        info.session_id = decision.facts.session_id or ""
        first = decision.selection.ordered[0]
        if req.route_path == COUNT_TOKENS_PATH and first.provider.dialect is not Dialect.ANTHROPIC:
            # Only Anthropic-dialect providers count tokens; for the others Junction does.
            self._done = True
            info.upstream_provider = first.provider.name
            info.upstream_model = first.model
            count = orjson.dumps({"input_tokens": count_tokens(req.body_json, req.dialect)})
            self._cb.send_response(200, [(b"content-type", b"application/json")], count)
            return
        health = self._runtime.health
        if health.cooling:
            ordered = decision.selection.ordered
            ready = health.prefer_ready(ordered, self._clock())
            if ready is not ordered:
                decision.selection = Selection(ready, decision.selection.rejected)
        total = _total_timeout(
            decision.route.timeouts,
            decision.selection.ordered[0].provider.timeouts,
            self._runtime.total_timeout_s,
        )
        if total is not None:
            self._deadline_s = self._clock() + total
        self._cb.set_watermark_listener(self)
        self._runtime.retry_budget.active_requests += 1
        self._counted = True
        self._attempt(0)

    # -- attempts --------------------------------------------------------------------------

    def _attempt(self, index: int) -> None:
        decision = self._decision
        assert decision is not None and self._body is not None
        cand = decision.selection.ordered[index]
        if self._deadline_s and self._clock() >= self._deadline_s:
            self._finish_failed(UpstreamTimeoutError("the request's total timeout passed"))
            return
        self._index = index
        self._cand = cand
        self._attempts += 1
        provider = cand.provider
        deployment = cand.deployment
        req = self._cb.request
        info = self._cb.info
        info.attempts = self._attempts
        info.upstream_provider = provider.name
        info.upstream_model = cand.model
        info.upstream_host = deployment.origin.host
        info.upstream_deployment = deployment.name
        # Reset what the previous attempt left.
        self._got_headers = False
        self._head = None
        self._head_pending = False
        self._discard = False
        self._discarded = 0
        self._translator = None
        self._usage = None
        self._check = None
        self._held = None
        self._held_bytes = 0
        self._window = b""
        try:
            plan = self._plan(cand)
        except ProxyError as exc:
            self._finish_failed(exc)
            return
        now = self._clock()
        cluster = None
        again = self._attempts > 1  # a retry or a fallback
        if provider.limited:
            cluster = self._runtime.resources.get(provider.name)
            if cluster is not None and not cluster.try_acquire(again):
                self._overflowed(cand, cluster, again)
                return
        ticket = self._runtime.health.on_start(cand, now)
        if ticket is None:
            # Its breaker opened (or a half-open probe is already out) since the decision.
            if cluster is not None:
                cluster.release(again)
            self._cand = None
            self._attempts -= 1
            nxt = self._next_index()
            if nxt is not None:
                self._attempt(nxt)
            else:
                error = NoHealthyUpstreamError(
                    f"{cand.ref} via {deployment.name}: breaker open", candidates=(cand,)
                )
                error.retry_after_s = self._runtime.health.recovery_s(error.candidates, now)
                self._finish_failed(error)
            return
        self._ticket = ticket
        self._cluster = cluster
        self._cluster_retry = again
        self._ttfb_s = 0.0
        self._first_byte_s, self._idle_s = self._limits(decision, provider)
        self._hedge_after = 0.0
        if decision.route.hedge is not None and not self._hedged and _streams(req.body_json):
            stats = self._runtime.selector.stats(cand)
            self._hedge_after = hedge_delay(decision.route.hedge, stats)
        self._translator = plan.response
        self._started_s = self._activity_s = now
        try:
            self._exchange = self._send(cand, plan, self)
        except UpstreamError as exc:
            self._attempt_failed(_without_origin(exc, cand))
            return
        if not self._watched:
            self._watched = True
            self._sweeper.watch(self)

    def _send(self, cand: Candidate, plan: ExchangePlan, handler: ResponseHandler) -> Exchange:
        """Send ``plan`` to ``cand``'s deployment, its answer to ``handler`` (this filter, or a
        hedge leg). Raises UpstreamError when it cannot even start."""
        req = self._cb.request
        deployment = cand.deployment
        headers = _upstream_headers(req.headers, deployment.auth_header, len(plan.body), plan)
        trace = self._cb.info.trace
        if trace is not None:
            trace.stamp(headers)  # this attempt's span as the provider's parent
        self._runtime.selector.on_start(cand)
        return self._client.request(
            deployment.origin,
            req.method,
            deployment.path_prefix + plan.path,
            headers,
            handler,
            end_stream=True,
            body=plan.body,
            urgent=_streams(req.body_json),
        )

    def _plan(self, cand: Candidate) -> ExchangePlan:
        """The provider's request for ``cand`` (raises ProxyError when it cannot be made)."""
        req = self._cb.request
        provider = cand.provider
        chain = provider.chain_for(cand.model)
        return plan_exchange(
            client=req.dialect,
            provider=provider.dialect,
            provider_name=provider.name,
            path=req.path,
            body_json=req.body_json,
            raw_body=self._body if not self._body_dirty else None,
            model=cand.model,
            chain=chain,
            # Ids are only needed for a translated or transformed answer: no urandom call on
            # plain passthrough.
            id_hex=(
                secrets.token_hex(12)
                if chain is not None or req.dialect is not provider.dialect
                else ""
            ),
            now_unix=int(self._wall()),
        )

    def _limits(self, decision: Decision, provider: Provider) -> tuple[float, float]:
        """(first byte, stream idle) limits of an attempt on ``provider``."""
        rt = self._runtime
        route_t = decision.route.timeouts
        if route_t is None and provider.timeouts is None:
            return rt.response_header_timeout_s, rt.stream_idle_timeout_s
        return _attempt_timeouts(
            route_t, provider.timeouts, rt.response_header_timeout_s, rt.stream_idle_timeout_s
        )

    # -- hedging (proxy/filters/hedge.py) ---------------------------------------------------

    def _launch_hedge(self) -> None:
        """The first byte is late: the same request to the next candidate too."""
        decision = self._decision
        nxt = self._next_index()
        if decision is None or nxt is None or not self._take_retry_token():
            return
        cand = decision.selection.ordered[nxt]
        provider = cand.provider
        try:
            plan = self._plan(cand)
        except ProxyError:
            return  # it could not be sent there anyway; the primary carries on
        now = self._clock()
        cluster = None
        if provider.limited:
            cluster = self._runtime.resources.get(provider.name)
            if cluster is not None and not cluster.try_acquire(True):
                return
        ticket = self._runtime.health.on_start(cand, now)
        if ticket is None:
            if cluster is not None:
                cluster.release(True)
            return
        limits = self._limits(decision, provider)
        leg = HedgeLeg(self, nxt, cand, ticket, cluster, plan.response, now, limits)
        self._hedged = True
        self._attempts += 1
        self._cb.info.attempts = self._attempts
        try:
            leg.exchange = self._send(cand, plan, leg)
        except UpstreamError as exc:
            self.hedge_failed(leg, _without_origin(exc, cand))
            return
        self._hedge = leg

    def adopt_hedge(self, leg: HedgeLeg) -> None:
        """The leg answered first, or the primary failed before answering: the leg becomes
        the request's attempt and the primary (if still running) is cancelled."""
        if self._exchange is not None:
            self._exchange.cancel()
            self._exchange = None
        if self._cand is not None:
            if self._ticket is not None:
                self._close_attempt(self._ticket, Outcome.ABANDONED, 0)
            self._runtime.selector.on_end(self._cand, True)  # lost a race: not a failure
        self._hedge = None
        leg.adopted = True
        cand = leg.cand
        self._index = leg.index
        self._cand = cand
        self._ticket = leg.ticket
        self._cluster, leg.cluster = leg.cluster, None
        self._cluster_retry = True
        self._translator = leg.translator
        self._started_s = self._activity_s = leg.started_s
        self._first_byte_s, self._idle_s = leg.first_byte_s, leg.idle_s
        self._ttfb_s = 0.0
        self._hedge_after = 0.0
        self._exchange = leg.exchange
        self._got_headers = False
        self._head = None
        self._head_pending = False
        self._discard = False
        self._discarded = 0
        self._usage = None
        self._check = None
        self._held = None
        self._held_bytes = 0
        self._window = b""
        info = self._cb.info
        info.upstream_provider = cand.provider.name
        info.upstream_model = cand.model
        info.upstream_host = cand.deployment.origin.host
        info.upstream_deployment = cand.deployment.name

    def hedge_failed(self, leg: HedgeLeg, error: UpstreamError) -> None:
        """The leg failed before answering: dropped, the primary carries on."""
        if self._hedge is leg:
            self._hedge = None
        leg.exchange = None
        self._close_leg(leg, self._runtime.health.outcome(None, error, 0.0))

    def _drop_hedge(self) -> None:
        """The primary answered first (or the request ended): cancel the leg."""
        leg = self._hedge
        if leg is None:
            return
        self._hedge = None
        if leg.exchange is not None:
            leg.exchange.cancel()
            leg.exchange = None
        self._close_leg(leg, Outcome.ABANDONED)

    def _close_leg(self, leg: HedgeLeg, outcome: Outcome) -> None:
        if leg.cluster is not None:
            leg.cluster.release(True)
            leg.cluster = None
        self._record_try(leg.cand, leg.ticket, outcome, leg.started_s, 0, 0.0)
        self._runtime.selector.on_end(leg.cand, not outcome.failure)

    def _next_index(self) -> int | None:
        decision = self._decision
        assert decision is not None
        nxt = self._index + 1
        if nxt < len(decision.selection.ordered) and self._attempts < decision.max_attempts:
            return nxt
        return None

    def _retry_delay(self) -> float | None:
        """Seconds before the last candidate may be tried again, or None."""
        assert self._decision is not None
        if self._attempts >= self._decision.max_attempts:
            return None
        rt = self._runtime
        delay = rt.retry.delay(self._retries + 1, self._hint_s, rt.rng)
        if delay is not None and self._deadline_s and self._clock() + delay >= self._deadline_s:
            return None  # the request's total timeout would pass before the retry
        return delay

    def _take_retry_token(self) -> bool:
        """A place in the worker's retry budget, held until the request ends."""
        if not self._has_retry_token:
            self._has_retry_token = self._runtime.retry_budget.try_acquire()
            if not self._has_retry_token:
                self._cb.info.add_flag("RB")  # retry budget exhausted
        return self._has_retry_token

    def _can_try_again(self) -> bool:
        """Whether a failure now would lead to another attempt (peeks; takes nothing)."""
        if self._next_index() is None and self._retry_delay() is None:
            return False
        if self._has_retry_token:
            return True
        budget = self._runtime.retry_budget
        if budget.has_room():
            return True
        budget.refused += 1
        self._cb.info.add_flag("RB")  # retry budget exhausted
        return False

    def _overflowed(self, cand: Candidate, cluster: ClusterResources, again: bool) -> None:
        """The provider's resource limits refuse another attempt now: the next candidate,
        or a 503 (flag UO) when none is left."""
        self._cand = None
        self._attempts -= 1
        nxt = self._next_index()
        if nxt is not None:
            self._attempt(nxt)
            return
        full = cluster.max_requests is not None and cluster.active_requests >= cluster.max_requests
        what = "requests" if full or not again else "retries and fallbacks"
        self._finish_failed(
            UpstreamOverflowError(
                f"{cand.provider.name}: too many {what} in flight"
                " (providers[].resources); try again shortly"
            )
        )

    def _cool_down(self, cand: Candidate) -> None:
        """A 429: the candidate goes last in later requests until the provider's reset."""
        cfg = self._runtime.health.config.retry
        wait = self._hint_s if self._hint_s is not None else cfg.cooldown_default_s
        if wait > 0:
            self._runtime.health.cool_down(cand, self._clock() + min(wait, cfg.cooldown_max_s))

    def _auth_error(self) -> UpstreamAuthError:
        cand = self._cand
        where = f"{cand.provider.name} ({cand.deployment.name})" if cand else "the provider"
        log.warning(
            "%s refused the API key Junction sends it (HTTP %d): check its api_key",
            where,
            self._status,
        )
        return UpstreamAuthError(
            f"{where} refused Junction's credentials for it (HTTP {self._status});"
            " the gateway's operator must fix its provider key"
        )

    def _retry_same(self) -> None:
        self._retry_timer = None
        if not self._done:
            self._attempt(self._index)

    def _report(self, status: int | None, error: ProxyError | None) -> None:
        """Tell the health book how the attempt ended (once per attempt)."""
        ticket = self._ticket
        if ticket is None or self._cand is None:
            return
        outcome = self._runtime.health.outcome(status, error, self._ttfb_s)
        self._close_attempt(ticket, outcome, status or 0)

    def _close_attempt(self, ticket: Ticket, outcome: Outcome, status: int) -> None:
        """The health book and the stream's attempt list learn how the attempt ended."""
        cand = self._cand
        assert cand is not None
        self._ticket = None
        cluster = self._cluster
        if cluster is not None:
            self._cluster = None
            cluster.release(self._cluster_retry)
        self._record_try(cand, ticket, outcome, self._started_s, status, self._ttfb_s)

    def _record_try(
        self,
        cand: Candidate,
        ticket: Ticket,
        outcome: Outcome,
        started_s: float,
        status: int,
        ttfb_s: float,
    ) -> None:
        """The health book and the stream's attempt list learn how an attempt ended."""
        now = self._clock()
        self._runtime.health.on_result(cand, ticket, outcome, now)
        self._cb.info.tries.append(
            AttemptRecord(
                started_s,
                now,
                cand.provider.name,
                cand.deployment.name,
                cand.model,
                cand.key,
                status,
                OUTCOME_NAMES[outcome],
                ttfb_s,
            )
        )

    def _attempt_failed(self, error: ProxyError) -> None:
        """The attempt failed before anything reached the client: the next candidate, or
        the error."""
        self._exchange = None
        if self._cand is not None:
            self._report(self._status if self._got_headers else None, error)
            self._runtime.selector.on_end(self._cand, False)
            self._cand = None
        if self._done:
            return
        if self._hedge is not None:
            self.adopt_hedge(self._hedge)  # the fallback is already under way
            return
        nxt = self._next_index()
        if nxt is not None:
            if self._take_retry_token():
                self._cb.info.add_flag("FB")  # fell back to another candidate
                self._hint_s = None
                self._attempt(nxt)
                return
        elif not isinstance(error, UpstreamAuthError):  # the same key would fail again
            delay = self._retry_delay()
            if delay is not None and self._take_retry_token():
                self._cb.info.add_flag("RT")  # retried the same candidate
                self._retries += 1
                self._hint_s = None
                self._retry_timer = asyncio.get_running_loop().call_later(delay, self._retry_same)
                return
        self._finish_failed(error)

    def _finish_failed(self, error: ProxyError) -> None:
        self._done = True
        self._drop_hedge()
        self._unwatch()
        self._head = None
        self._head_pending = False
        self._cb.send_error(error)

    # -- response (ResponseHandler) ---------------------------------------------------------

    def on_upstream_headers(self, status: int, headers: Headers) -> None:
        # Held until the first body bytes (or the end): the head then leaves in the same write,
        # and a failure before any body byte can still fall back or get a clean local reply.
        self._got_headers = True
        self._status = status
        self._progress += 1
        cand = self._cand
        sse = any(k == b"content-type" and v.find(b"event-stream") >= 0 for k, v in headers)
        self._sse = sse and status < 300
        if cand is not None:
            ttfb = self._clock() - self._started_s
            self._runtime.selector.on_first_byte(cand, ttfb)
            # A whole (non-streamed) answer's headers come after the whole generation: that
            # is no sign of a slow provider.
            self._ttfb_s = ttfb if sse else 0.0
        if status in PROVIDER_AUTH_STATUSES:
            # Junction's key for this provider is bad: read the body out and answer a 502
            # (or fall back) rather than pass on an error that blames the client's key.
            self._discard = True
            return
        if status in FALLBACK_STATUSES:
            self._hint_s = reset_hint(headers, self._wall())
            if status == 429 and cand is not None:
                self._cool_down(cand)
            if self._can_try_again():
                self._discard = True  # read the small error body out, then move on
                return
        if self._hedge is not None:
            self._drop_hedge()  # this answer is the one the client gets
        self._head_pending = True
        if status < 300 and sse and self._can_try_again():
            # Providers give up inside a 200 stream too (an overloaded error after
            # message_start). Until the first real content the client has nothing to lose:
            # hold what arrives, and treat such an error like a 529.
            self._held = []
            self._window = b""
            self._held_since = self._clock()
        if self._translator is not None:
            self._translator.start(status, headers)
            return
        self._head = (status, [(k, v) for k, v in headers if k not in HOP_BY_HOP])
        if status < 300 and cand is not None:
            self._check = PassthroughCheck(cand.provider.dialect, sse)
        if status < 300 and (self._runtime.track_usage or self._runtime.limiter.active) and cand:
            # Token and spend limits need what the provider reports; without limits the
            # bytes pass untouched and unread.
            self._usage = UsageTap(cand.provider.dialect)
            self._usage.start(sse)

    def _release_head(self, end_stream: bool, body_len: int = -1) -> None:
        self._head_pending = False
        if self._translator is not None:
            status, headers = self._translator.head()
            if body_len >= 0:
                headers.append((b"content-length", b"%d" % body_len))
        else:
            assert self._head is not None
            status, headers = self._head
            self._head = None
        if self._cand is not None:
            headers.append((ROUTE_HEADER, self._cand.ref.encode("utf-8", "replace")))
        self._cb.info.response_started_s = self._clock()
        self._cb.encode_headers(status, headers, end_stream)

    def on_upstream_data(self, data: bytes) -> None:
        self._progress += 1
        if self._discard:
            self._discarded += len(data)
            if self._discarded > MAX_DISCARDED_BODY_BYTES:
                self._abandon_attempt(UpstreamError("failed attempt sent too large a body"))
            return
        verdict = STREAM_CONTENT
        if self._held is not None and self._cand is not None:
            self._window = (self._window + data)[-MAX_HELD_WINDOW_BYTES:]
            self._held_bytes += len(data)  # provider bytes read while holding
            verdict = stream_verdict(self._window, self._cand.provider.dialect)
            if verdict == STREAM_ERROR:
                self._held = None
                error = UpstreamError("provider gave up inside its stream", status=529)
                error.kind = "overloaded_error"
                self._report(529, None)
                self._abandon_attempt(error)
                return
        tr = self._translator
        if tr is not None:
            try:
                data = tr.feed(data)
            except ProxyError as exc:
                self._abandon(exc)
                return
        else:
            check = self._check
            if self._usage is not None and (check is None or check.stream or not check.checking):
                self._usage.feed(data)  # a checked whole answer is parsed once, at its end
            if check is not None:
                data = check.feed(data)
                if check.broken is not None:
                    self._passthrough_broken(check.broken, data)
                    return
        held = self._held
        if held is not None and tr is not None and tr.ended and verdict != STREAM_CONTENT:
            # The translator gave up on the provider's stream (not JSON, ...) before any
            # content: another candidate may do better, as after a 502.
            self._held = None
            self._report(None, UpstreamBadResponseError("provider stream broken"))
            self._abandon_attempt(UpstreamBadResponseError("provider sent a broken stream"))
            return
        if held is not None:
            if data:
                held.append(data)
            if verdict != STREAM_CONTENT and self._held_bytes < MAX_HELD_WINDOW_BYTES:
                return
            self._held = None
            data = b"".join(held)
        if not data:
            return
        if self._head_pending:
            self._release_head(False)
            if self._sse and self._exchange is not None:
                # The client gets the first content now; what follows may be read in
                # batches while the worker is overloaded (proxy/upstream/read_batch.py).
                self._exchange.allow_gathering()
        if tr is not None and tr.failed:
            # The translator closed the client's stream over a broken provider stream: stop
            # reading it rather than wait for its end (or the idle timeout).
            broken = UpstreamBadResponseError("provider sent a broken stream")
            self._done = True
            self._unwatch()
            if self._exchange is not None:
                self._exchange.cancel()
                self._exchange = None
            if self._cand is not None:
                self._report(self._status, broken)
                self._runtime.selector.on_end(self._cand, False)
                self._cand = None
            self._cb.info.add_flag(broken.flag)
            self._cb.encode_data(data, True)
            return
        writable = self._cb.encode_data(data, False)
        if not writable and not self._paused and not self._done:
            self._paused = True
            if self._exchange is not None:
                self._exchange.pause_reading()

    def _passthrough_broken(self, error: ProxyError, good: bytes) -> None:
        """A passthrough stream sent an event that is not JSON: the events before it go to
        the client, then the in-band error ends the stream. When nothing reached the client
        yet, another candidate may serve the request instead."""
        self._check = None
        if self._head_pending:
            self._held = None
            self._abandon_attempt(error)
            return
        self._flush_held()
        if good:
            self._cb.encode_data(good, False)
        self._abandon(error)

    def on_upstream_end(self) -> None:
        if self._discard:
            self._exchange = None
            self._report(self._status, None)  # the status says what failed, not an error
            if self._status in PROVIDER_AUTH_STATUSES:
                self._attempt_failed(self._auth_error())
                return
            error = UpstreamError(f"provider answered {self._status}", status=self._status)
            error.kind = kind_for_status(self._status)
            self._attempt_failed(error)
            return
        tail = b""
        parsed: Any = None
        check = self._check
        if check is not None:
            self._check = None
            tail, broken = check.end()
            if broken is not None:
                self._exchange = None
                self._held = None
                if self._head_pending:  # nothing reached the client: another may serve it
                    self._attempt_failed(broken)
                else:
                    self._abandon(broken)
                return
            parsed = check.obj
        self._done = True
        self._exchange = None
        self._unwatch()
        # The stream ended before any content: nothing to fall back from; send it.
        self._flush_held()
        tr = self._translator
        if self._cand is not None:
            status = self._status
            if tr is None or tr.streaming or status >= 300:
                self._report(status, None)
            # else: reported once the whole answer translated (a malformed one is a failure)
            self._runtime.selector.on_end(self._cand, status < 500 and status != 429)
        if tr is None:
            if self._usage is not None:
                if parsed is not None:
                    self._usage.observe(parsed)
                else:
                    self._usage.end()
            self._record_usage()
            if self._head_pending:
                self._release_head(not tail)
                if tail:
                    self._cb.encode_data(tail, True)
            else:
                self._cb.encode_data(tail, True)
            return
        try:
            tail = tr.end()
        except ProxyError as exc:
            self._report(self._status, exc)
            self._fail(exc)
            return
        self._report(self._status, None)
        self._record_usage()
        if self._head_pending:
            self._release_head(not tail, -1 if tr.streaming else len(tail))
            if tail:
                self._cb.encode_data(tail, True)
        else:
            self._cb.encode_data(tail, True)

    def _flush_held(self) -> None:
        """Send what was held back while waiting for the stream's first content."""
        held = self._held
        if held is None:
            return
        self._held = None
        if held:
            if self._head_pending:
                self._release_head(False)
            self._cb.encode_data(b"".join(held), False)

    def on_upstream_error(self, error: UpstreamError) -> None:
        self._exchange = None
        if self._cand is not None:
            error = _without_origin(error, self._cand)
        if self._committed():
            self._abandon(error)
        else:
            self._attempt_failed(error)

    def _committed(self) -> bool:
        """Whether bytes of this answer may have reached the client."""
        return self._got_headers and not self._discard and not self._head_pending

    def _abandon_attempt(self, error: ProxyError) -> None:
        if self._exchange is not None:
            self._exchange.cancel()
            self._exchange = None
        self._attempt_failed(error)

    def _abandon(self, error: ProxyError) -> None:
        """Stop the exchange and answer ``error``."""
        self._done = True
        self._unwatch()
        if self._exchange is not None:
            self._exchange.cancel()
            self._exchange = None
        if self._cand is not None:
            self._report(self._status if self._got_headers else None, error)
            self._runtime.selector.on_end(self._cand, False)
            self._cand = None
        self._fail(error)

    def _record_usage(self) -> None:
        """The provider's reported usage onto the stream's info, before the stream ends
        (the limit filter reads it when it is destroyed)."""
        tap = self._translator.usage if self._translator is not None else self._usage
        if tap is not None and tap.input_tokens >= 0:
            info = self._cb.info
            info.input_tokens = tap.input_tokens
            info.output_tokens = max(tap.output_tokens, 0)
            info.cached_tokens = tap.cached_tokens

    def _fail(self, error: ProxyError) -> None:
        self._record_usage()
        tr = self._translator
        if tr is not None and self._committed() and tr.streaming:
            # The client's stream began: the translator closes it in-band, in its grammar.
            self._cb.info.add_flag(error.flag)
            self._cb.encode_data(tr.fail(error.kind, error.message), True)
            return
        self._head = None
        self._head_pending = False
        self._cb.send_error(error)

    def on_upstream_writable(self) -> None:
        pass  # the whole body was handed over at once (it is bounded by max_body_bytes)

    # -- downstream flow control (WatermarkListener) -----------------------------------------

    def on_downstream_writable(self) -> None:
        if self._paused:
            self._paused = False
            if self._exchange is not None:
                self._exchange.resume_reading()

    # -- deadlines -------------------------------------------------------------------------

    def _unwatch(self) -> None:
        if self._watched:
            self._watched = False
            self._sweeper.unwatch(self)

    def check_deadline(self, now: float) -> None:
        if self._done or self._exchange is None:
            return
        if self._deadline_s and now >= self._deadline_s:
            # The whole request's limit holds however the bytes flow (a slow client too).
            self._abandon(UpstreamTimeoutError("the request's total timeout passed"))
            return
        if self._paused:
            # A slow client is not an upstream stall; the connection's own timers guard it.
            return
        if (
            self._hedge_after
            and not self._got_headers
            and now - self._started_s >= self._hedge_after
        ):
            self._hedge_after = 0.0
            self._launch_hedge()
        if self._held is not None and now - self._held_since >= MAX_HOLD_S:
            self._flush_held()  # no verdict in time: the client should not wait longer
        if self._progress != self._seen_progress:
            # Bytes moved since the last check: the per-chunk path only bumps a counter and
            # the time of progress is taken here, at tick resolution.
            self._seen_progress = self._progress
            self._activity_s = now
            return
        if self._got_headers:
            limit = self._idle_s
            what = "stream idle timeout"
        else:
            limit = self._first_byte_s
            what = "upstream response timeout"
        if now - self._activity_s < limit:
            return
        error = UpstreamTimeoutError(f"{what} after {limit:g}s")
        if self._committed():
            self._abandon(error)
        else:
            self._abandon_attempt(error)

    def on_destroy(self) -> None:
        self._unwatch()
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        budget = self._runtime.retry_budget
        if self._has_retry_token:
            self._has_retry_token = False
            budget.release()
        if self._counted:
            self._counted = False
            budget.active_requests = max(budget.active_requests - 1, 0)
        if self._custom_task is not None:
            self._custom_task.cancel()
            self._custom_task = None
        self._drop_hedge()
        if self._exchange is not None:
            self._exchange.cancel()
            self._exchange = None
        if self._cand is not None and not self._done:
            ticket = self._ticket
            if ticket is not None:
                status = self._status if self._got_headers else 0
                self._close_attempt(ticket, Outcome.ABANDONED, status)
            self._runtime.selector.on_end(self._cand, False)
        self._cand = None
        self._done = True


def _streams(body: Any) -> bool:
    return isinstance(body, dict) and body.get("stream") is True


def _total_timeout(
    route: Timeouts | None, provider: Timeouts | None, default: float | None
) -> float | None:
    if route is not None and route.total_s is not None:
        return route.total_s
    if provider is not None and provider.total_s is not None:
        return provider.total_s
    return default


def _attempt_timeouts(
    route: Timeouts | None, provider: Timeouts | None, first_byte_s: float, idle_s: float
) -> tuple[float, float]:
    """(first byte, stream idle) of one attempt: the route's, else the provider's, else the
    upstream section's."""
    for level in (provider, route):  # the route, applied last, wins
        if level is not None:
            if level.first_byte_s is not None:
                first_byte_s = level.first_byte_s
            if level.stream_idle_s is not None:
                idle_s = level.stream_idle_s
    return first_byte_s, idle_s


def _without_origin(error: UpstreamError, cand: Candidate) -> UpstreamError:
    """The error as the client may read it: the upstream layer names hosts and ports, which
    go to the log; the client learns the provider and deployment names of the config and
    nothing of the network behind it (hardening.md F1)."""
    origin = cand.deployment.origin
    text = error.message
    if origin.host not in text:
        return error
    where = f"{cand.provider.name}/{cand.deployment.name}"
    log.warning("%s: %s", where, text)
    public = copy.copy(error)
    public.message = text.replace(f"{origin.host}:{origin.port}", where).replace(origin.host, where)
    public.args = (public.message,)
    return public


def _upstream_headers(
    headers: Headers, auth: tuple[bytes, bytes] | None, body_len: int, plan: ExchangePlan
) -> Headers:
    drop = _DROP_REQUEST
    out: Headers = []
    named: set[bytes] | None = None
    for h in headers:
        k = h[0]
        if k in drop:
            if k == b"connection":
                named = named or set()
                named.update(t.strip().lower() for t in h[1].split(b","))
            continue
        if k[:11] != _INTERNAL_PREFIX:
            out.append(h)
    if named or plan.drop_headers:
        # Headers the client named in Connection are hop-by-hop too. Credentials are dropped
        # anyway, so naming them cannot smuggle anything through.
        gone = (named or set()) | plan.drop_headers
        out = [h for h in out if h[0] not in gone]
    out.extend(plan.set_headers)
    if auth is not None:
        out.append(auth)  # validated when the config was loaded
    out.append((b"content-length", b"%d" % body_len))
    return out
