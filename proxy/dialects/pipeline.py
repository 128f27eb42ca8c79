"""What happens to one exchange when the client's and the provider's dialects differ.

How this works: `plan_exchange` runs once per request, after routing. It decides the
provider's path and body (translated, and rewritten by the provider's transformers) and returns
an `ExchangePlan`. When the plan needs no work on the response — same dialect, no transformers
— its ``response`` is None and the router forwards the provider's bytes untouched (DESIGN.md
rule 5). Otherwise ``response`` is a `ResponseTranslator`, a sans-I/O object the router feeds
with the provider's status, headers and body bytes; it returns the client's bytes as soon as
they exist, so a streamed answer is translated event by event, never buffered whole.

The translator works in one of three modes, decided by the provider's status and content type:

* ``error`` (status >= 400): the provider's error body is gathered (bounded), read in the
  provider's dialect and rendered in the client's, with the status the client's SDK expects
  (Anthropic 529 ⇄ OpenAI 503) and ``retry-after`` kept.
* ``sse`` (2xx ``text/event-stream``): SSE events are decoded incrementally, parsed, passed
  through the transformers' stream hooks and the stream translator, and re-encoded.
* ``json`` (any other 2xx): the body is gathered (bounded), translated whole at the end, and
  sent with a content length.

Nothing here touches a socket or reads a clock; ids and the Unix time are passed in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from proxy.dialects.errors import client_status, error_body
from proxy.dialects.sse import SSEDecoder, SSEEvent, encode_event
from proxy.dialects.transformers.api import JSONObject, TransformContext
from proxy.dialects.translate.a2o_request import (
    anthropic_to_openai_request,
    uses_max_completion_tokens,
)
from proxy.dialects.translate.a2o_response import anthropic_to_openai_response
from proxy.dialects.translate.a2o_stream import AnthropicToOpenAIStream, encode_openai_chunks
from proxy.dialects.translate.o2a_request import openai_to_anthropic_request
from proxy.dialects.translate.o2a_response import openai_to_anthropic_response
from proxy.dialects.translate.o2a_stream import OpenAIToAnthropicStream, encode_anthropic_events
from proxy.dialects.translate.provider_errors import read_provider_error
from proxy.dialects.usage import UsageTap
from proxy.errors import BadRequestError, UpstreamBadResponseError
from proxy.filters.api import Dialect
from proxy.headers import Headers

MAX_ERROR_BODY_BYTES = 64 * 1024  # a provider's error body beyond this is cut, not kept
MAX_JSON_RESPONSE_BYTES = 64 * 1024 * 1024  # a non-streamed answer larger than this is refused
ANTHROPIC_VERSION = b"2023-06-01"

MESSAGES_PATH = b"/v1/messages"
CHAT_PATH = b"/v1/chat/completions"

# Response headers that describe the provider's body, which a translated body no longer is.
_DROP_RESPONSE = frozenset(
    {b"content-length", b"content-type", b"content-encoding", b"transfer-encoding", b"etag"}
)
# Request headers that belong to the client's dialect only.
DIALECT_REQUEST_HEADERS: dict[Dialect, frozenset[bytes]] = {
    Dialect.ANTHROPIC: frozenset({b"anthropic-version", b"anthropic-beta"}),
    Dialect.OPENAI: frozenset({b"openai-organization", b"openai-project", b"openai-beta"}),
}


class Chain(Protocol):
    """What the plan needs from a provider's transformer chain."""

    def request(self, body: JSONObject, ctx: TransformContext) -> JSONObject: ...

    def response(self, body: JSONObject, ctx: TransformContext) -> JSONObject: ...

    def stream(self, obj: JSONObject, ctx: TransformContext) -> list[JSONObject]: ...

    def end(self, ctx: TransformContext) -> list[JSONObject]: ...


@dataclass(slots=True, init=False)
class ExchangePlan:
    path: bytes  # the provider's path and query, before the provider's path prefix
    body: bytes
    response: ResponseTranslator | None  # None: forward the provider's bytes as they are
    set_headers: Headers  # added to the upstream request (after the dialect's own are dropped)
    drop_headers: frozenset[bytes]

    def __init__(
        self,
        path: bytes,
        body: bytes,
        response: ResponseTranslator | None,
        set_headers: Headers,
        drop_headers: frozenset[bytes],
    ) -> None:
        self.path = path
        self.body = body
        self.response = response
        self.set_headers = set_headers
        self.drop_headers = drop_headers


def plan_exchange(
    *,
    client: Dialect,
    provider: Dialect,
    provider_name: str,
    path: bytes,
    body_json: Any,
    raw_body: bytes | None,
    model: str,
    chain: Chain | None,
    id_hex: str,
    now_unix: int,
) -> ExchangePlan:
    """Raises TranslationError (a 400 naming the field) for requests that cannot be carried.
    ``raw_body`` is the client's body as received, or None when the parsed body was changed
    (it is then encoded again). The parsed body is never modified: a fallback plans again
    from it."""
    if not isinstance(body_json, dict):
        raise BadRequestError("request body must be a JSON object")
    requested = body_json.get("model")
    client_model = requested if isinstance(requested, str) and requested else model
    model = model or client_model
    stream = body_json.get("stream") is True
    if client is provider and chain is None:
        if model and body_json.get("model") != model:
            body = orjson.dumps({**body_json, "model": model})
        elif raw_body is None:
            body = orjson.dumps(body_json)
        else:
            body = raw_body
        return ExchangePlan(path, body, None, [], frozenset())
    ctx = TransformContext(
        provider=provider_name,
        dialect=provider,
        model=model,
        client_dialect=client,
        stream=stream,
    )
    include_usage = False
    if client is provider:
        out = dict(body_json)
        out["model"] = model
        upstream_path = path
    elif provider is Dialect.OPENAI:
        out = anthropic_to_openai_request(body_json, model=model)
        upstream_path = CHAT_PATH
        if (
            "reasoning_effort" in out
            and not uses_max_completion_tokens(model)
            and "reasoning" not in _names(chain)
        ):
            # OpenAI rejects reasoning_effort on models that do not reason, and Claude Code
            # asks for thinking on every main turn. Other providers' flags are the
            # `reasoning` transformer's business, which sees the effort when configured.
            del out["reasoning_effort"]
    else:
        opts = body_json.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        out = openai_to_anthropic_request(body_json, model=model)
        upstream_path = MESSAGES_PATH
    if chain is not None:
        out = chain.request(out, ctx)
    set_headers: Headers = [(b"accept-encoding", b"identity")]
    if client is provider:
        # Same dialect, transformed body: the client's anthropic-version (and betas) still
        # describe the request, except for endpoints that reject betas they do not know.
        drop = frozenset({b"accept-encoding"})
        if "anthropiccompat" in _names(chain):
            drop = drop | {b"anthropic-beta"}
    else:
        drop = DIALECT_REQUEST_HEADERS[client] | {b"accept-encoding"}
    if provider is Dialect.ANTHROPIC and client is not provider:
        set_headers.append((b"anthropic-version", ANTHROPIC_VERSION))
    translator = ResponseTranslator(
        client=client,
        provider=provider,
        client_model=client_model,
        id_hex=id_hex,
        now_unix=now_unix,
        include_usage=include_usage,
        chain=chain,
        ctx=ctx,
    )
    return ExchangePlan(upstream_path, orjson.dumps(out), translator, set_headers, drop)


def _names(chain: Chain | None) -> set[str]:
    return {str(getattr(t, "name", "")) for t in getattr(chain, "transformers", ())}


class _Mode(enum.Enum):
    WAITING = 0
    ERROR = 1
    SSE = 2
    JSON = 3


class ResponseTranslator:
    """Provider response bytes in, client response bytes out (see the module docstring)."""

    __slots__ = (
        "_a2o",
        "_buffer",
        "_buffered",
        "_chain",
        "_chain_ended",
        "_client",
        "_client_model",
        "_completion_id",
        "_ctx",
        "_decoder",
        "_done_sent",
        "_ended",
        "_failed",
        "_headers",
        "_include_usage",
        "_message_id",
        "_mode",
        "_now_unix",
        "_o2a",
        "_provider",
        "_status",
        "usage",
    )

    def __init__(
        self,
        *,
        client: Dialect,
        provider: Dialect,
        client_model: str,
        id_hex: str,
        now_unix: int,
        include_usage: bool,
        chain: Chain | None,
        ctx: TransformContext,
    ) -> None:
        self._client = client
        self._provider = provider
        self._client_model = client_model
        self._message_id = "msg_" + id_hex
        self._completion_id = "chatcmpl-" + id_hex
        self._now_unix = now_unix
        self._include_usage = include_usage
        self._chain = chain
        self._ctx = ctx
        self._mode = _Mode.WAITING
        self._status = 0
        self._headers: Headers = []
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._decoder: SSEDecoder | None = None
        self._o2a: OpenAIToAnthropicStream | None = None
        self._a2o: AnthropicToOpenAIStream | None = None
        self._ended = False
        self._failed = False
        self._done_sent = False
        self._chain_ended = False
        self.usage = UsageTap(provider)  # what the provider reports, for limits and logs

    # -- head ------------------------------------------------------------------------------

    def start(self, status: int, headers: Headers) -> None:
        ctype = b""
        kept: Headers = []
        for k, v in headers:
            if k == b"content-type":
                ctype = v
            elif k not in _DROP_RESPONSE:
                kept.append((k, v))
        self._status = status
        self._headers = kept
        if status >= 400:
            self._mode = _Mode.ERROR
        elif ctype[:17].lower() == b"text/event-stream":
            self._mode = _Mode.SSE
            self._decoder = SSEDecoder()
            if self._client is Dialect.ANTHROPIC and self._provider is Dialect.OPENAI:
                self._o2a = OpenAIToAnthropicStream(self._client_model, self._message_id)
            elif self._client is Dialect.OPENAI and self._provider is Dialect.ANTHROPIC:
                self._a2o = AnthropicToOpenAIStream(
                    self._client_model,
                    self._completion_id,
                    self._now_unix,
                    include_usage=self._include_usage,
                )
        else:
            self._mode = _Mode.JSON

    def head(self) -> tuple[int, Headers]:
        """The client's status and headers. For the ``sse`` mode, valid once `start` ran; for
        the others, once `end` returned the body (the head then carries its length)."""
        headers = list(self._headers)
        if self._mode is _Mode.SSE:
            headers.append((b"content-type", b"text/event-stream; charset=utf-8"))
            headers.append((b"cache-control", b"no-cache"))
        else:
            headers.append((b"content-type", b"application/json"))
        return self._status, headers

    @property
    def streaming(self) -> bool:
        return self._mode is _Mode.SSE

    @property
    def failed(self) -> bool:
        """The translator closed the client's stream with its own error (a broken provider
        stream): nothing more will be read."""
        return self._failed

    @property
    def ended(self) -> bool:
        """The client's stream is finished (closed normally or with an in-band error)."""
        return self._ended

    # -- body ------------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Provider bytes in; client bytes that can be sent now out (may be empty)."""
        if self._ended or not data:
            return b""
        if self._mode is _Mode.SSE:
            assert self._decoder is not None
            return self._events(self._decoder.feed(data), eof=False)
        limit = MAX_ERROR_BODY_BYTES if self._mode is _Mode.ERROR else MAX_JSON_RESPONSE_BYTES
        room = limit - self._buffered
        if room <= 0:
            if self._mode is _Mode.JSON:
                raise UpstreamBadResponseError(
                    f"provider response larger than {MAX_JSON_RESPONSE_BYTES} bytes"
                )
            return b""
        chunk = data[:room]
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        return b""

    def end(self) -> bytes:
        """The provider's body ended. Returns the rest of the client's body. Raises
        UpstreamBadResponseError when a whole (non-streamed) answer cannot be translated."""
        if self._ended:
            return b""
        if self._mode is _Mode.SSE:
            assert self._decoder is not None
            return self._events(self._decoder.close(), eof=True)
        self._ended = True
        raw = b"".join(self._buffer)
        self._buffer.clear()
        if self._mode is _Mode.ERROR:
            return self._error_reply(raw)
        return self._json_reply(raw)

    def fail(self, kind: str, message: str) -> bytes:
        """The exchange broke after the client's stream began: close it in-band."""
        if self._ended:
            return b""
        self._ended = True
        self._failed = True
        if self._o2a is not None:
            return encode_anthropic_events(self._o2a.on_error(kind, message))
        if self._a2o is not None:
            return encode_openai_chunks(self._a2o.on_error(kind, message))
        body = error_body(self._client, kind, message)
        if self._client is Dialect.ANTHROPIC:
            return b"event: error\ndata: " + body + b"\n\n"
        return b"data: " + body + b"\n\n"

    # -- modes -----------------------------------------------------------------------------

    def _error_reply(self, raw: bytes) -> bytes:
        kind, message = read_provider_error(self._provider, self._status, raw)
        status = self._status
        if kind == "overloaded_error" and self._client is Dialect.ANTHROPIC:
            status = 529
        self._status = client_status(status, self._client)
        return error_body(self._client, kind, message)

    def _json_reply(self, raw: bytes) -> bytes:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamBadResponseError(
                f"provider sent a body that is not JSON: {exc}"
            ) from None
        if not isinstance(body, dict):
            raise UpstreamBadResponseError("provider sent a JSON body that is not an object")
        self.usage.observe(body)
        if self._chain is not None:
            body = self._chain.response(body, self._ctx)
        if self._client is Dialect.ANTHROPIC and self._provider is Dialect.OPENAI:
            body = openai_to_anthropic_response(
                body, model=self._client_model, message_id=self._message_id
            )
        elif self._client is Dialect.OPENAI and self._provider is Dialect.ANTHROPIC:
            body = anthropic_to_openai_response(
                body,
                model=self._client_model,
                created=self._now_unix,
                completion_id=self._completion_id,
            )
        return orjson.dumps(body)

    def _events(self, events: list[SSEEvent], *, eof: bool) -> bytes:
        out: list[bytes] = []
        for ev in events:
            if self._ended:
                break
            data = ev.data
            if data == b"[DONE]":
                self._on_done(out)
                continue
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                out.append(self.fail("api_error", "provider sent a stream event that is not JSON"))
                break
            if not isinstance(obj, dict):
                continue
            self.usage.observe(obj)
            if self._chain is None:
                self._one(ev.event, obj, out)
            else:
                for o in self._chain.stream(obj, self._ctx):
                    self._one(ev.event, o, out)
        if eof and not self._ended:
            self._end_chain(out)
            self._on_eof(out)
        return b"".join(out)

    def _one(self, event: str | None, obj: JSONObject, out: list[bytes]) -> None:
        if self._o2a is not None:
            out.append(self._o2a.encode_chunk(obj))
            if self._o2a.ended:
                self._ended = True
        elif self._a2o is not None:
            name = event or str(obj.get("type") or "")
            chunks = self._a2o.on_event(name, obj)
            out.append(encode_openai_chunks(chunks, done=self._take_done()))
            if self._a2o.ended:
                self._ended = True
        elif self._client is Dialect.ANTHROPIC:
            name = event or str(obj.get("type") or "message")
            out.append(encode_event(name, orjson.dumps(obj)))
        else:
            out.append(encode_event(None, orjson.dumps(obj)))

    def _take_done(self) -> bool:
        """True once, when the A->O stream finished: that is when ``[DONE]`` goes out."""
        if self._a2o is not None and self._a2o.done and not self._done_sent:
            self._done_sent = True
            return True
        return False

    def _end_chain(self, out: list[bytes]) -> None:
        """Whatever the transformers held back goes out before the stream's end."""
        if self._chain is not None and not self._chain_ended:
            self._chain_ended = True
            for o in self._chain.end(self._ctx):
                self._one(None, o, out)

    def _on_done(self, out: list[bytes]) -> None:
        self._end_chain(out)
        if self._ended:
            return
        if self._o2a is not None:
            out.append(encode_anthropic_events(self._o2a.on_done()))
            self._ended = True
        elif self._a2o is None and self._client is Dialect.OPENAI:
            # Same dialect through transformers: the marker passes on.
            out.append(b"data: [DONE]\n\n")
            self._ended = True

    def _on_eof(self, out: list[bytes]) -> None:
        self._ended = True
        if self._o2a is not None:
            out.append(encode_anthropic_events(self._o2a.on_eof()))
        elif self._a2o is not None:
            chunks = self._a2o.on_eof()
            out.append(encode_openai_chunks(chunks, done=self._take_done()))
