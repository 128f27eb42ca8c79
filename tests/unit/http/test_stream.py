"""Filter-chain iteration rules of ActiveStream, driven with small filters written here."""

from __future__ import annotations

from proxy.filters.api import DataStatus, Dialect, FilterCallbacks, HeadersStatus
from proxy.filters.body import JsonBodyFilter
from proxy.headers import Headers
from proxy.http.info import StreamInfo
from proxy.http.stream import ActiveStream, RequestInfo


class RecordingSink:
    def __init__(self) -> None:
        self.writes: list[tuple[str, object]] = []
        self.done: list[ActiveStream] = []
        self.acked = 0
        self.writable = True
        self.aborted: list[int] = []

    def write_headers(self, stream_id: int, status: int, headers: Headers, end: bool) -> None:
        self.writes.append(("headers", (status, list(headers), end)))

    def write_data(self, stream_id: int, data: bytes, end: bool) -> bool:
        self.writes.append(("data", (data, end)))
        return self.writable

    def stream_writable(self, stream_id: int) -> bool:
        return self.writable

    def abort_stream(self, stream_id: int) -> None:
        self.aborted.append(stream_id)

    def acknowledge(self, stream_id: int, nbytes: int) -> None:
        self.acked += nbytes

    def on_stream_done(self, stream: ActiveStream) -> None:
        self.done.append(stream)


class Recorder:
    """Records what it sees; optionally stops header iteration until told to continue."""

    def __init__(self, log: list[str], name: str, stop_headers: bool = False) -> None:
        self.log = log
        self.name = name
        self.stop_headers = stop_headers
        self.destroyed = 0

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self.cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        self.log.append(f"{self.name}:headers:{end_stream}")
        return HeadersStatus.STOP if self.stop_headers else HeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        self.log.append(f"{self.name}:data:{data.decode()}:{end_stream}")
        return DataStatus.CONTINUE

    def on_destroy(self) -> None:
        self.destroyed += 1


class Echo:
    """Terminal filter: answers with the body it got once the request ended."""

    def __init__(self) -> None:
        self.body = b""
        self.destroyed = 0

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self.cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        if end_stream:
            self.cb.send_response(200, [], b"")
        return HeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        self.body += data
        if end_stream:
            self.cb.encode_headers(200, [(b"content-type", b"text/plain")], False)
            self.cb.encode_data(self.body, True)
        return DataStatus.CONTINUE

    def on_destroy(self) -> None:
        self.destroyed += 1


def make_stream(sink: RecordingSink, decoders: list, dialect: Dialect = Dialect.ANTHROPIC):  # type: ignore[no-untyped-def, type-arg]
    req = RequestInfo(b"POST", b"/v1/messages", "/v1/messages", b"h", [], dialect)
    return ActiveStream(sink, 1, req, StreamInfo(0.0, "HTTP/1.1"), decoders, [])


def test_stop_in_headers_holds_later_filters_until_body_filter_lets_go() -> None:
    log: list[str] = []
    sink = RecordingSink()
    first, last = Recorder(log, "a"), Recorder(log, "z")
    body = JsonBodyFilter()
    echo = Echo()
    s = make_stream(sink, [first, body, last, echo])
    s.on_request_headers(False)
    assert log == ["a:headers:False"]
    s.on_request_data(b'{"x":', False)
    s.on_request_data(b"1}", True)
    # z sees the headers only after the body completed, then the whole body in one chunk.
    assert log == [
        "a:headers:False",
        'a:data:{"x"::False',
        "a:data:1}:True",
        "z:headers:False",
        'z:data:{"x":1}:True',
    ]
    assert s.request.body_json == {"x": 1}
    assert sink.writes[-1] == ("data", (b'{"x":1}', True))
    assert len(sink.done) == 1 and s.destroyed
    assert first.destroyed == last.destroyed == echo.destroyed == 1
    assert sink.acked == len(b'{"x":1}')


def test_invalid_json_gets_local_reply_in_client_dialect() -> None:
    sink = RecordingSink()
    echo = Echo()
    s = make_stream(sink, [JsonBodyFilter(), echo], Dialect.OPENAI)
    s.on_request_headers(False)
    s.on_request_data(b"{not json", True)
    status, _headers, end = sink.writes[0][1]  # type: ignore[misc]
    assert status == 400 and not end
    body = sink.writes[1][1][0]  # type: ignore[index]
    assert b'"error":{"message":"request body is not valid JSON' in body
    assert b'"type":"invalid_request_error"' in body
    assert echo.body == b""  # the terminal filter never saw the bad body
    assert s.destroyed


def test_async_continue_releases_buffered_body() -> None:
    log: list[str] = []

    class Waits(Recorder):
        def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
            self.log.append(f"{self.name}:data:{data.decode()}:{end_stream}")
            return DataStatus.STOP_AND_BUFFER

    sink = RecordingSink()
    waits = Waits(log, "w", stop_headers=True)
    echo = Echo()
    s = make_stream(sink, [waits, echo])
    s.on_request_headers(False)
    s.on_request_data(b"ab", False)
    s.on_request_data(b"cd", True)
    assert echo.body == b""
    s.continue_decoding()
    assert echo.body == b"abcd"
    assert sink.writes[-1] == ("data", (b"abcd", True))


def test_reset_destroys_once_and_flags_downstream_disconnect() -> None:
    sink = RecordingSink()
    echo = Echo()
    s = make_stream(sink, [echo])
    s.on_request_headers(False)
    s.on_reset()
    s.on_reset()
    assert echo.destroyed == 1 and sink.done == [s]
    assert "DC" in s.info.flags
