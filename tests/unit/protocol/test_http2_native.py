"""What the shared HTTP/2 suites do not reach in the native codec: its HPACK encoder and
decoder (checked against the hpack package's), its frame parser under any split of the input,
and the RFC 9113 error cases one by one."""

from __future__ import annotations

import struct

import pytest
from h2.errors import ErrorCodes
from h2.events import ResponseReceived
from h2.settings import SettingCodes
from hpack import Decoder, Encoder
from hpack.exceptions import HPACKError
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable
from hyperframe.frame import (
    ContinuationFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import DownstreamProtocolError
from proxy.events import Event, RequestData, RequestHeaders, StreamReset
from proxy.protocol.factory import make_server_codec
from proxy.protocol.http2 import H2ServerCodec
from proxy.protocol.http2_hpack import (
    STATIC_TABLE,
    HeaderListTooLarge,
    HpackDecoder,
    HpackError,
    encode_field,
    encode_status,
    huffman_decode,
)
from proxy.protocol.http2_native import NativeH2ServerCodec
from proxy.protocol.limits import CodecLimits

from .test_http2_support import GET, RawClient, of_type, open_peer, parse_frames, post

# ---- HPACK encoder --------------------------------------------------------------------------


def test_static_table_is_rfc_7541_appendix_a() -> None:
    assert tuple(HeaderTable.STATIC_TABLE) == STATIC_TABLE


def _decode(block: bytearray) -> list[tuple[bytes, bytes]]:
    decoder = Decoder(max_header_list_size=1 << 24)
    return [(bytes(n), bytes(v)) for n, v in decoder.decode(bytes(block), raw=True)]


names = st.one_of(
    st.sampled_from([n for n, _ in STATIC_TABLE if not n.startswith(b":")]),
    st.binary(min_size=1, max_size=300).map(bytes.lower),
)
values = st.one_of(
    st.sampled_from([v for _, v in STATIC_TABLE]), st.binary(max_size=300), st.just(b"x" * 5000)
)


@settings(max_examples=300, deadline=None)
@given(st.integers(100, 999), st.lists(st.tuples(names, values), max_size=20))
def test_encoded_blocks_decode_to_the_same_fields(status: int, fields: list) -> None:
    block = bytearray()
    encode_status(block, status)
    for name, value in fields:
        encode_field(block, name, value)
    assert _decode(block) == [(b":status", b"%d" % status), *fields]


def test_static_matches_are_one_byte_and_nothing_is_indexed() -> None:
    block = bytearray()
    encode_status(block, 200)
    encode_field(block, b"accept-encoding", b"gzip, deflate")
    assert block == b"\x88\x90"
    block = bytearray()
    encode_field(block, b"content-type", b"application/json")
    assert block[:2] == b"\x0f\x10"  # literal without indexing, static name 31 (15 + 16)
    decoder = Decoder()
    decoder.decode(bytes(block), raw=True)
    assert len(decoder.header_table.dynamic_entries) == 0


# ---- HPACK decoder --------------------------------------------------------------------------

any_fields = st.lists(
    st.tuples(st.one_of(names, st.sampled_from([b":path", b":method"])), values), max_size=12
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(any_fields, st.booleans()), min_size=1, max_size=6), st.integers(0, 4))
def test_decoder_agrees_with_hpack_across_blocks(blocks: list, resize: int) -> None:
    """Blocks from hpack's Encoder (Huffman or not, dynamic table in use, evictions, a size
    update) decode as hpack's Decoder decodes them, with the same table size after each."""
    encoder = Encoder()
    reference = Decoder(max_header_list_size=1 << 20)
    ours = HpackDecoder(1 << 20)
    for i, (fields, huffman) in enumerate(blocks):
        if i == 1 and resize:
            encoder.header_table_size = 1024 * resize - 1024  # 0, 1024, 2048 or 3072
        block = encoder.encode(fields, huffman=huffman)
        expected = [(bytes(n), bytes(v)) for n, v in reference.decode(block, raw=True)]
        assert ours.decode(block) == expected
        entries = reference.header_table.dynamic_entries
        assert ours.table_size == sum(32 + len(n) + len(v) for n, v in entries)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_huffman_round_trip(data: bytes) -> None:
    assert huffman_decode(HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(data)) == data


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60))
def test_decoder_fails_only_with_hpack_errors(block: bytes) -> None:
    try:
        expected = [(bytes(n), bytes(v)) for n, v in Decoder().decode(block, raw=True)]
    except (HPACKError, IndexError, ValueError):
        expected = None
    try:
        got = HpackDecoder(1 << 16).decode(block)
    except HpackError:
        got = None
    if expected is not None:
        assert got == expected


@pytest.mark.parametrize(
    "block",
    [
        b"\x80",  # index 0
        b"\xbe",  # index 62 with an empty dynamic table
        b"\x00\x85\xff\xff\xff\xff\xff\x00",  # EOS inside a Huffman string
        b"\x00\x81\x00\x00",  # Huffman padding of zeros
        b"\x00\x82\xff\xff\x00",  # 16 bits of padding (more than 7)
        b"\x3f\xe2\x1f",  # table size 4096 + 1 > allowed
        b"\x82\x20",  # size update after a field
        b"\x7f\xff\xff\xff\xff\xff\x7f",  # an integer beyond 2^32
        b"\x00\x05ab",  # truncated string
        b"\xff",  # truncated integer
    ],
)
def test_decoder_errors(block: bytes) -> None:
    with pytest.raises(HpackError):
        HpackDecoder(1 << 16).decode(block)


def test_header_list_limit_stops_a_bomb_early() -> None:
    decoder = HpackDecoder(4096)
    literal = b"\x40\x06x-bomb\x7f\x81\x1f" + b"a" * 4000  # added to the table
    with pytest.raises(HeaderListTooLarge):
        decoder.decode(literal + b"\xbe" * 100_000)


# ---- the frame parser under any split -------------------------------------------------------


def _native(limits: CodecLimits | None = None) -> tuple[NativeH2ServerCodec, RawClient]:
    codec = NativeH2ServerCodec(limits or CodecLimits())
    raw = RawClient()
    assert codec.receive(raw.preface() + raw.settings_ack(), 0.0) == []
    codec.data_to_send()
    return codec, raw


def _mixed_traffic(raw: RawClient) -> bytes:
    """Every frame type the parser handles on its normal path, padding and CONTINUATION too."""
    block = raw.block(post(extra=[(b"x-big", b"v" * 600)]))
    return b"".join(
        [
            raw.ping(),
            raw.priority(1),
            raw.raw_headers(1, block[:100], []),
            raw.continuation(1, block[100:300]),
            raw.continuation(1, block[300:], end_headers=True),
            raw.data(1, b"a" * 50, pad=20),
            raw.headers(3, GET),
            raw.settings({0x4: 100_000, 0x99: 5}),
            raw.window_update(0, 1000),
            raw.window_update(1, 1000),
            b"\x00\x00\x03\x20\x00\x00\x00\x00\x01abc",  # an unknown frame type
            raw.data(1, b"b" * 3000),
            raw.headers(1, [(b"x-trailer", b"1")], end_stream=True),
            raw.headers(5, post(), end_stream=False),
            raw.rst(5),
        ]
    )


def _feed(codec: NativeH2ServerCodec, chunks: list[bytes]) -> tuple[list[Event], bytes]:
    events: list[Event] = []
    for chunk in chunks:
        events += codec.receive(chunk, 0.0)
    return events, codec.data_to_send()


def test_mixed_traffic_gives_the_expected_events() -> None:
    codec, raw = _native()
    events, sent = _feed(codec, [_mixed_traffic(raw)])
    assert [type(e) for e in events] == [
        RequestHeaders,
        RequestData,
        RequestHeaders,
        RequestData,
        RequestData,
    ]
    assert events[1] == RequestData(1, b"a" * 50, False)
    assert events[4] == RequestData(1, b"", True)
    frames = parse_frames(sent)
    pings = of_type(frames, PingFrame)
    assert [(p.opaque_data, "ACK" in p.flags) for p in pings] == [(b"12345678", True)]
    assert len(of_type(frames, SettingsFrame)) == 1  # the ACK
    # Stream 5 opened and reset in the same read: the proxy never hears of it.
    assert codec.open_streams == 2  # 1 and 3 wait for their answers; 5 is gone


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6000), max_size=12))
def test_any_split_gives_the_same_events_and_bytes(cuts: list[int]) -> None:
    codec, raw = _native()
    data = _mixed_traffic(raw)
    whole = _feed(codec, [data])
    # Stream 5's open and reset may now land in different reads: compare without it.
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    codec2, _ = _native()
    split = _feed(codec2, chunks)
    assert [e for e in split[0] if getattr(e, "stream_id", 0) != 5] == whole[0]
    bytewise = _feed(_native()[0], [data[i : i + 1] for i in range(len(data))])
    assert [e for e in bytewise[0] if getattr(e, "stream_id", 0) != 5] == whole[0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 50))
def test_arbitrary_bytes_after_the_preface_parse_or_fail_cleanly(data: bytes, cut: int) -> None:
    codec, _ = _native()
    try:
        for i in range(0, len(data), cut):
            codec.receive(data[i : i + cut], 0.0)
    except DownstreamProtocolError as exc:
        assert "internal" not in str(exc), repr(exc.__cause__)
        assert isinstance(parse_frames(codec.data_to_send())[-1], GoAwayFrame)
        assert not codec.keep_alive
    else:
        parse_frames(codec.data_to_send())


# ---- RFC 9113 error cases -------------------------------------------------------------------


def _frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload
    )


def _open(raw: RawClient) -> bytes:
    return raw.headers(1, post(), end_stream=False)


CONNECTION_ERRORS = {
    "PUSH_PROMISE": (lambda r: _frame(0x5, 0x4, 1, bytes(4)), ErrorCodes.PROTOCOL_ERROR),
    "DATA on stream 0": (lambda r: _frame(0x0, 0, 0, b"x"), ErrorCodes.PROTOCOL_ERROR),
    "HEADERS on stream 0": (
        lambda r: _frame(0x1, 0x5, 0, r.block(GET)),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "HEADERS on an even stream": (lambda r: r.headers(2, GET), ErrorCodes.PROTOCOL_ERROR),
    "decreasing stream id": (
        lambda r: r.headers(5, GET) + r.headers(3, GET),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "DATA on an idle stream": (lambda r: r.data(1, b"x"), ErrorCodes.PROTOCOL_ERROR),
    "RST_STREAM on an idle stream": (lambda r: r.rst(1), ErrorCodes.PROTOCOL_ERROR),
    "WINDOW_UPDATE on an idle stream": (
        lambda r: r.window_update(1, 1),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "connection window overflow": (
        lambda r: r.window_update(0, 2**31 - 1),
        ErrorCodes.FLOW_CONTROL_ERROR,
    ),
    "WINDOW_UPDATE of 0": (lambda r: r.window_update(0, 0), ErrorCodes.PROTOCOL_ERROR),
    "ENABLE_PUSH 2": (lambda r: r.settings({0x2: 2}), ErrorCodes.PROTOCOL_ERROR),
    "INITIAL_WINDOW_SIZE 2^31": (
        lambda r: r.settings({0x4: 2**31}),
        ErrorCodes.FLOW_CONTROL_ERROR,
    ),
    "MAX_FRAME_SIZE too small": (lambda r: r.settings({0x5: 16383}), ErrorCodes.PROTOCOL_ERROR),
    "MAX_FRAME_SIZE too large": (lambda r: r.settings({0x5: 2**24}), ErrorCodes.PROTOCOL_ERROR),
    "SETTINGS not a multiple of 6": (
        lambda r: _frame(0x4, 0, 0, bytes(5)),
        ErrorCodes.FRAME_SIZE_ERROR,
    ),
    "SETTINGS on a stream": (lambda r: _frame(0x4, 0, 1, b""), ErrorCodes.PROTOCOL_ERROR),
    "SETTINGS ACK with a payload": (
        lambda r: _frame(0x4, 0x1, 0, bytes(6)),
        ErrorCodes.FRAME_SIZE_ERROR,
    ),
    "PING of 7 bytes": (lambda r: _frame(0x6, 0, 0, bytes(7)), ErrorCodes.FRAME_SIZE_ERROR),
    "PING on a stream": (lambda r: _frame(0x6, 0, 1, bytes(8)), ErrorCodes.PROTOCOL_ERROR),
    "RST_STREAM of 3 bytes": (
        lambda r: _open(r) + _frame(0x3, 0, 1, bytes(3)),
        ErrorCodes.FRAME_SIZE_ERROR,
    ),
    "WINDOW_UPDATE of 3 bytes": (
        lambda r: _frame(0x8, 0, 0, b"\x00\x00\x01"),
        ErrorCodes.FRAME_SIZE_ERROR,
    ),
    "PRIORITY of 4 bytes": (lambda r: _frame(0x2, 0, 1, bytes(4)), ErrorCodes.FRAME_SIZE_ERROR),
    "PRIORITY on stream 0": (lambda r: _frame(0x2, 0, 0, bytes(5)), ErrorCodes.PROTOCOL_ERROR),
    "GOAWAY on a stream": (lambda r: _frame(0x7, 0, 1, bytes(8)), ErrorCodes.PROTOCOL_ERROR),
    "CONTINUATION without HEADERS": (
        lambda r: r.continuation(1, b"\x82", end_headers=True),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "PING inside a header block": (
        lambda r: r.raw_headers(1, r.block(GET), []) + r.ping(),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "CONTINUATION of another stream": (
        lambda r: r.raw_headers(1, r.block(GET), []) + r.continuation(3, b"", end_headers=True),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "padding longer than the frame": (
        lambda r: _open(r) + _frame(0x0, 0x8, 1, b"\x05abc"),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "undecodable HPACK": (
        lambda r: r.raw_headers(1, b"\xff\xff\xff\xff", ["END_HEADERS"]),
        ErrorCodes.COMPRESSION_ERROR,
    ),
    "trailers without END_STREAM": (
        lambda r: _open(r) + r.headers(1, [(b"x-t", b"1")], end_stream=False),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "DATA on a stream that closed normally": (
        lambda r: r.headers(1, GET),  # answered below, then DATA follows
        ErrorCodes.STREAM_CLOSED,
    ),
    "DATA beyond the stream window": (
        lambda r: _open(r) + r.data(1, b"x" * 16384) * 16 + r.data(1, b"x"),
        ErrorCodes.FLOW_CONTROL_ERROR,
    ),
    "frame after the client's GOAWAY": (
        lambda r: r.goaway() + r.ping(),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "stream depends on itself": (
        lambda r: _frame(0x2, 0, 1, b"\x00\x00\x00\x01\x10"),
        ErrorCodes.PROTOCOL_ERROR,
    ),
}


@pytest.mark.parametrize(("frames", "code"), CONNECTION_ERRORS.values(), ids=CONNECTION_ERRORS)
def test_connection_errors(frames, code: int) -> None:
    codec, raw = _native()
    data = frames(raw)
    with pytest.raises(DownstreamProtocolError):
        codec.receive(data, 0.0)
        # the one case that needs the stream answered first
        codec.send_headers(1, 204, [], True)
        codec.receive(raw.data(1, b"late"), 0.0)
    goaway = parse_frames(codec.data_to_send())[-1]
    assert isinstance(goaway, GoAwayFrame)
    assert goaway.error_code == code
    assert not codec.keep_alive
    with pytest.raises(DownstreamProtocolError):
        codec.receive(raw.ping(), 0.0)


def test_stream_window_overflow_resets_only_that_stream() -> None:
    codec, raw = _native()
    codec.receive(_open(raw), 0.0)
    events = codec.receive(raw.window_update(1, 2**31 - 1), 0.0)
    assert events == [StreamReset(1, ErrorCodes.FLOW_CONTROL_ERROR)]
    resets = of_type(parse_frames(codec.data_to_send()), RstStreamFrame)
    assert [(f.stream_id, f.error_code) for f in resets] == [(1, ErrorCodes.FLOW_CONTROL_ERROR)]
    assert codec.keep_alive


def test_frames_after_our_reset_are_ignored_and_their_window_returned() -> None:
    limits = CodecLimits(h2_max_concurrent_streams=1, h2_initial_connection_window=65535)
    codec, raw = _native(limits)
    codec.receive(_open(raw), 0.0)
    codec.receive(raw.headers(3, post(), end_stream=False), 0.0)  # refused
    codec.data_to_send()
    data = raw.data(3, b"x" * 16000) * 3 + raw.window_update(3, 5) + raw.rst(3)
    assert codec.receive(data, 0.0) == []
    updates = of_type(parse_frames(codec.data_to_send()), WindowUpdateFrame)
    assert [(f.stream_id, f.window_increment) for f in updates] == [(0, 48000)]
    assert codec.keep_alive


def test_frames_after_the_clients_reset_get_stream_closed() -> None:
    codec, raw = _native()
    codec.receive(_open(raw), 0.0)
    assert codec.receive(raw.rst(1), 0.0) == [StreamReset(1, ErrorCodes.CANCEL)]
    assert codec.receive(raw.data(1, b"x") + raw.window_update(1, 1), 0.0) == []
    resets = of_type(parse_frames(codec.data_to_send()), RstStreamFrame)
    assert [(f.stream_id, f.error_code) for f in resets] == [(1, ErrorCodes.STREAM_CLOSED)]
    assert codec.keep_alive


def test_priority_on_an_idle_stream_and_unknown_frames_are_ignored() -> None:
    codec, raw = _native()
    data = raw.priority(9) + _frame(0xFA, 0xFF, 0, b"ext") + raw.settings({0x4242: 1})
    assert codec.receive(data, 0.0) == []
    assert [e.stream_id for e in codec.receive(raw.headers(9, GET), 0.0)] == [9]


def test_initial_window_applies_when_the_client_acks_our_settings() -> None:
    codec = NativeH2ServerCodec(CodecLimits(h2_initial_stream_window=100_000))
    raw = RawClient()
    codec.receive(raw.preface() + _open(raw), 0.0)
    codec.receive(b"".join(raw.data(1, b"x" * 16384) for _ in range(3)), 0.0)  # 49152 of 65535
    codec.receive(raw.settings_ack(), 0.0)  # the window grows by 100000 - 65535
    events = codec.receive(b"".join(raw.data(1, b"x" * 16384) for _ in range(3)), 0.0)
    assert sum(len(e.data) for e in events if isinstance(e, RequestData)) == 49152


def test_peer_settings_move_open_windows_even_below_zero() -> None:
    peer = open_peer(client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    sid, _ = peer.request()
    codec = peer.codec
    codec.send_headers(sid, 200, [], False)
    codec.send_data(sid, b"d" * 1000, False)
    peer.down()
    peer.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 500})
    peer.up()
    peer.down()
    codec.send_data(sid, b"e" * 600, True)
    assert codec.pending_bytes(sid) == 600  # the window is -500
    peer.client.increment_flow_control_window(1000, stream_id=sid)
    peer.up()
    assert codec.pending_bytes(sid) == 100
    peer.client.increment_flow_control_window(100, stream_id=sid)
    peer.up()
    assert codec.pending_bytes(sid) == 0 and codec.idle


def test_large_response_headers_use_continuation_frames() -> None:
    peer = open_peer()
    sid, _ = peer.request()
    big = [(b"x-h%d" % i, b"v" * 2000) for i in range(20)]  # ~40 KB, more than 16 KiB
    peer.codec.send_headers(sid, 200, big, True)
    data = peer.codec.data_to_send()
    frames = parse_frames(data)
    assert [type(f) for f in frames] == [HeadersFrame, ContinuationFrame, ContinuationFrame]
    assert "END_HEADERS" in frames[-1].flags and "END_STREAM" in frames[0].flags
    got = peer.client.receive_data(data)
    assert isinstance(got[0], ResponseReceived)
    assert got[0].headers == [(b":status", b"200"), *big]


def test_a_smaller_header_table_gets_a_size_update() -> None:
    peer = open_peer(client_settings={SettingCodes.HEADER_TABLE_SIZE: 0})
    sid, _ = peer.request()
    peer.codec.send_headers(sid, 200, [(b"content-type", b"text/plain")], True)
    data = peer.codec.data_to_send()
    assert data[9] == 0x20  # the block starts with a dynamic table size update to 0
    got = peer.client.receive_data(data)
    assert got[0].headers == [(b":status", b"200"), (b"content-type", b"text/plain")]


def test_hpack_state_follows_blocks_of_refused_streams() -> None:
    # The dynamic table must take in every block, even of a stream that is refused.
    codec, _ = _native(CodecLimits(h2_max_concurrent_streams=1))
    encoder = Encoder()
    fields = [*GET, (b"x-session", b"abc123")]

    def headers(sid: int) -> bytes:
        block = encoder.encode(fields)
        return HeadersFrame(sid, block, flags=["END_HEADERS"]).serialize()

    codec.receive(headers(1) + headers(3), 0.0)  # 3 is refused, its block decoded all the same
    codec.reset_stream(1)
    events = codec.receive(headers(5), 0.0)
    assert events[0].headers == [(b"x-session", b"abc123")]


def test_factory_picks_the_configured_codec() -> None:
    limits = CodecLimits()
    assert isinstance(make_server_codec("h2", "auto", limits), NativeH2ServerCodec)
    assert isinstance(make_server_codec("h2", "auto", limits, "native"), NativeH2ServerCodec)
    assert isinstance(make_server_codec("h2", "auto", limits, "h2"), H2ServerCodec)
    with pytest.raises(ValueError, match="HTTP/2 implementation"):
        make_server_codec("h2", "auto", limits, "nghttp2")  # type: ignore[arg-type]


def test_settings_frame_is_well_formed() -> None:
    sent = NativeH2ServerCodec(CodecLimits()).data_to_send()
    assert sent[:9] == struct.pack(">I", 30)[1:] + b"\x04\x00" + bytes(4)
