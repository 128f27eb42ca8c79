"""What the provider saw: counters and a bounded ring buffer of recent requests, for tests."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str  # the request target as sent, query included
    headers: Headers  # lower-case names, order kept
    body: bytes  # cut to MockOptions.record_body_bytes
    http_version: str  # "1.1", "1.0" or "2"
    connection_id: int  # 1, 2, ... in accept order

    def header(self, name: str) -> str | None:
        """First value of a header (any case), decoded, or None."""
        wanted = name.lower().encode("latin-1")
        for k, v in self.headers:
            if k == wanted:
                return v.decode("latin-1")
        return None

    def json(self) -> Any:
        return orjson.loads(self.body)


class Recorder:
    """Counters plus the last ``limit`` requests. Owned by one MockProvider."""

    def __init__(self, limit: int, body_bytes: int) -> None:
        self._body_bytes = body_bytes
        self.requests: deque[RecordedRequest] = deque(maxlen=limit)
        self.connections_accepted = 0
        self.requests_total = 0
        self.per_path: dict[str, int] = {}  # keyed by path without query; bounded below
        self._max_paths = 1024

    def record(
        self,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes,
        http_version: str,
        connection_id: int,
    ) -> None:
        self.requests_total += 1
        path = target.split(b"?", 1)[0].decode("latin-1")
        count = self.per_path.get(path)
        if count is not None:
            self.per_path[path] = count + 1
        elif len(self.per_path) < self._max_paths:
            self.per_path[path] = 1
        else:  # a scan of random paths must not grow memory: lump the rest together
            self.per_path["*"] = self.per_path.get("*", 0) + 1
        if self.requests.maxlen:
            if len(body) > self._body_bytes:
                body = body[: self._body_bytes]
            self.requests.append(
                RecordedRequest(
                    method.decode("latin-1"),
                    target.decode("latin-1"),
                    headers,
                    body,
                    http_version,
                    connection_id,
                )
            )

    def clear(self) -> None:
        self.requests.clear()
        self.connections_accepted = 0
        self.requests_total = 0
        self.per_path.clear()
