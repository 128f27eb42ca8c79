"""A raw HTTP/2 client over a real socket, built on hpack + hyperframe: it sends the frames a
well-behaved client library refuses to produce and reads back every frame the server sends."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable

from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
Header = tuple[bytes, bytes]

GET_MODELS: list[Header] = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":path", b"/v1/models"),
    (b":authority", b"127.0.0.1"),
]


def post_messages(extra: Iterable[Header] = ()) -> list[Header]:
    return [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/v1/messages"),
        (b":authority", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"anthropic-version", b"2023-06-01"),
        *extra,
    ]


class RawH2:
    def __init__(self, port: int, settings: dict[int, int] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.statuses: dict[int, int] = {}  # stream id -> the response's :status
        self.frames: list[Frame] = []  # every frame received, in order
        self.closed = False
        self._buf = b""
        self.send(PREFACE + self.settings(settings or {}))

    # ---- frames --------------------------------------------------------------------------

    def settings(self, values: dict[int, int], ack: bool = False) -> bytes:
        # Packed by hand: hyperframe truncates unknown setting ids.
        body = b"".join(struct.pack("!HL", k, v) for k, v in values.items())
        return (
            len(body).to_bytes(3, "big") + b"\x04" + (b"\x01" if ack else b"\x00") + bytes(4) + body
        )

    def headers(
        self, sid: int, headers: Iterable[Header], end_stream: bool = True, end_headers: bool = True
    ) -> bytes:
        flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
        return HeadersFrame(sid, self.encoder.encode(list(headers)), flags=flags).serialize()

    def raw_headers(self, sid: int, block: bytes, flags: Iterable[str]) -> bytes:
        return HeadersFrame(sid, block, flags=list(flags)).serialize()

    @staticmethod
    def continuation(sid: int, block: bytes, end_headers: bool = False) -> bytes:
        return ContinuationFrame(
            sid, block, flags=["END_HEADERS"] if end_headers else []
        ).serialize()

    @staticmethod
    def data(sid: int, payload: bytes, end_stream: bool = False) -> bytes:
        return DataFrame(sid, payload, flags=["END_STREAM"] if end_stream else []).serialize()

    @staticmethod
    def rst(sid: int, code: int = 8) -> bytes:
        return RstStreamFrame(sid, code).serialize()

    @staticmethod
    def ping(payload: bytes = b"12345678") -> bytes:
        return PingFrame(0, payload).serialize()

    @staticmethod
    def priority(sid: int, depends_on: int = 0) -> bytes:
        return PriorityFrame(sid, depends_on=depends_on, stream_weight=15).serialize()

    @staticmethod
    def window_update(sid: int, increment: int) -> bytes:
        return WindowUpdateFrame(sid, increment).serialize()

    # ---- I/O -----------------------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        """Send; False once the server has closed (a flood is cut off mid-way)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            return False
        return True

    def flood(self, payload: bytes, times: int) -> int:
        """Send ``payload`` up to ``times`` times, reading between sends so a GOAWAY is seen
        before the server's close turns into a reset that discards it. Returns how many
        sends went out before the server stopped the flood."""
        for sent in range(times):
            if self.closed or not self.send(payload):
                return sent
            self.read_until(lambda fs: any(isinstance(f, GoAwayFrame) for f in fs), 0.001)
            if any(isinstance(f, GoAwayFrame) for f in self.frames):
                return sent + 1
        return times

    def read_until(self, done: object = None, timeout: float = 3.0) -> list[Frame]:
        """Read frames until ``done(frames)`` holds, the server closes, or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            if callable(done) and done(self.frames):
                break
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                break
            self._buf += chunk
            self._parse()
        return self.frames

    def _parse(self) -> None:
        while len(self._buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buf[:9]))
            if len(self._buf) < 9 + length:
                return
            frame.parse_body(memoryview(self._buf[9 : 9 + length]))
            self._buf = self._buf[9 + length :]
            self.frames.append(frame)
            if isinstance(frame, HeadersFrame) and "END_HEADERS" in frame.flags:
                fields = dict(self.decoder.decode(frame.data, raw=True))
                if b":status" in fields:
                    self.statuses[frame.stream_id] = int(fields[b":status"])
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                self.send(self.settings({}, ack=True))

    def goaway(self, timeout: float = 3.0) -> GoAwayFrame | None:
        self.read_until(lambda fs: any(isinstance(f, GoAwayFrame) for f in fs), timeout)
        found = [f for f in self.frames if isinstance(f, GoAwayFrame)]
        return found[-1] if found else None

    def wait_closed(self, timeout: float = 3.0) -> bool:
        self.read_until(None, timeout)
        return self.closed

    def resets(self) -> dict[int, int]:
        return {f.stream_id: f.error_code for f in self.frames if isinstance(f, RstStreamFrame)}

    def ended(self, sid: int) -> bool:
        return any(
            f.stream_id == sid and "END_STREAM" in f.flags
            for f in self.frames
            if isinstance(f, DataFrame | HeadersFrame)
        )

    def close(self) -> None:
        self.sock.close()
