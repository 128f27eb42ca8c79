"""The announced streams of one downstream HTTP/2 connection, and their outbound flow control.

How this works: a stream enters the table when the codec announces it (RequestHeaders) and
leaves when both directions ended or either side reset it. Leaving releases everything at
once: queued response data is dropped, and received bytes the proxy had not acknowledged yet
are handed back to the *connection* window (the stream window no longer matters), so neither
memory nor window leaks with the stream.

Sending: ``send_data`` writes straight through h2 when the data fits the peer's windows and
one frame; otherwise the data joins the stream's queue (memoryviews, so slicing copies
nothing) and goes out in frames of at most min(window, max frame size) as WINDOW_UPDATE and
SETTINGS open room. END_STREAM rides on the last queued frame. ``flush`` serves blocked
streams in turn, moving a still-blocked stream to the back so none hogs the connection
window, and reports StreamDrained once a stream's queue is down to ``low_water``.
"""

from __future__ import annotations

from collections import deque

from h2.connection import H2Connection
from h2.exceptions import H2Error

from proxy.events import Event, StreamDrained
from proxy.headers import Headers
from proxy.protocol.http2_guard import H2AbuseGuard


class H2StreamState:
    """What the proxy was told about one stream and what waits to be sent on it."""

    __slots__ = (
        "batch",
        "body_bytes",
        "end_pending",
        "local_ended",
        "opened_at",
        "pending",
        "pending_bytes",
        "remote_ended",
        "response_started",
        "unacked",
    )

    def __init__(self, opened_at: float, remote_ended: bool, batch: int) -> None:
        self.opened_at = opened_at
        self.batch = batch  # the receive() call that announced it
        self.remote_ended = remote_ended
        self.local_ended = False
        self.response_started = False
        self.end_pending = False  # END_STREAM waits behind queued data
        self.pending: deque[memoryview] | None = None
        self.pending_bytes = 0
        self.body_bytes = 0
        self.unacked = 0  # flow-controlled bytes handed to the proxy, not yet acknowledged


class H2StreamTable:
    __slots__ = ("_blocked", "_conn", "_guard", "_low_water", "streams")

    def __init__(self, conn: H2Connection, guard: H2AbuseGuard, low_water: int) -> None:
        self._conn = conn
        self._guard = guard
        self._low_water = low_water
        self.streams: dict[int, H2StreamState] = {}
        self._blocked: dict[int, H2StreamState] = {}  # streams with queued data, in service order

    @property
    def has_blocked(self) -> bool:
        return bool(self._blocked)

    # -- lifecycle -------------------------------------------------------------------------

    def remote_end(self, sid: int, st: H2StreamState) -> None:
        st.remote_ended = True
        if st.local_ended:
            self.remove(sid, st)

    def local_end(self, sid: int, st: H2StreamState) -> None:
        st.local_ended = True
        if st.remote_ended:
            self.remove(sid, st)

    def remove(self, sid: int, st: H2StreamState) -> None:
        """Forget the stream, returning its unacknowledged window and dropping its queue."""
        self.streams.pop(sid, None)
        if st.unacked:
            self.ack(sid, st.unacked)
            st.unacked = 0
        self.drop_queue(sid, st)

    def drop_queue(self, sid: int, st: H2StreamState) -> None:
        if st.pending is not None:
            st.pending = None
            st.pending_bytes = 0
            self._blocked.pop(sid, None)

    def drop_all_queues(self) -> None:
        for sid, st in list(self._blocked.items()):
            self.drop_queue(sid, st)

    def ack(self, sid: int, nbytes: int) -> None:
        try:
            self._conn.acknowledge_received_data(nbytes, sid)
        except H2Error:
            return  # h2 state already gone: nothing left to reopen

    # -- the proxy's calls -----------------------------------------------------------------

    def acknowledge(self, sid: int, nbytes: int) -> None:
        st = self.streams.get(sid)
        if st is None or nbytes <= 0:
            return  # a removed stream returned its window already
        nbytes = min(nbytes, st.unacked)
        if nbytes:
            st.unacked -= nbytes
            self.ack(sid, nbytes)

    def pending_bytes(self, sid: int) -> int:
        st = self.streams.get(sid)
        return st.pending_bytes if st is not None else 0

    def send_headers(self, sid: int, block: Headers, end_stream: bool) -> None:
        st = self.streams.get(sid)
        if st is None or st.response_started:
            return  # reset meanwhile: the proxy learns it from the StreamReset event
        try:
            self._conn.send_headers(sid, block, end_stream=end_stream)
        except H2Error:
            self.remove(sid, st)
            return
        st.response_started = True
        if end_stream:
            self.local_end(sid, st)

    def send_data(self, sid: int, data: bytes, end_stream: bool) -> None:
        st = self.streams.get(sid)
        if st is None or st.local_ended or st.end_pending or not st.response_started:
            return  # reset meanwhile, or a proxy bug h2 would turn into DATA before HEADERS
        size = len(data)
        if st.pending:
            if size:
                st.pending.append(memoryview(data))
                st.pending_bytes += size
            st.end_pending = end_stream
            return
        conn = self._conn
        try:
            if size <= conn.max_outbound_frame_size and size <= conn.local_flow_control_window(sid):
                if size or end_stream:
                    conn.send_data(sid, data, end_stream=end_stream)
                    self._guard.data_frames_sent(1)
                    if end_stream:
                        self.local_end(sid, st)
                return
        except H2Error:
            self.remove(sid, st)
            return
        st.pending = deque((memoryview(data),))
        st.pending_bytes = size
        st.end_pending = end_stream
        self._blocked[sid] = st
        self._send_queued(sid, st)

    # -- flow control ----------------------------------------------------------------------

    def flush(self, out: list[Event]) -> None:
        """Windows opened: send what now fits, telling the proxy which streams have room."""
        conn = self._conn
        blocked = self._blocked
        for sid, st in list(blocked.items()):
            if conn.outbound_flow_control_window <= 0:
                break
            before = st.pending_bytes
            self._send_queued(sid, st)
            if st.pending_bytes == before:
                continue
            if st.pending_bytes <= self._low_water:
                out.append(StreamDrained(sid))
            if sid in blocked:
                del blocked[sid]
                blocked[sid] = st

    def _send_queued(self, sid: int, st: H2StreamState) -> None:
        conn = self._conn
        pending = st.pending
        if pending is None:
            return
        frames = 0
        try:
            max_frame = conn.max_outbound_frame_size
            while pending:
                window = conn.local_flow_control_window(sid)
                if window <= 0:
                    break
                head = pending[0]
                size = min(window, max_frame, len(head))
                if size == len(head):
                    pending.popleft()
                    chunk = head
                else:
                    pending[0] = head[size:]
                    chunk = head[:size]
                st.pending_bytes -= size
                conn.send_data(sid, chunk, end_stream=st.end_pending and not pending)
                frames += 1
        except H2Error:
            self.remove(sid, st)
            return
        finally:
            self._guard.data_frames_sent(frames)
        if not pending:
            st.pending = None
            del self._blocked[sid]
            if st.end_pending:
                self.local_end(sid, st)
