"""A custom filter with a bug, for test_internal_errors.py: it raises on requests that carry
``x-boom`` (in decode_headers) or ``x-boom-data`` (in decode_data)."""

from __future__ import annotations

from proxy.filters.api import DataStatus, FilterCallbacks, HeadersStatus
from proxy.headers import Headers


class Boom:
    def __init__(self) -> None:
        self._on_data = False

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        names = {k for k, _ in headers}
        if b"x-boom" in names:
            raise RuntimeError("boom in decode_headers")
        self._on_data = b"x-boom-data" in names
        return HeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        if self._on_data:
            raise KeyError("boom in decode_data")
        return DataStatus.CONTINUE

    def on_destroy(self) -> None:
        pass
