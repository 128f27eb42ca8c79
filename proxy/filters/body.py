"""Gathers the request body (the codecs already bound its size) and parses the JSON once.

Routing, translation and caching all need the parsed request; they read
``callbacks.request.body_json`` instead of parsing again. Header iteration is held until the
body is complete, so the filters after this one see headers and then the body in one chunk.
"""

from __future__ import annotations

import orjson

from proxy.filters.api import DataStatus, FilterCallbacks, HeadersStatus
from proxy.headers import Headers


class JsonBodyFilter:
    __slots__ = ("_cb", "_chunks")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        if end_stream:
            self._cb.send_local_reply(400, "a JSON request body is required")
            return HeadersStatus.STOP
        for name, value in headers:
            # A compressed body is refused, never inflated: no decompression bomb, and no
            # body forwarded with an encoding that no longer matches it.
            if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                self._cb.send_local_reply(
                    415, "compressed request bodies are not accepted (content-encoding)"
                )
                break
        return HeadersStatus.STOP

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        if not end_stream:
            if data:
                self._chunks.append(data)
            return DataStatus.STOP_NO_BUFFER
        if self._chunks:
            self._chunks.append(data)
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._cb.replace_decoding_data(data)
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self._cb.send_local_reply(400, f"request body is not valid JSON: {exc.msg}")
            return DataStatus.STOP_NO_BUFFER
        if not isinstance(parsed, dict):
            self._cb.send_local_reply(400, "request body must be a JSON object")
            return DataStatus.STOP_NO_BUFFER
        self._cb.request.body_json = parsed
        return DataStatus.CONTINUE

    def on_destroy(self) -> None:
        self._chunks.clear()
