"""The response cache on the request path (proxy/cache/ holds the stores; docs/cache.md).

How this works: the filter sits after the body, auth and limit filters (it needs the parsed
body and the key's name, the tenant) and before the router; it is in the chain only when the
config has a ``cache:`` section. On the request:

1. Bypass (``x-junction-cache: bypass``) when the path is not an answer endpoint, the route's
   policy does not admit the request, or the client sent ``cache-control: no-store``.
2. Lookup, unless ``no-cache``: L1, then L2 when it is there and its breaker closed. A hit is
   answered here, from the entry's prepared body with a fresh id; nothing goes upstream.
3. Miss: when an identical request is already upstream, follow it (`proxy/cache/flight.py`)
   for at most ``coalesce_wait_s``: a streaming follower of a streamed answer gets its
   events as they arrive; any other follower is answered from the entry when the leader
   stored one. When the leader fails before anything reached the follower, or the wait runs
   out, or the answer was not storable, the follower goes upstream itself. A live follower
   whose leader fails mid-stream ends with an in-band error, like the leader's client.
   Otherwise this request leads a new flight and continues to the router.

On the response of a miss the filter (an encoder too, outermost after custom filters, so it
sees what the client receives) records the answer (proxy/cache/capture.py), publishes stream
events to the followers, and stores a complete 2xx answer when the stream ends.
"""

from __future__ import annotations

import asyncio
from typing import Final

from proxy.cache.capture import AnswerCapture, Event
from proxy.cache.entry import SSE_TYPE, CacheEntry, fresh_id, fresh_tool_id
from proxy.cache.flight import Flight
from proxy.cache.key import cache_key
from proxy.cache.policy import CACHEABLE_PATHS, Mode, admits, request_mode
from proxy.cache.store import ResponseCache
from proxy.dialects.sse import encode_event
from proxy.errors import UpstreamError
from proxy.filters.api import DataStatus, Dialect, FilterCallbacks, HeadersStatus
from proxy.headers import Headers

CACHE_HEADER: Final = b"x-junction-cache"
HIT_L1: Final = b"hit-l1"
HIT_L2: Final = b"hit-l2"
MISS: Final = b"miss"
BYPASS: Final = b"bypass"


class CacheFilter:
    __slots__ = (
        "_cache",
        "_capture",
        "_cb",
        "_flight",
        "_following",
        "_include_usage",
        "_key",
        "_leader_id",
        "_live",
        "_own_id",
        "_pending",
        "_replaying",
        "_store",
        "_stream",
        "_tag",
        "_tenant",
        "_timer",
        "_ttl_s",
    )

    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache
        self._tag = b""
        self._key = ""
        self._tenant = ""
        self._ttl_s = 0.0
        self._stream = False
        self._include_usage = False
        self._store = False  # record this answer and store it when complete
        self._replaying = False  # the response is ours (a hit, or a follower's)
        self._capture: AnswerCapture | None = None
        self._flight: Flight | None = None  # the flight this request leads
        self._following: Flight | None = None  # the flight this request follows
        self._live = False  # a follower that started its client's stream
        self._leader_id = b""
        self._own_id = b""
        self._pending: asyncio.Future[CacheEntry | None] | None = None
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def set_encoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    # -- request ---------------------------------------------------------------------------

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        req = self._cb.request
        body = req.body_json
        cache = self._cache
        if not isinstance(body, dict) or req.route_path not in CACHEABLE_PATHS:
            return self._bypass()
        policy = cache.policy_for(body.get("model"))
        mode, asked_ttl = request_mode(headers)
        if mode is Mode.BYPASS or not admits(policy.policy, body):
            return self._bypass()
        self._ttl_s = cache.cfg.clamp_ttl(asked_ttl) if asked_ttl is not None else policy.ttl_s
        self._tenant = tenant = self._cb.info.api_key_name
        self._key = key = cache_key(
            dialect=req.dialect.value,
            path=req.route_path,
            tenant=tenant,
            fingerprint=cache.fingerprint,
            headers=headers,
            body=body,
        )
        self._stream = body.get("stream") is True
        if self._stream and req.dialect is Dialect.OPENAI:
            options = body.get("stream_options")
            self._include_usage = isinstance(options, dict) and options.get("include_usage") is True
        if mode is Mode.NORMAL:
            entry = cache.lookup(key)
            if entry is not None and self._serve(entry, HIT_L1):
                cache.stats.hits_l1_total += 1
                return HeadersStatus.STOP
            read = cache.lookup_l2(tenant, key)
            if read is not None:
                self._pending = asyncio.ensure_future(read)
                self._pending.add_done_callback(self._l2_answered)
                return HeadersStatus.STOP
        return HeadersStatus.CONTINUE if self._miss() else HeadersStatus.STOP

    def _bypass(self) -> HeadersStatus:
        self._tag = BYPASS
        self._cache.stats.bypass_total += 1
        self._cb.info.cache = "bypass"
        return HeadersStatus.CONTINUE

    def _l2_answered(self, future: asyncio.Future[CacheEntry | None]) -> None:
        if self._pending is not future:
            return  # the stream ended meanwhile
        self._pending = None
        entry = None
        if not future.cancelled() and future.exception() is None:
            entry = future.result()
        if entry is not None and self._serve(entry, HIT_L2):
            self._cache.stats.hits_l2_total += 1
            return
        entry = self._cache.lookup(self._key)  # stored by an identical request meanwhile
        if entry is not None and self._serve(entry, HIT_L1):
            self._cache.stats.hits_l1_total += 1
            return
        if self._miss():
            self._cb.continue_decoding()

    def _miss(self) -> bool:
        """Follow an identical request in flight (False), or go upstream (True)."""
        cache = self._cache
        self._tag = MISS
        if cache.cfg.coalesce:
            flight = cache.flights.get(self._key)
            if flight is not None and flight.join(self):
                self._following = flight
                self._cb.info.cache = "coalesced"
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(cache.cfg.coalesce_wait_s, self._wait_over)
                return False
            if flight is None:
                self._flight = cache.flights.lead(self._key)
        self._go_upstream()
        return True

    def _go_upstream(self) -> None:
        self._store = True
        self._cache.stats.misses_total += 1
        self._cb.info.cache = "miss"

    def _serve(self, entry: CacheEntry, tag: bytes) -> bool:
        """Answer from ``entry``; False (and the entry dropped) when it cannot be rendered
        in the shape asked for: the request then goes on as a miss."""
        try:
            rendered = entry.render(self._stream, self._include_usage)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            self._cache.drop(entry)
            return False
        dialect = entry.dialect
        body = rendered.body(fresh_id(dialect), lambda: fresh_tool_id(dialect))
        headers: Headers = [(b"content-type", rendered.content_type)]
        if rendered.content_type == SSE_TYPE:
            headers.append((b"cache-control", b"no-cache"))
        else:
            headers.append((b"content-length", b"%d" % len(body)))
        self._tag = tag
        self._replaying = True
        info = self._cb.info
        info.cache = tag.decode()
        # No provider served this: limits and spend are corrected to nothing used.
        info.input_tokens = info.output_tokens = 0
        self._cache.stats.served_bytes_total += len(body)
        self._cb.send_response(200, headers, body)
        return True

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        if self._pending is not None or self._following is not None:
            return DataStatus.STOP_AND_BUFFER
        return DataStatus.CONTINUE

    # -- following a flight (FlightListener) ---------------------------------------------------

    def on_flight_start(self, flight: Flight) -> None:
        if not self._stream or self._live:
            return  # a non-streaming follower waits for the whole answer
        self._live = True
        self._cancel_timer()
        self._leader_id = flight.answer_id.encode()
        self._own_id = fresh_id(self._cb.request.dialect.value)
        self._replaying = True
        headers: Headers = [(b"content-type", SSE_TYPE), (b"cache-control", b"no-cache")]
        self._cb.encode_headers(200, headers, False)

    def on_flight_events(self, flight: Flight, events: list[Event]) -> None:
        if not self._live:
            return
        data = b"".join(encode_event(name, d) for name, d in events)
        if self._leader_id:
            data = data.replace(self._leader_id, self._own_id)
        self._cache.stats.served_bytes_total += len(data)
        self._cb.encode_data(data, False)

    def on_flight_end(self, flight: Flight, ok: bool, entry: CacheEntry | None) -> None:
        self._following = None
        self._cancel_timer()
        if self._live:
            if ok:
                self._cache.stats.coalesced_total += 1
                info = self._cb.info
                info.input_tokens = info.output_tokens = 0  # the leader's request paid
                self._cb.encode_data(b"", True)
            else:
                self._cb.send_error(UpstreamError("the shared upstream answer failed"))
            return
        if entry is not None and self._serve(entry, MISS):
            self._cache.stats.coalesced_total += 1
            self._cb.info.cache = "coalesced"
            return
        # Not from inside the leader's response path: each follower starts its own
        # upstream request on its own turn of the loop.
        self._timer = asyncio.get_running_loop().call_soon(self._wait_over)

    def _wait_over(self) -> None:
        self._timer = None
        flight, self._following = self._following, None
        if self._live:
            return
        if flight is not None:
            flight.leave(self)
        self._go_upstream()
        self._cb.continue_decoding()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- response ----------------------------------------------------------------------------

    def encode_headers(self, status: int, headers: Headers, end_stream: bool) -> HeadersStatus:
        if self._tag:
            headers.append((CACHE_HEADER, self._tag))
        if self._store and not self._replaying:
            capture = self._capture = AnswerCapture(
                self._cb.request.dialect.value, self._cache.cfg.max_entry_bytes
            )
            capture.start(status, headers)
            if end_stream:
                self._finish(capture)
        return HeadersStatus.CONTINUE

    def encode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        capture = self._capture
        if capture is not None:
            events = capture.feed(data)
            flight = self._flight
            if events and flight is not None:
                if not flight.streaming:
                    flight.start(capture.answer_id)
                flight.publish(events, keep=not capture.too_large)
            if end_stream:
                self._finish(capture)
        return DataStatus.CONTINUE

    def _finish(self, capture: AnswerCapture) -> None:
        self._capture = None
        last, entry = capture.finish()
        flight, self._flight = self._flight, None
        cache = self._cache
        if capture.too_large:
            cache.stats.not_stored_total += 1
        if entry is not None:
            cache.store(self._tenant, self._key, entry, self._ttl_s)
            if entry.size > cache.cfg.max_entry_bytes:
                entry = None
        ok = capture.complete if capture.streaming else entry is not None
        if flight is not None:
            if last and flight.streaming:
                flight.publish(last, keep=False)
            cache.flights.land(flight, ok, entry)

    def on_destroy(self) -> None:
        self._cancel_timer()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        if self._following is not None:
            following, self._following = self._following, None
            following.leave(self)
        flight, self._flight = self._flight, None
        if flight is not None:
            # The answer never completed here (error, truncation, client gone): followers
            # that did not start go upstream themselves.
            self._cache.flights.land(flight, False, None)
        self._capture = None
