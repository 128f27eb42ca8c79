"""``/admin/cache`` on the admin listener: GET shows the stats, POST or DELETE purges.

Purge parameters (query string): ``tenant`` — the API key name whose entries go (``tenant=``
empty: requests made without a key); ``prefix`` — the leading hex characters of the keys to
drop. Without either, everything goes. L1 is this worker's; L2 is shared, so a purge there is
seen by every worker and replica (their L1 copies expire on their own TTL).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qs

import orjson

from proxy.cache.store import ResponseCache
from proxy.filters.api import DataStatus, FilterCallbacks, HeadersStatus
from proxy.headers import Headers

CACHE_PATH: Final = b"/admin/cache"
MAX_TENANT_CHARS: Final = 256
_HEX = re.compile(r"^[0-9a-f]{0,64}$")


async def cache_admin(
    cache: ResponseCache | None, method: bytes, query: bytes
) -> tuple[int, dict[str, Any]]:
    """The status and document of one ``/admin/cache`` request."""
    if cache is None:
        return 404, {"error": "the response cache is off (no cache: section)"}
    if method in (b"GET", b"HEAD"):
        return 200, cache.snapshot()
    if method not in (b"POST", b"DELETE"):
        return 405, {"error": "use GET, or POST / DELETE to purge"}
    try:
        params = parse_qs(query.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return 400, {"error": "the query string must be ASCII (percent-encoded)"}
    unknown = set(params) - {"tenant", "prefix"}
    if unknown:
        return 400, {"error": f"unknown parameters: {', '.join(sorted(unknown))}"}
    tenant = params["tenant"][0] if "tenant" in params else None
    prefix = params.get("prefix", [""])[0].lower()
    if not _HEX.match(prefix):
        return 400, {"error": "prefix must be up to 64 hex characters of a cache key"}
    if tenant is not None and len(tenant) > MAX_TENANT_CHARS:
        return 400, {"error": "tenant is too long"}
    doc = await cache.purge(tenant, prefix)
    return 200, {"tenant": tenant, "prefix": prefix, **doc}


class CacheAdminFilter:
    """The admin listener's filter for ``/admin/cache`` (the purge awaits Redis)."""

    __slots__ = ("_authorized", "_cache", "_cb", "_method", "_query", "_task")

    def __init__(
        self,
        cache: ResponseCache | None,
        method: bytes,
        query: bytes,
        authorized: Callable[[Headers], bool],
    ) -> None:
        self._cache = cache
        self._method = method
        self._query = query
        self._authorized = authorized
        self._task: asyncio.Task[tuple[int, dict[str, Any]]] | None = None

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        if not self._authorized(headers):
            self._reply(401, {"error": "admin token required"})
            return HeadersStatus.STOP
        self._task = asyncio.ensure_future(cache_admin(self._cache, self._method, self._query))
        self._task.add_done_callback(self._done)
        return HeadersStatus.STOP

    def _done(self, task: asyncio.Task[tuple[int, dict[str, Any]]]) -> None:
        if self._task is not task or task.cancelled():
            return
        self._task = None
        error = task.exception()
        if error is not None:
            self._reply(500, {"error": type(error).__name__})
            return
        status, doc = task.result()
        self._reply(status, doc)

    def _reply(self, status: int, doc: dict[str, Any]) -> None:
        body = orjson.dumps(doc)
        headers: Headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ]
        self._cb.send_response(status, headers, body)

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.STOP_NO_BUFFER

    def on_destroy(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
