"""Helpers for the HTTP/2 codec tests: a real h2 client wired to the codec without sockets,
and a raw frame builder (hpack + hyperframe) for what a real client refuses to send.

Both server codecs run the same tests: a module that uses ``pytestmark =
pytest.mark.usefixtures("implementation")`` runs each test once with the native codec and
once with the reference over h2; `make_codec` (and so `Peer` and `raw_codec`) builds the one
under test."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import Event as H2Event
from h2.settings import SettingCodes, Settings
from hpack import Encoder
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

from proxy.events import Event, RequestHeaders
from proxy.protocol.http2 import H2ServerCodec
from proxy.protocol.http2_native import NativeH2ServerCodec
from proxy.protocol.limits import CodecLimits

Codec = H2ServerCodec | NativeH2ServerCodec
IMPLEMENTATIONS = ("native", "h2")
_under_test = {"impl": "native"}


def make_codec(limits: CodecLimits | None = None, impl: str | None = None) -> Codec:
    """The codec under test (see ``implementation``), or the one ``impl`` names."""
    if (impl or _under_test["impl"]) == "h2":
        return H2ServerCodec(limits or CodecLimits())
    return NativeH2ServerCodec(limits or CodecLimits())


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    impl = str(request.param)
    before = _under_test["impl"]
    _under_test["impl"] = impl
    yield impl
    _under_test["impl"] = before


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GET = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":path", b"/v1/models"),
    (b":authority", b"api.example.com"),
]


def post(path: bytes = b"/v1/messages", extra: Iterable[tuple[bytes, bytes]] = ()) -> list:
    return [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":path", path),
        (b":authority", b"api.example.com"),
        (b"content-type", b"application/json"),
        *extra,
    ]


def parse_frames(data: bytes) -> list[Frame]:
    frames: list[Frame] = []
    i = 0
    while i < len(data):
        frame, length = Frame.parse_frame_header(memoryview(data[i : i + 9]))
        frame.parse_body(memoryview(data[i + 9 : i + 9 + length]))
        frames.append(frame)
        i += 9 + length
    assert i == len(data), "trailing partial frame"
    return frames


def of_type(frames: Iterable[Frame], kind: type[Frame]) -> list:
    return [f for f in frames if isinstance(f, kind)]


class Peer:
    """A real h2 client talking to a server codec through byte hand-offs."""

    def __init__(
        self,
        limits: CodecLimits | None = None,
        client_settings: dict[int, int] | None = None,
    ) -> None:
        self.codec = make_codec(limits)
        self.client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        if client_settings:
            values = {SettingCodes.ENABLE_PUSH: 0, **client_settings}
            self.client.local_settings = Settings(client=True, initial_values=values)
        self.client.initiate_connection()
        self.now = 0.0
        self.wire: list[bytes] = []  # every byte the codec sent, in order

    def up(self) -> list[Event]:
        """Client bytes → codec."""
        return self.codec.receive(self.client.data_to_send(), self.now)

    def down(self) -> list[H2Event]:
        """Codec bytes → client."""
        data = self.codec.data_to_send()
        self.wire.append(data)
        return self.client.receive_data(data)

    def handshake(self) -> None:
        assert self.up() == []
        self.down()
        assert self.up() == []  # the client's SETTINGS ACK

    def request(
        self, headers: list | None = None, body: bytes | None = None
    ) -> tuple[int, list[Event]]:
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(sid, headers or GET, end_stream=body is None)
        if body is not None:
            self.client.send_data(sid, body, end_stream=True)
        return sid, self.up()


def open_peer(
    limits: CodecLimits | None = None, client_settings: dict[int, int] | None = None
) -> Peer:
    peer = Peer(limits, client_settings)
    peer.handshake()
    return peer


class RawClient:
    """Frames built by hand, for requests and floods a real client would not produce."""

    def __init__(self) -> None:
        self.encoder = Encoder()

    def preface(self, settings: dict[int, int] | None = None) -> bytes:
        return PREFACE + SettingsFrame(0, settings or {}).serialize()

    def settings_ack(self) -> bytes:
        return SettingsFrame(0, flags=["ACK"]).serialize()

    def block(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        return self.encoder.encode(list(headers))

    def headers(
        self,
        sid: int,
        headers: Iterable[tuple[bytes, bytes]],
        end_stream: bool = True,
        end_headers: bool = True,
    ) -> bytes:
        flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
        return HeadersFrame(sid, self.block(headers), flags=flags).serialize()

    def raw_headers(self, sid: int, block: bytes, flags: Iterable[str]) -> bytes:
        return HeadersFrame(sid, block, flags=list(flags)).serialize()

    def continuation(self, sid: int, block: bytes, end_headers: bool = False) -> bytes:
        return ContinuationFrame(
            sid, block, flags=["END_HEADERS"] if end_headers else []
        ).serialize()

    def data(
        self, sid: int, data: bytes, end_stream: bool = False, pad: int | None = None
    ) -> bytes:
        flags = ["END_STREAM"] if end_stream else []
        frame = DataFrame(sid, data, flags=flags)
        if pad is not None:
            frame.flags.add("PADDED")
            frame.pad_length = pad
        return frame.serialize()

    def rst(self, sid: int, code: int = 8) -> bytes:
        return RstStreamFrame(sid, code).serialize()

    def ping(self, payload: bytes = b"12345678") -> bytes:
        return PingFrame(0, payload).serialize()

    def settings(self, settings: dict[int, int]) -> bytes:
        # Packed by hand: hyperframe truncates setting ids to 8 bits.
        body = b"".join(struct.pack("!HL", k, v) for k, v in settings.items())
        return len(body).to_bytes(3, "big") + b"\x04\x00" + bytes(4) + body

    def window_update(self, sid: int, increment: int) -> bytes:
        return WindowUpdateFrame(sid, increment).serialize()

    def priority(self, sid: int, depends_on: int = 0) -> bytes:
        return PriorityFrame(sid, depends_on=depends_on, stream_weight=15).serialize()

    def goaway(self, last: int = 0, code: int = 0) -> bytes:
        return GoAwayFrame(0, last_stream_id=last, error_code=code).serialize()


def raw_codec(limits: CodecLimits | None = None) -> tuple[Codec, RawClient]:
    """A codec that has seen a raw client's preface and SETTINGS ACK."""
    codec = make_codec(limits)
    raw = RawClient()
    assert codec.receive(raw.preface() + raw.settings_ack(), 0.0) == []
    codec.data_to_send()
    return codec, raw


def headers_events(events: Iterable[Event]) -> list[RequestHeaders]:
    return [e for e in events if isinstance(e, RequestHeaders)]
