"""`H11Codec`: the `Http1ClientCodec` of http1_codec.py over h11 — slower, strict, and the
reference the httptools codec is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

import h11

from proxy.errors import UpstreamProtocolError
from proxy.headers import Headers
from proxy.upstream.http1_codec import DetachedSink, ResponseSink, request_framing, too_large


class _H11Data(Protocol):
    """What an ``h11.Data`` event really carries. h11 annotates ``data`` as bytes but hands out
    bytearray slices of its receive buffer; compiled (mypyc) code checks annotated types when
    it reads an attribute, so the event is read through this view instead."""

    data: bytes | bytearray


class H11Codec:
    """h11 in client mode: slower, strict, and a reference for the httptools codec."""

    __slots__ = ("_conn", "_max_header_bytes", "_sink", "reusable")

    def __init__(self, sink: ResponseSink, max_header_bytes: int) -> None:
        self._sink = sink
        self._max_header_bytes = max_header_bytes
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_bytes)
        self.reusable = False

    def detach(self) -> None:
        self._sink = DetachedSink()

    def encode_request(
        self,
        method: bytes,
        path: bytes,
        authority: bytes,
        headers: Headers,
        body: Sequence[bytes],
        end_stream: bool,
    ) -> bytes:
        out = [self.encode_head(method, path, authority, headers, end_stream and not body)]
        out += [self.encode_data(chunk) for chunk in body]
        if end_stream:
            out.append(self.encode_end())
        return b"".join(out)

    def encode_head(
        self, method: bytes, path: bytes, authority: bytes, headers: Headers, end_stream: bool
    ) -> bytes:
        _, framing = request_framing(method, headers, end_stream)
        all_headers = [(b"host", authority), *headers]
        if framing:
            name, _, value = framing[2:].partition(b": ")
            all_headers.append((name, value))
        try:
            request = h11.Request(method=method, target=path, headers=all_headers)
        except h11.LocalProtocolError as exc:
            raise UpstreamProtocolError(f"invalid request: {exc}") from None
        return self._send(request)

    def encode_data(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._send(h11.Data(data=data))

    def encode_end(self) -> bytes:
        return self._send(h11.EndOfMessage())

    def _send(self, event: h11.Request | h11.Data | h11.EndOfMessage) -> bytes:
        try:
            out = self._conn.send(event)
        except h11.LocalProtocolError as exc:
            raise UpstreamProtocolError(f"invalid request: {exc}") from None
        return out or b""

    def receive(self, data: bytes) -> None:
        self._conn.receive_data(data)
        self._drain()

    def receive_eof(self) -> bool:
        conn = self._conn
        if conn.their_state is not h11.SEND_BODY:
            return False
        conn.receive_data(b"")
        try:
            self._drain()
        except UpstreamProtocolError:
            return False  # the body was framed and got cut: a reset, not an end
        return bool(conn.states[h11.SERVER] is h11.DONE)

    def _drain(self) -> None:
        conn = self._conn
        sink = self._sink
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if "too long" in str(exc).lower():
                    raise too_large(self._max_header_bytes) from None
                raise UpstreamProtocolError(f"malformed upstream response: {exc}") from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Data):
                sink.on_response_data(bytes(cast(_H11Data, event).data))
            elif isinstance(event, h11.Response):
                headers = list(event.headers)
                if sum(len(k) + len(v) + 4 for k, v in headers) > self._max_header_bytes:
                    raise too_large(self._max_header_bytes)
                sink.on_response_head(event.status_code, headers)
            elif isinstance(event, h11.EndOfMessage):
                # Cycle before the sink hears of the end: it may start the next exchange.
                self.reusable = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                if self.reusable:
                    conn.start_next_cycle()
                sink.on_response_end()
            elif isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    raise UpstreamProtocolError("upstream switched protocols unasked")
            elif isinstance(event, h11.ConnectionClosed):
                return
