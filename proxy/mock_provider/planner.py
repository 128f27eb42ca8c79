"""Turns one request into a `Plan`: routing, auth, validation, failure injection, answers.

How this works: `Planner.plan` reads the few headers it needs in one pass, picks the dialect
from the path (and, for /v1/models, from the client's headers), then either builds an error
reply, a failure plan or the simulated answer. It is synchronous and touches no I/O; ids come
from a counter and failures from a seeded RNG, so one options set always behaves the same.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from proxy.mock_provider import anthropic, anthropic_checks, openai, openai_checks
from proxy.mock_provider.content import AnswerSpec, WordCache, compose, estimate_tokens
from proxy.mock_provider.options import (
    NO_OVERRIDES,
    FailMode,
    MockOptions,
    RequestOverrides,
    parse_overrides,
)
from proxy.mock_provider.plan import (
    GARBAGE,
    Ending,
    Headers,
    Kind,
    Plan,
    cut_short,
    delayed,
    events,
    fixed,
    paced,
)

JSON = b"application/json"
SSE = b"text/event-stream"
MODELS_CREATED_AT = "2025-01-01T00:00:00Z"
MODELS_CREATED = 1735689600
ROOT_BODY = b'{"status":"ok","service":"junction-mock-provider"}'
BODY_BLIND_FAULTS = frozenset({"status", "reset", "stall", "garbage"})
CACHE_MAX_BODY_BYTES = 16 * 1024  # larger requests are answered afresh each time
CACHE_MAX_ENTRIES = 512


@dataclass(frozen=True, slots=True)
class _Template:
    """A rendered non-streaming answer with a hole where the response id goes.

    The answer is a pure function of the request body, so an identical body gets the same
    bytes; only the id (and OpenAI's ``created`` second) must be fresh per response.
    """

    prefix: bytes
    suffix: bytes
    id_prefix: str
    created: int | None  # the second the OpenAI body was rendered in; None for Anthropic


class Planner:
    def __init__(self, options: MockOptions, clock: Callable[[], float] = time.time) -> None:
        self._options = options
        self._clock = clock
        self._default_fail = FailMode.parse(options.fail_mode)
        self._rng = random.Random(options.seed)
        self._words = WordCache()
        self._counter = 0
        self._model_crc: dict[str, int] = {}  # bounded below
        self._templates: dict[tuple[bytes, bytes], _Template] = {}  # bounded below
        self.failures_injected = 0

    def plan(self, method: bytes, target: bytes, headers: Headers, body: bytes) -> Plan:
        request_id = key = auth = hint = None
        mock: Headers | None = None
        for name, value in headers:
            if name == b"x-request-id":
                request_id = value
            elif name == b"x-api-key":
                key = value
                hint = True
            elif name == b"authorization":
                auth = value
            elif name == b"anthropic-version":
                hint = True
            elif name[:7] == b"x-mock-":
                (mock := mock or []).append((name, value))
        self._counter += 1
        if request_id is None:
            request_id = b"req_mock_%016x" % self._counter
        path = target.split(b"?", 1)[0]
        if path[:12] == b"/v1/messages":
            dialect = "anthropic"
        elif path[:10] == b"/v1/models":
            dialect = "anthropic" if hint else "openai"
        else:
            dialect = "openai"
        reply = _Reply(dialect, request_id, method == b"HEAD")
        overrides = NO_OVERRIDES
        if mock is not None:
            try:
                overrides = parse_overrides(mock)
            except ValueError as exc:
                return reply.error(400, str(exc))
        plan = self._route(method, path, key, auth, body, overrides, reply)
        latency_ms = overrides.latency_ms
        if latency_ms is None:
            latency_ms = self._options.latency_ms
        return delayed(plan, latency_ms / 1000.0)

    def _route(
        self,
        method: bytes,
        path: bytes,
        key: bytes | None,
        auth: bytes | None,
        body: bytes,
        overrides: RequestOverrides,
        reply: _Reply,
    ) -> Plan:
        if path == b"/":
            if method in (b"GET", b"HEAD"):
                return reply.ok(ROOT_BODY)
            return reply.error(405, "method not allowed")
        required = self._options.require_key
        if required is not None and not _key_matches(required.encode(), key, auth):
            return reply.error(401, None)
        if path == b"/v1/models" or path[:11] == b"/v1/models/":
            if method not in (b"GET", b"HEAD"):
                return reply.error(405, "method not allowed")
            return self._models(path[11:].decode("latin-1"), reply)
        if path not in (b"/v1/messages", b"/v1/messages/count_tokens", b"/v1/chat/completions"):
            return reply.error(404, f"Not found: {path.decode('latin-1')}")
        if method != b"POST":
            return reply.error(405, "method not allowed")
        forced = _forced(overrides)
        if forced is not None and forced.kind in BODY_BLIND_FAULTS:
            # these do not need the answer, so they apply whatever the body holds
            self.failures_injected += 1
            return self._failure(forced, Plan(Kind.STALL), reply, None)
        cache_key = None
        if (
            overrides is NO_OVERRIDES
            and self._options.fail_rate == 0.0
            and len(body) <= CACHE_MAX_BODY_BYTES
            and path != b"/v1/messages/count_tokens"
        ):
            cache_key = (path, body)
            found = self._templates.get(cache_key)
            if found is not None and (found.created in (None, int(self._clock()))):
                response_id = f"{found.id_prefix}{self._counter:016x}".encode()
                return reply.ok(found.prefix + response_id + found.suffix)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return reply.error(400, "There was an error parsing the body: invalid JSON")
        if not isinstance(parsed, dict):
            return reply.error(400, "The request body must be a JSON object")
        if path == b"/v1/messages/count_tokens":
            spec = anthropic.read_request(parsed, count_only=True)
            if isinstance(spec, str):
                return reply.error(400, spec)
            if self._strict(overrides):
                problem = anthropic_checks.check_anthropic(parsed, count_only=True)
                if problem is not None:
                    return reply.error(400, problem)
            normal = reply.ok(anthropic.count_tokens_body(estimate_tokens(len(body))))
            return self._maybe_fail(normal, overrides, reply, False)
        return self._generate(path, parsed, len(body), overrides, reply, cache_key)

    def _generate(
        self,
        path: bytes,
        body: dict[str, Any],
        body_len: int,
        overrides: RequestOverrides,
        reply: _Reply,
        cache_key: tuple[bytes, bytes] | None,
    ) -> Plan:
        is_anthropic = path == b"/v1/messages"
        spec: AnswerSpec | str = (
            anthropic.read_request(body, count_only=False)
            if is_anthropic
            else openai.read_request(body)
        )
        if isinstance(spec, str):
            return reply.error(400, spec)
        if self._strict(overrides):
            problem = (
                anthropic_checks.check_anthropic(body, count_only=False)
                if is_anthropic
                else openai_checks.check_openai(body)
            )
            if problem is not None:
                return reply.error(400, problem)
        if overrides.reasoning is not None:
            spec = replace(spec, thinking=overrides.reasoning)
        opts = self._options
        model: str = body["model"]
        crc = self._model_crc.get(model)
        if crc is None:
            if len(self._model_crc) > 4096:
                self._model_crc.clear()
            crc = self._model_crc[model] = zlib.crc32(model.encode())
        seed = (crc ^ (opts.seed * 0x9E3779B1) ^ (body_len * 0x85EBCA6B)) & 0xFFFFFFFF
        n_out = overrides.output_tokens
        answer = compose(
            spec,
            seed=seed,
            output_tokens=opts.output_tokens if n_out is None else n_out,
            body_len=body_len,
            words=self._words,
            tool_id_prefix="toolu_mock_" if is_anthropic else "call_mock_",
            text_with_tool=is_anthropic,
            tool_calls=overrides.tool_calls or 1,
            cached_tokens=overrides.cached_tokens or 0,
        )
        stream = body.get("stream") is True
        status = (
            overrides.status if overrides.status is not None and overrides.status < 400 else 200
        )
        if is_anthropic:
            message_id = f"msg_mock_{self._counter:016x}"
            if not stream:
                out = anthropic.message_body(answer, model, message_id)
                if cache_key is not None:
                    self._remember(cache_key, out, message_id, "msg_mock_", None)
                return self._maybe_fail(reply.ok(out, status), overrides, reply, True)
            pairs = anthropic.message_events(answer, model, message_id)
            in_band = anthropic.overloaded_event()
        else:
            completion_id = f"chatcmpl-mock{self._counter:016x}"
            created = int(self._clock())
            if not stream:
                out = openai.completion_body(answer, model, completion_id, created)
                if cache_key is not None:
                    self._remember(cache_key, out, completion_id, "chatcmpl-mock", created)
                return self._maybe_fail(reply.ok(out, status), overrides, reply, True)
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            interleave = overrides.interleave_tools is True
            pairs = openai.completion_events(
                answer, model, completion_id, created, usage, interleave
            )
            in_band = openai.overloaded_event()
        tps = overrides.tokens_per_s if overrides.tokens_per_s is not None else opts.tokens_per_s
        gap_ms = overrides.sse_gap_ms if overrides.sse_gap_ms is not None else opts.sse_gap_ms
        plan = events(status, reply.headers(SSE), tuple(p[0] for p in pairs))
        plan = paced(plan, tuple(p[1] for p in pairs), tps, gap_ms / 1000.0)
        return self._maybe_fail(plan, overrides, reply, True, in_band)

    def _strict(self, overrides: RequestOverrides) -> bool:
        return self._options.strict if overrides.strict is None else overrides.strict

    def _remember(
        self,
        key: tuple[bytes, bytes],
        body: bytes,
        response_id: str,
        id_prefix: str,
        created: int | None,
    ) -> None:
        parts = body.split(response_id.encode())
        if len(parts) != 2:  # the id also appears inside the answer: not worth a template
            return
        if len(self._templates) >= CACHE_MAX_ENTRIES:
            self._templates.clear()
        self._templates[key] = _Template(parts[0], parts[1], id_prefix, created)

    def _maybe_fail(
        self,
        normal: Plan,
        overrides: RequestOverrides,
        reply: _Reply,
        generation: bool,
        in_band: bytes | None = None,
    ) -> Plan:
        mode = _forced(overrides)
        rate = self._options.fail_rate
        if mode is None and generation and rate > 0.0 and self._rng.random() < rate:
            mode = self._default_fail
        if mode is None:
            return normal
        self.failures_injected += 1
        return self._failure(mode, normal, reply, in_band)

    def _failure(self, mode: FailMode, normal: Plan, reply: _Reply, in_band: bytes | None) -> Plan:
        kind = mode.kind
        if kind == "status":
            return reply.error(mode.status, None, self._options.retry_after_s)
        if kind == "reset":
            return Plan(Kind.RESET)
        if kind == "stall":
            return Plan(Kind.STALL)
        if kind == "garbage":
            return Plan(Kind.GARBAGE, chunks=(GARBAGE,))
        if kind == "reset-mid-stream":
            return cut_short(normal, Ending.RESET)
        if kind == "stall-mid-stream":
            return cut_short(normal, Ending.STALL)
        if kind == "bad-json":
            if normal.streaming:
                broken = b'event: message_start\ndata: {"type": "message_start", "mess\n\n'
                if reply.dialect == "openai":
                    broken = b'data: {"id": "chatcmpl-mock", "choices": [{"de\n\n'
                return events(200, reply.headers(SSE), (broken,))
            return fixed(200, reply.headers(JSON), b'{"id": "broken", "content": [{"ty')
        # overloaded-in-stream: a stream starts, then the provider gives up in band
        if normal.streaming and in_band is not None:
            return events(200, normal.headers or [], (normal.chunks[0], in_band))
        status = 529 if reply.dialect == "anthropic" else 503
        return reply.error(status, None, self._options.retry_after_s)

    def _models(self, wanted: str, reply: _Reply) -> Plan:
        models = self._options.models
        is_anthropic = reply.dialect == "anthropic"
        if wanted:
            if wanted not in models:
                return reply.error(404, f"model: {wanted}")
            if is_anthropic:
                return reply.ok(anthropic.model_body(wanted, MODELS_CREATED_AT))
            return reply.ok(openai.model_body(wanted, MODELS_CREATED))
        if is_anthropic:
            return reply.ok(anthropic.models_body(models, MODELS_CREATED_AT))
        return reply.ok(openai.models_body(models, MODELS_CREATED))


def _forced(overrides: RequestOverrides) -> FailMode | None:
    if overrides.fail is not None:
        return overrides.fail
    if overrides.status is not None and overrides.status >= 400:
        return FailMode("status", overrides.status)
    return None


def _key_matches(required: bytes, key: bytes | None, auth: bytes | None) -> bool:
    if key is not None and key == required:
        return True
    return auth is not None and auth[:7].lower() == b"bearer " and auth[7:].strip() == required


class _Reply:
    """Response headers and error bodies in the dialect of the endpoint."""

    __slots__ = ("dialect", "head", "request_id")

    def __init__(self, dialect: str, request_id: bytes, head: bool) -> None:
        self.dialect = dialect
        self.request_id = request_id
        self.head = head

    def headers(self, content_type: bytes) -> Headers:
        out = [(b"content-type", content_type), (b"x-request-id", self.request_id)]
        if self.dialect == "anthropic":
            out.append((b"request-id", self.request_id))
        if content_type == SSE:
            out.append((b"cache-control", b"no-cache"))
        return out

    def ok(self, body: bytes, status: int = 200) -> Plan:
        return fixed(status, self.headers(JSON), body, head=self.head)

    def error(self, status: int, message: str | None, retry_after_s: int | None = None) -> Plan:
        if self.dialect == "anthropic":
            body = anthropic.error_body(status, message, self.request_id.decode("latin-1"))
        else:
            body = openai.error_body(status, message)
        headers = self.headers(JSON)
        if retry_after_s is not None and status in (429, 503, 529):
            headers.append((b"retry-after", b"%d" % retry_after_s))
        if status == 401 and self.dialect == "openai":
            headers.append((b"www-authenticate", b'Bearer realm="mock"'))
        return fixed(status, headers, body, head=self.head)
