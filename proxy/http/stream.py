"""ActiveStream: one request/response exchange and its filter chain, whatever the protocol.

How this works: the connection creates an ActiveStream per request and feeds it
``on_request_headers`` / ``on_request_data`` / ``on_reset``. The stream runs the decoder
filters (see proxy/filters/api.py for the iteration rules); the terminal filter starts the
response through ``encode_headers`` / ``encode_data``, which run the encoder filters and then
hand bytes to the connection through the `StreamSink`. The stream never sees a transport or a
codec, so nothing here knows whether HTTP/1.1 or HTTP/2 carried the request.

A stream is finished when the response ended (or it was reset); then ``on_destroy`` runs on
every filter exactly once and the sink is told, which writes the access log record.
"""

from __future__ import annotations

import logging
from math import ceil
from typing import Any, Protocol

from proxy.dialects.errors import client_status, error_body, in_band_error_event, kind_for_status
from proxy.errors import ProxyError
from proxy.filters.api import (
    DataStatus,
    DecoderFilter,
    Dialect,
    EncoderFilter,
    HeadersStatus,
    WatermarkListener,
)
from proxy.headers import Headers
from proxy.http.info import StreamInfo

log = logging.getLogger("junction.http")


class StreamSink(Protocol):
    """The connection, as a stream sees it."""

    def write_headers(self, stream_id: int, status: int, headers: Headers, end: bool) -> None: ...

    def write_data(self, stream_id: int, data: bytes, end: bool) -> bool:
        """Queue ``data``; the result is `stream_writable` afterwards (one call per chunk
        instead of two on a streamed answer's path)."""
        ...

    def stream_writable(self, stream_id: int) -> bool: ...

    def abort_stream(self, stream_id: int) -> None: ...

    def acknowledge(self, stream_id: int, nbytes: int) -> None: ...

    def on_stream_done(self, stream: ActiveStream) -> None: ...


class RequestInfo:
    __slots__ = ("authority", "body_json", "dialect", "headers", "method", "path", "route_path")

    def __init__(
        self,
        method: bytes,
        path: bytes,
        route_path: str,
        authority: bytes,
        headers: Headers,
        dialect: Dialect,
    ) -> None:
        self.method = method
        self.path = path
        self.route_path = route_path
        self.authority = authority
        self.headers = headers
        self.dialect = dialect
        self.body_json: Any = None


class ActiveStream:
    __slots__ = (
        "_data_stop",
        "_dec_buffer",
        "_dec_data",
        "_dec_end_seen",
        "_dec_headers_end",
        "_decoders",
        "_enc_data",
        "_encoders",
        "_event_stream",
        "_hdr_stop",
        "_watermark",
        "destroyed",
        "info",
        "request",
        "request_complete",
        "response_complete",
        "response_started",
        "sink",
        "stream_id",
    )

    def __init__(
        self,
        sink: StreamSink,
        stream_id: int,
        request: RequestInfo,
        info: StreamInfo,
        decoders: list[DecoderFilter],
        encoders: list[EncoderFilter],
    ) -> None:
        self.sink = sink
        self.stream_id = stream_id
        self.request = request
        self.info = info
        self._decoders = decoders
        self._encoders = encoders  # already in response order (reverse of configuration)
        self._hdr_stop: int | None = None  # decoder that holds header iteration
        self._data_stop: int | None = None  # decoder that holds (buffers) data iteration
        self._dec_headers_end = False
        self._dec_buffer: list[bytes] = []
        self._dec_end_seen = False
        self._dec_data = b""
        self._enc_data = b""
        self._watermark: WatermarkListener | None = None
        self._event_stream = False
        self.response_started = False
        self.response_complete = False
        self.request_complete = False
        self.destroyed = False
        for d in decoders:
            d.set_decoder_callbacks(self)
        for e in encoders:
            e.set_encoder_callbacks(self)

    # -- request direction ---------------------------------------------------------------

    def on_request_headers(self, end_stream: bool) -> None:
        self._dec_headers_end = end_stream
        if end_stream:
            self.request_complete = True
        try:
            self._iterate_headers(0)
        except Exception as exc:  # a filter's bug: this stream fails, not the connection
            self.fail_internal(exc)

    def _iterate_headers(self, start: int) -> bool:
        decoders = self._decoders
        headers = self.request.headers
        end = self._dec_headers_end
        for i in range(start, len(decoders)):
            status = decoders[i].decode_headers(headers, end)
            if self.destroyed:
                return False
            if status is HeadersStatus.STOP:
                self._hdr_stop = i
                return False
        return True

    def on_request_data(self, data: bytes, end_stream: bool) -> None:
        if self.destroyed:
            self.sink.acknowledge(self.stream_id, len(data))
            return
        self.info.bytes_received += len(data)
        if end_stream:
            self.request_complete = True
            self._dec_end_seen = True
        try:
            self._iterate_data(0, data, end_stream)
        except Exception as exc:  # see on_request_headers
            self.fail_internal(exc)
        self.sink.acknowledge(self.stream_id, len(data))

    def _iterate_data(self, start: int, data: bytes, end: bool) -> None:
        decoders = self._decoders
        i = start
        last = len(decoders) - 1
        while True:
            # Data reaches the filters up to the one holding header or data iteration.
            hold = self._hdr_stop
            if hold is not None and hold < last:
                last = hold
            hold = self._data_stop
            if hold is not None and hold < last:
                last = hold
            if i > last:
                return
            self._dec_data = data
            status = decoders[i].decode_data(data, end)
            if self.destroyed:
                return
            data = self._dec_data
            if status is DataStatus.STOP_AND_BUFFER:
                self._dec_buffer.append(data)
                self._data_stop = i
                return
            if status is DataStatus.STOP_NO_BUFFER:
                return
            if self._data_stop == i or self._hdr_stop == i:
                # The filter holding iteration let go with this chunk: release what it held.
                if self._dec_buffer:
                    data = self._take_buffer(data)
                if not self._release_hold(i):
                    return
                last = len(decoders) - 1
            i += 1

    def continue_decoding(self) -> None:
        """The filter holding iteration finished its asynchronous work."""
        if self.destroyed:
            return
        try:
            self._continue_decoding()
        except Exception as exc:  # see on_request_headers
            self.fail_internal(exc)

    def fail_internal(self, exc: Exception) -> None:
        """A bug (an exception no filter should let out): logged with its traceback, and
        this stream answered with a 500 in the client's dialect, or cut if its answer had
        begun. The connection and its other streams carry on."""
        log.error(
            "request %s failed on an internal error",
            self.info.request_id.decode("latin-1", "replace"),
            exc_info=exc,
        )
        if self.destroyed:
            return
        if not self.response_started:
            self.send_local_reply(500, "internal error in the gateway", kind="api_error")
        if not self.destroyed:
            self.sink.abort_stream(self.stream_id)
            self._destroy()

    def _continue_decoding(self) -> None:
        i = self._data_stop if self._data_stop is not None else self._hdr_stop
        if i is None:
            return
        data = self._take_buffer(b"")
        if not self._release_hold(i):
            return
        if data or (self._dec_end_seen and not self._dec_headers_end):
            self._iterate_data(i + 1, data, self._dec_end_seen)

    def _take_buffer(self, tail: bytes) -> bytes:
        """The buffered request data plus ``tail``, in one chunk; the buffer empties."""
        self._dec_buffer.append(tail)
        data = b"".join(self._dec_buffer)
        self._dec_buffer.clear()
        return data

    def _release_hold(self, i: int) -> bool:
        """Filter ``i`` stops holding iteration: headers resume after it. False when the
        stream ended meanwhile."""
        self._data_stop = None
        if self._hdr_stop == i:
            self._hdr_stop = None
            self._iterate_headers(i + 1)
        return not self.destroyed

    def replace_decoding_data(self, data: bytes) -> None:
        self._dec_data = data

    def on_reset(self) -> None:
        """The client reset the stream or went away."""
        if not self.destroyed:
            self.info.add_flag("DC")
            self._destroy()

    # -- response direction --------------------------------------------------------------

    def encode_headers(self, status: int, headers: Headers, end_stream: bool) -> None:
        if self.destroyed or self.response_started:
            return
        self.response_started = True
        for enc in self._encoders:
            enc.encode_headers(status, headers, end_stream)
        # One pass: is this an event stream (errors after commit go in-band), and does the
        # x-request-id echo still need adding?
        has_rid = False
        for k, v in headers:
            if k == b"content-type":
                self._event_stream = v[:17].lower() == b"text/event-stream"
            elif k == b"x-request-id":
                has_rid = True
        if not has_rid and self.info.request_id:
            headers.append((b"x-request-id", self.info.request_id))
        self.info.status = status
        self.sink.write_headers(self.stream_id, status, headers, end_stream)
        if end_stream:
            self._finish_response()

    def encode_data(self, data: bytes, end_stream: bool) -> bool:
        if self.destroyed or self.response_complete:
            return True  # nothing more goes out: nothing to pause for
        if self._encoders:
            for enc in self._encoders:
                self._enc_data = data
                status = enc.encode_data(data, end_stream)
                data = self._enc_data
                if status is not DataStatus.CONTINUE and not end_stream:
                    return self.sink.stream_writable(self.stream_id)
        self.info.bytes_sent += len(data)
        writable = self.sink.write_data(self.stream_id, data, end_stream)
        if end_stream:
            self.response_complete = True
            self._destroy()
        return writable

    def replace_encoding_data(self, data: bytes) -> None:
        self._enc_data = data

    def _finish_response(self) -> None:
        self.response_complete = True
        self._destroy()

    # -- local replies and errors ----------------------------------------------------------

    def send_local_reply(
        self, status: int, message: str, *, kind: str | None = None, headers: Headers | None = None
    ) -> None:
        if self.destroyed:
            return
        dialect = self.request.dialect
        body = error_body(dialect, kind or kind_for_status(status), message)
        out: Headers = [(b"content-type", b"application/json")]
        if headers:
            out.extend(headers)
        out.append((b"content-length", str(len(body)).encode()))
        self.send_response(client_status(status, dialect), out, body)

    def send_response(self, status: int, headers: Headers, body: bytes) -> None:
        """A complete response made by the proxy itself."""
        if self.response_started:
            return
        self.encode_headers(status, headers, not body)
        if body:
            self.encode_data(body, True)

    def send_error(self, error: ProxyError) -> None:
        if self.destroyed:
            return
        self.info.add_flag(error.flag)
        if not self.response_started:
            wait = error.retry_after_s
            headers = None if wait is None else [(b"retry-after", b"%d" % max(ceil(wait), 1))]
            self.send_local_reply(error.status, error.message, kind=error.kind, headers=headers)
            return
        if self._event_stream and not self.response_complete:
            # The stream is committed: end it with an in-band error in the client's dialect,
            # never with a fabricated stop event.
            event = in_band_error_event(self.request.dialect, error.kind, error.message)
            self.encode_data(event, True)
            return
        self.sink.abort_stream(self.stream_id)
        self._destroy()

    # -- flow control ------------------------------------------------------------------------

    @property
    def downstream_writable(self) -> bool:
        return self.sink.stream_writable(self.stream_id)

    def set_watermark_listener(self, listener: WatermarkListener | None) -> None:
        self._watermark = listener

    def on_writable(self) -> None:
        if self._watermark is not None and not self.destroyed:
            self._watermark.on_downstream_writable()

    # -- teardown ----------------------------------------------------------------------------

    def _destroy(self) -> None:
        if self.destroyed:
            return
        self.destroyed = True
        self._watermark = None
        self._dec_buffer.clear()
        for d in self._decoders:
            d.on_destroy()
        if self._encoders:
            for e in self._encoders:
                if e not in self._decoders:  # type: ignore[comparison-overlap]
                    e.on_destroy()
            self._encoders.clear()
        # Filters point back at the stream; dropping the forward references breaks the
        # cycle so reference counting frees a finished stream at once instead of leaving
        # ~15 objects per request for the cyclic collector.
        self._decoders.clear()
        self.sink.on_stream_done(self)
