"""Per-stream facts gathered along the way and rendered once into the access log."""

from __future__ import annotations


class StreamInfo:
    __slots__ = (
        "api_key_name",
        "attempts",
        "bytes_received",
        "bytes_sent",
        "end_s",
        "flags",
        "input_tokens",
        "method",
        "output_tokens",
        "path",
        "protocol",
        "request_id",
        "response_started_s",
        "route",
        "scenario",
        "start_s",
        "status",
        "upstream_host",
        "upstream_model",
        "upstream_provider",
    )

    def __init__(self, start_s: float, protocol: str) -> None:
        self.start_s = start_s
        self.protocol = protocol
        self.method = b""  # bytes as received; decoded only when a log line is written
        self.path = b""
        self.request_id = b""
        self.status = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.response_started_s = 0.0
        self.end_s = 0.0
        self.flags: list[str] = []
        self.upstream_provider = ""
        self.upstream_model = ""
        self.upstream_host = ""
        self.route = ""  # the route chosen: a scenario name, "alias:<name>" or "explicit"
        self.scenario = ""  # the rule that chose it
        self.attempts = 0  # upstream attempts made (fallbacks included)
        self.api_key_name = ""  # the downstream API key's configured name; never the key
        # Usage the provider reported for this request (-1: not reported); the limit
        # filter corrects its token and spend estimates with it when the stream ends.
        self.input_tokens = -1
        self.output_tokens = -1

    def add_flag(self, flag: str) -> None:
        if flag and flag not in self.flags:
            self.flags.append(flag)
