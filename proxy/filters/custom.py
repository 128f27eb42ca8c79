"""Custom filters: user classes named by import path in the config (``filters:``).

How this works: when the config loads, each class is imported, `filter_hooks` checks that it
has the hooks of a decoder filter, an encoder filter or both, and one instance is built with
its options to check them. `FilterSpec` is the resolved entry; per request its `make()` builds
a fresh instance (filters keep per-stream state, as in Envoy) inside a `CustomFilter`, which
the stream sees in place of the user's object. The proxy builds the chain
``JsonBodyFilter → custom filters in config order → RouterFilter``; a filter with encoder
hooks also runs on the response, in reverse config order.

`CustomFilter` forwards every hook and turns an exception in the user's code into an answer,
so a buggy filter costs its own request (at worst its connection), never the worker:

- construction and request hooks: a 500 ``api_error`` "filter <Name> failed" in the client's
  dialect (the exception text stays in the log, never reaches the client);
- response hooks: the provider's status is decided by then, so the stream ends the way a
  committed stream ends on a failure: an event stream with an in-band error event in the
  client's dialect, any other response with a reset (HTTP/2) or a closed connection
  (HTTP/1.1);
- ``on_destroy``: logged only, so the other filters still get theirs.

Each failure logs one line: filter, hook, exception and where it was raised. After a failure
the user's object gets no further hooks except ``on_destroy``. The wrapper always sits in the
decoder list (a filter with only encoder hooks passes the request through), so the stream's
teardown calls its ``on_destroy`` exactly once even when it is an encoder too.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from types import MappingProxyType
from typing import Any, Final, TypeVar

from proxy.dialects.errors import in_band_error_event
from proxy.errors import ProxyError
from proxy.filters.api import DataStatus, FilterCallbacks, HeadersStatus
from proxy.headers import Headers
from proxy.routing.table import RouteKind, match

log = logging.getLogger("junction.filters")

DECODER_HOOKS: Final = ("set_decoder_callbacks", "decode_headers", "decode_data")
ENCODER_HOOKS: Final = ("set_encoder_callbacks", "encode_headers", "encode_data")
# The paths a custom filter may be restricted to (the route table's proxy routes).
PROXY_PATHS: Final = ("/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions")
MAX_LOGGED_MESSAGE_CHARS: Final = 300  # of the exception's text, in the one log line

_S = TypeVar("_S", HeadersStatus, DataStatus)


class CustomFilterError(ProxyError):
    """A custom filter raised; the client sees only which filter failed."""

    status = 500
    kind = "api_error"

    def __init__(self, name: str) -> None:
        super().__init__(f"filter {name} failed")


def filter_hooks(cls: type[Any]) -> tuple[bool, bool]:
    """(decoder, encoder): the directions ``cls`` filters. Raises ValueError, with a message
    fit for a config error, when it has the hooks of neither or only part of one."""
    found = {
        hook for hook in (*DECODER_HOOKS, *ENCODER_HOOKS) if callable(getattr(cls, hook, None))
    }
    problems: list[str] = []
    directions: list[bool] = []
    for hooks in (DECODER_HOOKS, ENCODER_HOOKS):
        missing = [hook for hook in hooks if hook not in found]
        if len(missing) < len(hooks) and missing:
            problems.append(
                f"has {_names(h for h in hooks if h in found)} but no {_names(missing)}"
            )
        directions.append(not missing)
    if problems:
        raise ValueError(f"{cls.__qualname__} is not a complete filter: {'; '.join(problems)}")
    if not any(directions):
        raise ValueError(
            f"{cls.__qualname__} is not a filter: it needs {_names(DECODER_HOOKS)} "
            f"(request) and/or {_names(ENCODER_HOOKS)} (response)"
        )
    return directions[0], directions[1]


def route_problems(paths: Iterable[str]) -> list[tuple[int, str]]:
    """(index, message) for each entry of a filter's ``routes`` that is not a proxy path."""
    return [
        (index, f"not a proxy route (one of {', '.join(PROXY_PATHS)})")
        for index, path in enumerate(paths)
        if (route := match(path)) is None or route.kind is not RouteKind.PROXY
    ]


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """One ``filters:`` entry, resolved: the class, its options and where it applies."""

    name: str  # the class's name: in the client's error and the log line
    cls: type[Any]
    options: Mapping[str, Any]
    routes: frozenset[str] | None  # None: every proxy route
    decoder: bool  # runs on the request
    encoder: bool  # runs on the response

    @classmethod
    def build(
        cls, filter_cls: object, options: Mapping[str, Any], routes: Iterable[str] | None
    ) -> FilterSpec:
        """Raises ValueError when ``filter_cls`` is not a filter class."""
        if not isinstance(filter_cls, type):
            raise ValueError(f"not a class (got a {type(filter_cls).__name__})")
        decoder, encoder = filter_hooks(filter_cls)
        return cls(
            name=filter_cls.__qualname__,
            cls=filter_cls,
            options=MappingProxyType(dict(options)),
            routes=None if routes is None else frozenset(routes),
            decoder=decoder,
            encoder=encoder,
        )

    def applies_to(self, path: str) -> bool:
        return self.routes is None or path in self.routes

    def make(self) -> CustomFilter:
        return CustomFilter(self)


def _names(hooks: Iterable[str]) -> str:
    return "/".join(hooks)


class CustomFilter:
    """The stream's view of one user filter instance (see the module docstring)."""

    __slots__ = ("_cb", "_event_stream", "_fail_next_chunk", "_failed", "_inner", "_spec")

    def __init__(self, spec: FilterSpec) -> None:
        self._spec = spec
        self._cb: FilterCallbacks | None = None
        self._event_stream = False
        self._failed = False  # the user's code raised: no more hooks but on_destroy
        self._fail_next_chunk = False  # encode_headers raised on an event stream
        self._inner: Any = None
        try:
            self._inner = spec.cls(**spec.options)
        except Exception as exc:
            self._failed = True  # answered at decode_headers, once the stream runs
            _log_failure(spec.name, "__init__", exc)

    # -- request ------------------------------------------------------------------------------

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks
        if self._failed or not self._spec.decoder:
            return
        try:
            self._inner.set_decoder_callbacks(callbacks)
        except Exception as exc:
            self._failed = True
            _log_failure(self._spec.name, "set_decoder_callbacks", exc)

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        if self._failed:
            self._fail_request()
            return HeadersStatus.STOP
        if not self._spec.decoder:
            return HeadersStatus.CONTINUE
        try:
            status = self._inner.decode_headers(headers, end_stream)
            return _checked(status, HeadersStatus, HeadersStatus.CONTINUE)
        except Exception as exc:
            _log_failure(self._spec.name, "decode_headers", exc)
            self._fail_request()
            return HeadersStatus.STOP

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        if self._failed:
            return DataStatus.STOP_NO_BUFFER
        if not self._spec.decoder:
            return DataStatus.CONTINUE
        try:
            status = self._inner.decode_data(data, end_stream)
            return _checked(status, DataStatus, DataStatus.CONTINUE)
        except Exception as exc:
            _log_failure(self._spec.name, "decode_data", exc)
            self._fail_request()
            return DataStatus.STOP_NO_BUFFER

    def _fail_request(self) -> None:
        self._failed = True  # first: the local reply runs this object's encoder hooks
        if self._cb is not None:
            self._cb.send_error(CustomFilterError(self._spec.name))

    # -- response -----------------------------------------------------------------------------

    def set_encoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks
        if self._failed or not self._spec.encoder:
            return
        try:
            self._inner.set_encoder_callbacks(callbacks)
        except Exception as exc:
            self._failed = True
            _log_failure(self._spec.name, "set_encoder_callbacks", exc)

    def encode_headers(self, status: int, headers: Headers, end_stream: bool) -> HeadersStatus:
        if self._failed or not self._spec.encoder:
            return HeadersStatus.CONTINUE
        for name, value in headers:
            if name == b"content-type":
                self._event_stream = value[:17].lower() == b"text/event-stream"
        try:
            result = self._inner.encode_headers(status, headers, end_stream)
            return _checked(result, HeadersStatus, HeadersStatus.CONTINUE)
        except Exception as exc:
            _log_failure(self._spec.name, "encode_headers", exc)
            self._failed = True
        if self._event_stream and not end_stream:
            # The head goes out; the first chunk becomes the in-band error event.
            self._fail_next_chunk = True
        elif self._cb is not None:
            # No body to carry an error in the client's dialect: reset the stream.
            self._cb.send_error(CustomFilterError(self._spec.name))
        return HeadersStatus.CONTINUE

    def encode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        if self._fail_next_chunk:
            self._fail_next_chunk = False
            return self._end_response(end_stream)
        if self._failed or not self._spec.encoder:
            return DataStatus.CONTINUE  # pass through, an error event included
        try:
            status = self._inner.encode_data(data, end_stream)
            return _checked(status, DataStatus, DataStatus.CONTINUE)
        except Exception as exc:
            _log_failure(self._spec.name, "encode_data", exc)
            self._failed = True
            return self._end_response(end_stream)

    def _end_response(self, end_stream: bool) -> DataStatus:
        cb = self._cb
        if cb is None:
            return DataStatus.STOP_NO_BUFFER
        error = CustomFilterError(self._spec.name)
        if self._event_stream and end_stream:
            # The stream writes this last chunk whatever we return: make it the error event
            # (send_error would write one more chunk after the end).
            event = in_band_error_event(cb.request.dialect, error.kind, error.message)
            cb.replace_encoding_data(event)
            return DataStatus.CONTINUE
        # An event stream gets the in-band error and ends; any other response is reset (its
        # head and length are out already).
        cb.send_error(error)
        return DataStatus.STOP_NO_BUFFER

    # -- teardown -----------------------------------------------------------------------------

    def on_destroy(self) -> None:
        inner = self._inner
        self._inner = None
        self._cb = None
        if inner is None or not callable(getattr(inner, "on_destroy", None)):
            return
        try:
            inner.on_destroy()
        except Exception as exc:
            _log_failure(self._spec.name, "on_destroy", exc)


def _checked(status: object, kind: type[_S], default: _S) -> _S:
    """The hook's status; a forgotten ``return`` (None) counts as CONTINUE."""
    if status is None:
        return default
    if not isinstance(status, kind):
        raise TypeError(f"returned {status!r}, not a {kind.__name__}")
    return status


def _log_failure(name: str, hook: str, exc: BaseException) -> None:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {PurePath(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    text = " ".join(str(exc).split())[:MAX_LOGGED_MESSAGE_CHARS]
    log.error("filter %s failed in %s: %s: %s%s", name, hook, type(exc).__name__, text, where)
