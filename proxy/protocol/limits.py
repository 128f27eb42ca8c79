"""Named bounds the downstream codecs enforce. Built from the config by the server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CodecLimits:
    max_header_bytes: int = 64 * 1024  # request line + headers (H1) / decoded header list (H2)
    max_header_count: int = 100
    max_body_bytes: int = 32 * 1024 * 1024
    # HTTP/2
    h2_max_concurrent_streams: int = 100
    h2_initial_stream_window: int = 256 * 1024  # what we let a client send before we consume
    h2_initial_connection_window: int = 1024 * 1024
    h2_max_frame_size: int = 16384
    h2_max_pending_send_bytes: int = 256 * 1024  # per stream, held while the peer's window is shut
    # Rapid reset (CVE-2023-44487) and MadeYouReset (CVE-2025-8671): resets of streams that
    # lived less than premature_reset_lifetime_s, sent or received, once more than
    # premature_reset_min_streams streams were opened, may not exceed this fraction.
    h2_premature_reset_ratio: float = 0.5
    h2_premature_reset_min_streams: int = 100
    h2_premature_reset_lifetime_s: float = 1.0
    h2_max_control_frames_per_s: int = 1000  # PING, SETTINGS, empty DATA, WINDOW_UPDATE on 0
    h2_max_continuation_frames: int = 64
    h2_max_glitches: int = 100  # protocol misbehaviour the codec tolerated before GOAWAY
