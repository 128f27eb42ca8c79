"""Requests Junction answers itself: the base-URL probe, the model list, unknown paths."""

from __future__ import annotations

import orjson

from proxy.filters.api import DataStatus, Dialect, FilterCallbacks, HeadersStatus
from proxy.headers import Headers
from proxy.routing.runtime import RuntimeConfig

_JSON = (b"content-type", b"application/json")


class RootFilter:
    """``HEAD /`` and ``GET /`` answer 200: Claude Code probes its base URL with HEAD."""

    __slots__ = ("_cb",)

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        body = b'{"service":"junction","status":"ok"}'
        self._cb.send_response(200, [_JSON, (b"content-length", b"%d" % len(body))], body)
        return HeadersStatus.STOP

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.STOP_NO_BUFFER

    def on_destroy(self) -> None:
        pass


class ModelsFilter:
    """``GET /v1/models``: the models Junction can route to, in the client's dialect."""

    __slots__ = ("_cb", "_runtime")

    def __init__(self, runtime: RuntimeConfig) -> None:
        self._runtime = runtime

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        pairs = self._runtime.model_ids()
        if self._cb.request.dialect is Dialect.ANTHROPIC:
            ids = [m for _, m in pairs]
            body = orjson.dumps(
                {
                    "data": [
                        {
                            "type": "model",
                            "id": model,
                            "display_name": f"{model} via {provider}",
                            "created_at": "1970-01-01T00:00:00Z",
                        }
                        for provider, model in pairs
                    ],
                    "has_more": False,
                    "first_id": ids[0] if ids else None,
                    "last_id": ids[-1] if ids else None,
                }
            )
        else:
            body = orjson.dumps(
                {
                    "object": "list",
                    "data": [
                        {"id": model, "object": "model", "created": 0, "owned_by": provider}
                        for provider, model in pairs
                    ],
                }
            )
        self._cb.send_response(200, [_JSON, (b"content-length", b"%d" % len(body))], body)
        return HeadersStatus.STOP

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.STOP_NO_BUFFER

    def on_destroy(self) -> None:
        pass


class ErrorReplyFilter:
    """Answers every request on its route with one fixed error (no route, bad method ...)."""

    __slots__ = ("_cb", "_headers", "_kind", "_message", "_status")

    def __init__(
        self, status: int, message: str, kind: str | None = None, headers: Headers | None = None
    ) -> None:
        self._status = status
        self._message = message
        self._kind = kind
        self._headers = headers

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        if self._status == 404:
            self._cb.info.add_flag("NR")
        self._cb.send_local_reply(
            self._status, self._message, kind=self._kind, headers=list(self._headers or ())
        )
        return HeadersStatus.STOP

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.STOP_NO_BUFFER

    def on_destroy(self) -> None:
        pass
