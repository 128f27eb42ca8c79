"""Properties of both HTTP/2 server codecs (native and h2): any input yields events or
DownstreamProtocolError (with a GOAWAY queued), and how the byte stream is split into reads
never changes the events."""

from __future__ import annotations

import struct

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from hyperframe.frame import GoAwayFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.errors import DownstreamProtocolError
from proxy.events import Event
from proxy.protocol.limits import CodecLimits
from tests.unit.protocol.test_http2_support import (
    IMPLEMENTATIONS,
    PREFACE,
    Codec,
    RawClient,
    make_codec,
    parse_frames,
)

each_codec = pytest.mark.parametrize("impl", IMPLEMENTATIONS)

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return (
        struct.pack("!I", len(payload))[1:]
        + bytes([ftype, flags])
        + struct.pack("!I", sid)
        + payload
    )


frames_strategy = st.lists(
    st.one_of(
        st.builds(
            _frame,
            st.integers(0, 12),
            st.integers(0, 255),
            st.sampled_from([0, 1, 2, 3, 5, 7, 0x7FFFFFFF]),
            st.binary(max_size=40),
        ),
        st.builds(
            lambda sid, end: RawClient().headers(sid, _GET, end_stream=end),
            st.sampled_from([1, 3, 5]),
            st.booleans(),
        ),
        st.binary(max_size=30),
    ),
    max_size=12,
)
_GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"a")]


def _feed(codec: Codec, chunks: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += codec.receive(chunk, 0.0)
    return events


@each_codec
@_SETTINGS
@given(frames_strategy, st.lists(st.integers(1, 64), max_size=8))
def test_any_input_gives_events_or_a_protocol_error(
    impl: str, frames: list[bytes], cuts: list[int]
) -> None:
    codec = make_codec(CodecLimits(), impl)
    codec.receive(RawClient().preface(), 0.0)
    codec.data_to_send()
    data = b"".join(frames)
    chunks, at = [], 0
    for cut in cuts:
        chunks.append(data[at : at + cut])
        at += cut
    chunks.append(data[at:])
    try:
        events = _feed(codec, chunks)
    except DownstreamProtocolError as exc:
        assert "internal" not in str(exc), repr(exc.__cause__)
        out = parse_frames(codec.data_to_send())
        assert isinstance(out[-1], GoAwayFrame)
        assert not codec.keep_alive
    else:
        assert all(isinstance(e, Event.__args__) for e in events)  # type: ignore[attr-defined]
        parse_frames(codec.data_to_send())  # whatever it answered is well-formed


def _client_bytes(streams: list[tuple[bytes, list[bytes]]]) -> bytes:
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    sids = []
    for path, chunks in streams:
        sid = client.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":path", path),
            (b":authority", b"api.example.com"),
            (b"x-n", str(len(chunks)).encode()),
        ]
        client.send_headers(sid, headers, end_stream=not chunks)
        sids.append(sid)
    # Interleave the bodies, round robin.
    longest = max((len(c) for _, c in streams), default=0)
    for i in range(longest):
        for sid, (_, chunks) in zip(sids, streams, strict=True):
            if i < len(chunks):
                client.send_data(sid, chunks[i], end_stream=i == len(chunks) - 1)
    client.ping(b"pingpong")
    return client.data_to_send()


streams_strategy = st.lists(
    st.tuples(
        st.binary(min_size=0, max_size=20).map(lambda b: b"/" + b.hex().encode()),
        st.lists(st.binary(min_size=1, max_size=3000), max_size=4),
    ),
    min_size=1,
    max_size=6,
)


@each_codec
@_SETTINGS
@given(streams_strategy, st.lists(st.integers(0, 1 << 16), max_size=10))
def test_split_points_do_not_change_events(impl: str, streams: list, cuts: list[int]) -> None:
    data = _client_bytes(streams)
    whole = _feed(make_codec(CodecLimits(), impl), [data])
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert _feed(make_codec(CodecLimits(), impl), chunks) == whole
    assert len([e for e in whole if type(e).__name__ == "RequestHeaders"]) == len(streams)


@each_codec
def test_byte_by_byte_gives_the_same_events(impl: str) -> None:
    data = _client_bytes([(b"/a", [b"x" * 100, b"y" * 7]), (b"/b", []), (b"/c", [b"z"])])
    whole = _feed(make_codec(CodecLimits(), impl), [data])
    bytewise = [data[i : i + 1] for i in range(len(data))]
    assert _feed(make_codec(CodecLimits(), impl), bytewise) == whole
    assert len(whole) == 3 + 3


@each_codec
def test_preface_split_anywhere_is_accepted(impl: str) -> None:
    for cut in range(len(PREFACE) + 1):
        codec = make_codec(CodecLimits(), impl)
        assert _feed(codec, [PREFACE[:cut], PREFACE[cut:]]) == []
