"""The HTTP/2 server codecs (native and h2): handshake, requests and responses, flow
control, drain (sans I/O, driven by a real h2 client)."""

from __future__ import annotations

import tracemalloc

import pytest
from h2.errors import ErrorCodes
from h2.events import (
    DataReceived,
    ResponseReceived,
    StreamEnded,
)
from h2.events import (
    StreamReset as H2StreamReset,
)
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame

from proxy.errors import DownstreamProtocolError
from proxy.events import (
    ConnectionTerminated,
    RequestData,
    RequestHeaders,
    StreamDrained,
    StreamReset,
)
from proxy.protocol.codec import ServerCodec
from proxy.protocol.limits import CodecLimits

from .test_http2_support import (
    GET,
    Peer,
    implementation,
    make_codec,
    of_type,
    open_peer,
    parse_frames,
    post,
    raw_codec,
)

__all__ = ["implementation"]
pytestmark = pytest.mark.usefixtures("implementation")


def test_satisfies_the_server_codec_protocol() -> None:
    codec: ServerCodec = make_codec()
    assert codec.alpn == "h2"
    assert codec.send_error_response(400, [], b"") is False


def test_handshake_advertises_the_limits() -> None:
    limits = CodecLimits(
        h2_max_concurrent_streams=37,
        max_header_bytes=12345,
        h2_initial_stream_window=100_000,
        h2_initial_connection_window=2_000_000,
    )
    peer = Peer(limits)
    frames = parse_frames(peer.codec.data_to_send())
    assert isinstance(frames[0], SettingsFrame)
    expected = {
        SettingCodes.ENABLE_PUSH: 0,
        SettingCodes.MAX_CONCURRENT_STREAMS: 37,
        SettingCodes.INITIAL_WINDOW_SIZE: 100_000,
        SettingCodes.MAX_HEADER_LIST_SIZE: 12345,
        SettingCodes.MAX_FRAME_SIZE: 16384,
    }
    assert {k: frames[0].settings.get(k) for k in expected} == expected
    assert isinstance(frames[1], WindowUpdateFrame)
    assert (frames[1].stream_id, frames[1].window_increment) == (0, 2_000_000 - 65535)
    assert len(frames) == 2


def test_client_sees_settings_and_connection_window() -> None:
    peer = open_peer()
    remote = peer.client.remote_settings
    assert remote.max_concurrent_streams == 100
    assert remote.initial_window_size == 256 * 1024
    assert remote.max_header_list_size == 64 * 1024
    assert peer.client.outbound_flow_control_window == 1024 * 1024


def test_simple_request_response() -> None:
    peer = open_peer()
    sid, events = peer.request()
    assert events == [
        RequestHeaders(sid, b"GET", b"/v1/models", b"api.example.com", [], True, False, None)
    ]
    assert not peer.codec.idle and peer.codec.receiving == "body" and peer.codec.pipelined == 1
    peer.codec.send_headers(sid, 200, [(b"content-type", b"application/json")], False)
    peer.codec.send_data(sid, b'{"ok":true}', True)
    got = peer.down()
    assert isinstance(got[0], ResponseReceived)
    assert got[0].headers == [(b":status", b"200"), (b"content-type", b"application/json")]
    assert isinstance(got[1], DataReceived) and got[1].data == b'{"ok":true}'
    assert isinstance(got[2], StreamEnded)
    assert peer.codec.idle and peer.codec.keep_alive and peer.codec.receiving == "idle"


def test_post_with_body_host_header_and_content_length() -> None:
    peer = open_peer()
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":path", b"/v1/messages?beta=true"),
        (b"host", b"localhost:8080"),
        (b"content-length", b"5"),
        (b"x-api-key", b"k"),
    ]
    sid, events = peer.request(headers, b"hello")
    assert events == [
        RequestHeaders(
            sid,
            b"POST",
            b"/v1/messages?beta=true",
            b"localhost:8080",
            [(b"host", b"localhost:8080"), (b"content-length", b"5"), (b"x-api-key", b"k")],
            False,
            False,
            5,
        ),
        RequestData(sid, b"hello", True),
    ]


def test_trailers_end_the_body_and_are_dropped() -> None:
    peer = open_peer()
    sid = peer.client.get_next_available_stream_id()
    peer.client.send_headers(sid, post(), end_stream=False)
    peer.client.send_data(sid, b"abc")
    peer.client.send_headers(sid, [(b"x-checksum", b"1")], end_stream=True)
    events = peer.up()
    assert events[1:] == [RequestData(sid, b"abc", False), RequestData(sid, b"", True)]


def test_split_cookies_are_joined() -> None:
    peer = open_peer()
    _, events = peer.request([*GET, (b"cookie", b"a=1"), (b"x", b"y"), (b"cookie", b"b=2")])
    assert events[0].headers == [(b"cookie", b"a=1; b=2"), (b"x", b"y")]


def test_connection_specific_response_headers_are_filtered() -> None:
    peer = open_peer()
    sid, _ = peer.request()
    peer.codec.send_headers(
        sid,
        200,
        [(b"connection", b"close"), (b"transfer-encoding", b"chunked"), (b"X-Trace", b"1")],
        True,
    )
    got = peer.down()  # the h2 client validates what it receives
    assert got[0].headers == [(b":status", b"200"), (b"x-trace", b"1")]


def test_fifty_interleaved_streams() -> None:
    peer = open_peer()
    sids = []
    for i in range(50):
        sid = peer.client.get_next_available_stream_id()
        peer.client.send_headers(sid, post(f"/s/{i}".encode()), end_stream=False)
        sids.append(sid)
    for part in range(3):
        for sid in sids:
            peer.client.send_data(sid, f"{sid}:{part};".encode(), end_stream=part == 2)
    events = peer.up()
    bodies: dict[int, bytes] = {}
    for ev in events:
        if isinstance(ev, RequestData):
            bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
    assert bodies == {s: f"{s}:0;{s}:1;{s}:2;".encode() for s in sids}
    assert [e.path for e in events if isinstance(e, RequestHeaders)] == [
        f"/s/{i}".encode() for i in range(50)
    ]
    for sid in reversed(sids):  # answer in reverse order
        peer.codec.send_headers(sid, 200, [], False)
        peer.codec.send_data(sid, str(sid).encode(), True)
    answers = {e.stream_id: e.data for e in peer.down() if isinstance(e, DataReceived)}
    assert answers == {s: str(s).encode() for s in sids}
    assert peer.codec.idle


def test_request_window_reopens_only_when_the_proxy_acknowledges() -> None:
    peer = open_peer(CodecLimits(h2_initial_stream_window=65535))
    sid = peer.client.get_next_available_stream_id()
    peer.client.send_headers(sid, post(), end_stream=False)
    window = peer.client.local_flow_control_window(sid)
    assert window == 65535
    for _ in range(4):  # fill the stream window
        peer.client.send_data(sid, b"x" * 16383)
    peer.client.send_data(sid, b"x" * (window - 4 * 16383))
    events = peer.up()
    assert sum(len(e.data) for e in events if isinstance(e, RequestData)) == window
    peer.down()
    assert peer.client.local_flow_control_window(sid) == 0  # nothing acknowledged yet
    peer.codec.acknowledge_received(sid, 1000)  # below h2's update threshold
    peer.down()
    assert peer.client.local_flow_control_window(sid) == 0
    peer.codec.acknowledge_received(sid, window - 1000)
    peer.down()
    assert peer.client.local_flow_control_window(sid) == window


def test_padding_is_acknowledged_at_once() -> None:
    peer = open_peer(CodecLimits(h2_initial_stream_window=65535))
    sid = peer.client.get_next_available_stream_id()
    peer.client.send_headers(sid, post(), end_stream=False)
    for _ in range(4):
        peer.client.send_data(sid, b"y" * 16000, pad_length=200)
    events = peer.up()
    received = sum(len(e.data) for e in events if isinstance(e, RequestData))
    assert received == 64000
    peer.codec.acknowledge_received(sid, received)
    peer.down()
    # 4 * (16000 + 201) flow-controlled bytes were consumed and all of them came back.
    assert peer.client.local_flow_control_window(sid) == 65535


def test_unacknowledged_window_returns_to_the_connection_on_reset() -> None:
    peer = open_peer(CodecLimits(h2_initial_connection_window=65535))
    sid = peer.client.get_next_available_stream_id()
    peer.client.send_headers(sid, post(), end_stream=False)
    for _ in range(3):
        peer.client.send_data(sid, b"z" * 16000)
    peer.up()
    peer.down()
    assert peer.client.outbound_flow_control_window == 65535 - 48000
    peer.codec.reset_stream(sid)  # the proxy never acknowledged the body
    peer.codec.acknowledge_received(sid, 48000)  # late: ignored, the reset returned it
    peer.down()
    assert peer.client.outbound_flow_control_window == 65535


def test_send_flow_control_queues_and_drains() -> None:
    peer = open_peer(client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 100})
    sid, _ = peer.request()
    codec = peer.codec
    codec.send_headers(sid, 200, [], False)
    codec.send_data(sid, b"a" * 1000, False)
    codec.send_data(sid, b"b" * 500, True)
    got = peer.down()
    assert sum(len(e.data) for e in got if isinstance(e, DataReceived)) == 100
    assert codec.pending_bytes(sid) == 1400
    assert not any(isinstance(e, StreamEnded) for e in got)
    peer.client.increment_flow_control_window(700, stream_id=sid)
    events = peer.up()
    assert events == [StreamDrained(sid)]
    assert codec.pending_bytes(sid) == 700
    got = peer.down()
    assert [len(e.data) for e in got if isinstance(e, DataReceived)] == [700]
    peer.client.increment_flow_control_window(5000, stream_id=sid)
    assert peer.up() == [StreamDrained(sid)]
    got = peer.down()
    data = b"".join(e.data for e in got if isinstance(e, DataReceived))
    assert data == b"a" * 200 + b"b" * 500
    assert isinstance(got[-1], StreamEnded)
    assert codec.pending_bytes(sid) == 0 and codec.idle


def test_connection_window_is_shared_fairly_and_frames_respect_max_size() -> None:
    peer = open_peer(client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    codec = peer.codec
    sids = [peer.request()[0] for _ in range(2)]
    for sid in sids:
        codec.send_headers(sid, 200, [], False)
        codec.send_data(sid, b"q" * 60000, True)
    frames = parse_frames(codec.data_to_send())
    data_frames = [f for f in frames if f.type == 0]
    assert max(len(f.data) for f in data_frames) <= 16384
    assert sum(len(f.data) for f in data_frames) == 65535  # the connection window
    assert codec.pending_bytes(sids[0]) + codec.pending_bytes(sids[1]) == 120000 - 65535
    peer.client.increment_flow_control_window(1 << 20)
    peer.up()
    assert codec.pending_bytes(sids[0]) == codec.pending_bytes(sids[1]) == 0
    assert codec.idle


def test_window_raised_by_settings_drains_queues() -> None:
    peer = open_peer(client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 10})
    sid, _ = peer.request()
    peer.codec.send_headers(sid, 200, [], False)
    peer.codec.send_data(sid, b"s" * 100, True)
    peer.down()
    assert peer.codec.pending_bytes(sid) == 90
    peer.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    assert peer.up() == [StreamDrained(sid)]
    assert peer.codec.pending_bytes(sid) == 0
    assert isinstance(peer.down()[-1], StreamEnded)


def test_stalled_client_holds_exactly_what_it_was_given() -> None:
    peer = open_peer(client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
    codec = peer.codec
    sids = [peer.request()[0] for _ in range(20)]
    for sid in sids:
        codec.send_headers(sid, 200, [], False)
        for _ in range(4):
            codec.send_data(sid, b"r" * 10000, False)
    peer.down()
    assert [codec.pending_bytes(s) for s in sids] == [40000] * 20
    for sid in sids[:10]:
        codec.reset_stream(sid)  # the proxy's stream idle timer gave up
    peer.client.reset_stream(sids[10], ErrorCodes.CANCEL)  # and the client cancels one
    events = peer.up()
    assert events == [StreamReset(sids[10], ErrorCodes.CANCEL)]
    assert [codec.pending_bytes(s) for s in sids] == [0] * 11 + [40000] * 9
    frames = parse_frames(codec.data_to_send())
    resets = of_type(frames, RstStreamFrame)
    assert {f.stream_id for f in resets} == set(sids[:10])
    assert {f.error_code for f in resets} == {ErrorCodes.CANCEL}
    codec.send_data(sids[0], b"late", True)  # after the reset: silently dropped
    assert codec.pending_bytes(sids[0]) == 0 and codec.open_streams == 9


def test_send_after_client_reset_is_ignored() -> None:
    peer = open_peer()
    sid, _ = peer.request(post(), b"{}")
    peer.client.reset_stream(sid, ErrorCodes.CANCEL)
    assert peer.up() == [StreamReset(sid, ErrorCodes.CANCEL)]
    peer.codec.send_headers(sid, 429, [], False)
    peer.codec.send_data(sid, b"too many", True)
    assert peer.codec.data_to_send() == b""
    assert peer.codec.idle


def test_over_concurrency_limit_is_refused() -> None:
    codec, raw = raw_codec(CodecLimits(h2_max_concurrent_streams=3))
    data = b"".join(raw.headers(sid, GET) for sid in (1, 3, 5, 7))
    events = codec.receive(data, 0.0)
    assert [e.stream_id for e in events] == [1, 3, 5]
    resets = of_type(parse_frames(codec.data_to_send()), RstStreamFrame)
    assert [(f.stream_id, f.error_code) for f in resets] == [(7, ErrorCodes.REFUSED_STREAM)]
    codec.send_headers(1, 204, [], True)
    assert [e.stream_id for e in codec.receive(raw.headers(9, GET), 0.1)] == [9]


def test_hundred_and_one_streams_with_real_client() -> None:
    peer = open_peer()
    peer.client.remote_settings.max_concurrent_streams = 1000  # let the client overstep
    peer.client.remote_settings.acknowledge()
    events = []
    for _ in range(101):
        sid = peer.client.get_next_available_stream_id()
        peer.client.send_headers(sid, GET, end_stream=True)
        events += peer.up()
    assert len(events) == 100 and peer.codec.open_streams == 100
    got = peer.down()
    refused = [e for e in got if isinstance(e, H2StreamReset)]
    assert [(e.stream_id, e.error_code) for e in refused] == [(201, ErrorCodes.REFUSED_STREAM)]


def test_drain_sends_goaway_and_refuses_later_streams() -> None:
    codec, raw = raw_codec()
    codec.receive(raw.headers(1, GET) + raw.headers(3, post(), end_stream=False), 0.0)
    codec.data_to_send()
    codec.start_drain()
    codec.start_drain()  # idempotent
    goaways = of_type(parse_frames(codec.data_to_send()), GoAwayFrame)
    assert [(g.last_stream_id, g.error_code) for g in goaways] == [(3, 0)]
    assert codec.keep_alive
    events = codec.receive(raw.headers(5, GET) + raw.data(3, b"body", end_stream=True), 0.1)
    assert events == [RequestData(3, b"body", True)]  # stream 5 produced no event
    resets = of_type(parse_frames(codec.data_to_send()), RstStreamFrame)
    assert [(f.stream_id, f.error_code) for f in resets] == [(5, ErrorCodes.REFUSED_STREAM)]
    codec.send_headers(1, 200, [], True)
    assert codec.keep_alive and not codec.idle
    codec.send_headers(3, 200, [], False)
    codec.send_data(3, b"done", True)
    assert codec.idle and not codec.keep_alive


def test_drain_goaway_precedes_the_answers_to_open_streams() -> None:
    # Frames are checked raw: h2's own client cannot take frames after a GOAWAY (h2 #1181).
    peer = open_peer()
    sid, _ = peer.request()
    peer.codec.start_drain()
    peer.codec.send_headers(sid, 200, [], False)
    peer.codec.send_data(sid, b"bye", True)
    frames = parse_frames(peer.codec.data_to_send())
    assert [type(f).__name__ for f in frames] == ["GoAwayFrame", "HeadersFrame", "DataFrame"]
    assert frames[0].last_stream_id == sid and frames[2].data == b"bye"
    assert "END_STREAM" in frames[2].flags
    assert not peer.codec.keep_alive and peer.codec.idle


def test_client_goaway() -> None:
    peer = open_peer()
    sid, _ = peer.request()
    peer.client.close_connection()
    assert peer.up() == [ConnectionTerminated(0, 0)]
    assert not peer.codec.keep_alive
    peer.codec.send_headers(sid, 200, [], True)  # h2 is closed: dropped, no exception


def test_bad_preface_is_a_connection_error() -> None:
    codec = make_codec()
    codec.data_to_send()
    with pytest.raises(DownstreamProtocolError):
        codec.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    frames = parse_frames(codec.data_to_send())
    assert isinstance(frames[-1], GoAwayFrame)
    assert frames[-1].error_code == ErrorCodes.PROTOCOL_ERROR
    assert not codec.keep_alive
    with pytest.raises(DownstreamProtocolError):
        codec.receive(b"more", 0.0)  # a failed codec stays failed


def test_stream_error_does_not_kill_the_connection() -> None:
    codec, raw = raw_codec()
    codec.receive(raw.headers(1, GET), 0.0)  # half-closed (remote)
    events = codec.receive(raw.data(1, b"late"), 0.0)  # DATA after END_STREAM
    assert events == [StreamReset(1, ErrorCodes.STREAM_CLOSED)]
    assert codec.keep_alive
    assert [e.stream_id for e in codec.receive(raw.headers(3, GET), 0.0)] == [3]


def test_request_body_over_the_limit_by_content_length_gets_413() -> None:
    peer = open_peer(CodecLimits(max_body_bytes=100))
    sid = peer.client.get_next_available_stream_id()
    peer.client.send_headers(sid, post(extra=[(b"content-length", b"101")]), end_stream=False)
    assert peer.up() == []
    got = peer.down()
    assert isinstance(got[0], ResponseReceived) and got[0].headers[0] == (b":status", b"413")
    assert b"request_too_large" in got[1].data
    assert isinstance(got[-1], H2StreamReset) and got[-1].error_code == ErrorCodes.NO_ERROR
    assert peer.codec.idle


def test_streamed_body_over_the_limit_is_cancelled() -> None:
    limits = CodecLimits(max_body_bytes=40000, h2_initial_connection_window=65535)
    peer = open_peer(limits)
    sid = peer.client.get_next_available_stream_id()
    peer.client.send_headers(sid, post(), end_stream=False)
    peer.client.send_data(sid, b"x" * 16000)
    peer.client.send_data(sid, b"x" * 16000)
    assert [type(e) for e in peer.up()] == [RequestHeaders, RequestData, RequestData]
    peer.client.send_data(sid, b"x" * 16000)
    assert peer.up() == [StreamReset(sid, ErrorCodes.NO_ERROR)]
    got = peer.down()
    responses = [e for e in got if isinstance(e, ResponseReceived)]
    assert responses[0].headers[0] == (b":status", b"413")
    assert peer.codec.idle
    # The proxy acknowledged nothing, yet the connection window came back with the stream.
    assert peer.client.outbound_flow_control_window == 65535


def test_too_many_headers_gets_431() -> None:
    peer = open_peer(CodecLimits(max_header_count=5))
    _, events = peer.request([*GET, *((f"x-{i}".encode(), b"v") for i in range(6))])
    assert events == []
    got = peer.down()
    assert got[0].headers[0] == (b":status", b"431")
    assert isinstance(got[-1], StreamEnded)


def test_reset_frees_the_queued_memory() -> None:
    peer = open_peer(client_settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
    codec = peer.codec
    sids = [peer.request()[0] for _ in range(20)]
    for sid in sids:
        codec.send_headers(sid, 200, [], False)
    peer.down()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for sid in sids:
            codec.send_data(sid, bytes(50_000), False)
        held, _ = tracemalloc.get_traced_memory()
        for sid in sids:
            codec.reset_stream(sid)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held - base >= 20 * 50_000  # the codec holds what it was given...
    assert held - base < 20 * 50_000 + 100_000  # ...and little more
    assert after - base < 50_000  # and lets go of it on reset
