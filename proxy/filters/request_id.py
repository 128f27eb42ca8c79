"""Keeps a client's ``x-request-id`` (when it is sane) or makes one, and echoes it back."""

from __future__ import annotations

import os

from proxy.filters.api import DataStatus, FilterCallbacks, HeadersStatus
from proxy.headers import Headers, is_safe_value

MAX_REQUEST_ID_BYTES = 128


class RequestIdSource:
    """Unique ids without a random draw per request: a random per-process prefix plus a
    counter (os.urandom is a syscall; this is a format call)."""

    __slots__ = ("_n", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex().encode()
        self._n = 0

    def next(self) -> bytes:
        self._n += 1
        return b"%s%08x" % (self._prefix, self._n)


class RequestIdFilter:
    __slots__ = ("_cb", "_id", "_source")

    def __init__(self, source: RequestIdSource) -> None:
        self._id = b""
        self._source = source

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def set_encoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        rid = b""
        for i, (k, v) in enumerate(headers):
            if k == b"x-request-id":
                if 0 < len(v) <= MAX_REQUEST_ID_BYTES and is_safe_value(v):
                    rid = v
                else:
                    del headers[i]
                break
        if not rid:
            rid = self._source.next()
            headers.append((b"x-request-id", rid))
        self._id = rid
        self._cb.info.request_id = rid.decode("ascii")
        return HeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.CONTINUE

    def encode_headers(self, status: int, headers: Headers, end_stream: bool) -> HeadersStatus:
        if self._id:
            for k, _ in headers:
                if k == b"x-request-id":
                    break
            else:
                headers.append((b"x-request-id", self._id))
        return HeadersStatus.CONTINUE

    def encode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.CONTINUE

    def on_destroy(self) -> None:
        pass
