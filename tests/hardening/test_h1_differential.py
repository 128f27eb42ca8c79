"""Differential test of the two HTTP/1.1 codecs (h11-based and llhttp via httptools): the same
generated and mutated requests must get the same verdict from both, or the disagreement must be
one of KNOWN_DISAGREEMENTS, each documented and justified in docs/security.md ("Codec
differences"). A smuggling bug needs two parsers that read one byte stream differently: a
proxy that ships two parsers has to prove they agree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proxy.errors import DownstreamProtocolError
from proxy.events import Event
from proxy.protocol.http1 import H11ServerCodec, HttptoolsServerCodec
from proxy.protocol.http1_common import Http1ServerCodecBase
from tests.property.test_http1_property import requests
from tests.unit.protocol.test_http1_support import make, merge

_SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))

# Smaller limits than the defaults so the size checks (431/413) are reached by small inputs.
_LIMITS = {"max_header_bytes": 512, "max_header_count": 12, "max_body_bytes": 256}


@dataclass(frozen=True)
class Outcome:
    verdict: str  # "error" or the codec's `receiving` state once every byte was read
    status: int  # the error's HTTP status; 0 when there was no error
    events: tuple[Event, ...]


def outcome(cls: type[Http1ServerCodecBase], data: bytes, piece: int | None = None) -> Outcome:
    codec = make(cls, **_LIMITS)
    events: list[Event] = []
    pieces = [data] if piece is None else [data[i : i + piece] for i in range(0, len(data), piece)]
    try:
        for p in pieces:
            events += codec.receive(p, 0.0)
    except DownstreamProtocolError as exc:
        return Outcome("error", exc.status, tuple(merge(events)))
    return Outcome(codec.receiving, 0, tuple(merge(events)))


def _early_chunk_check(
    data: bytes, first: Outcome, late: Outcome, first_cls: type, late_cls: type
) -> bool:
    """llhttp checks each byte of a chunk-size line, chunk extension or trailer as it arrives;
    the h11 codec checks such a line once its CRLF is there. So on a prefix that ends inside a
    bad line, one has already rejected while the other still waits in the body. Harmless only
    if the waiting one rejects that same line once it is terminated: checked here, not assumed.
    """
    if late.verdict != "body" or first.verdict != "error":
        return False
    # Nothing of the message the first one rejected may have been delivered as complete. What
    # it delivered before rejecting is read from a byte-by-byte run: fed whole, the events of
    # earlier pipelined messages in the read that raised are lost with the exception.
    delivered = len(outcome(first_cls, data, 1).events)
    if any(getattr(e, "end_stream", False) for e in late.events[delivered:]):
        return False
    return any(outcome(late_cls, data + tail).verdict == "error" for tail in (b"\r\n", b"\r\n\r\n"))


def _reject_status_only(a: Outcome, b: Outcome) -> bool:
    """Both rejected the input and closed; only the 4xx they chose differs. An input with
    several faults (a bare LF in a head that is also too long, an unknown method on a line
    that also has a bare LF) gets the status of whichever check runs first, and that order
    depends on how much of the head a read brought."""
    return (
        a.verdict == b.verdict == "error"
        and {a.status, b.status} <= REJECT_STATUSES
        and a.events == b.events
    )


REJECT_STATUSES = frozenset({400, 413, 431, 501, 505})

# Every accept/reject disagreement Junction tolerates, by name. docs/security.md explains each.
KNOWN_DISAGREEMENTS: dict[str, Callable[[bytes, Outcome, Outcome, type, type], bool]] = {
    "early-chunk-line-check": lambda d, a, b, ca, cb: (
        _early_chunk_check(d, a, b, ca, cb) or _early_chunk_check(d, b, a, cb, ca)
    ),
    "reject-status-of-multi-fault-input": lambda d, a, b, ca, cb: _reject_status_only(a, b),
}


def check_agreement(data: bytes) -> str | None:
    """None when both codecs agree; the name of the known disagreement otherwise. Fails the
    test on any disagreement no entry of KNOWN_DISAGREEMENTS covers."""
    a_cls, b_cls = HttptoolsServerCodec, H11ServerCodec
    a, b = outcome(a_cls, data), outcome(b_cls, data)
    # Each codec on its own: how the bytes are split into reads never changes its verdict.
    for cls, whole in ((a_cls, a), (b_cls, b)):
        for piece in (1, 7):
            split = outcome(cls, data, piece)
            assert split.verdict == whole.verdict, (cls, piece, data)
            if split.status != whole.status:
                assert _reject_status_only(split, whole), (cls, piece, data)
    if a == b:
        return None
    for name, allowed in KNOWN_DISAGREEMENTS.items():
        if allowed(data, a, b, a_cls, b_cls):
            return name
    raise AssertionError(f"undocumented codec disagreement on {data!r}:\n llhttp {a}\n h11 {b}")


# ---- inputs ----------------------------------------------------------------------------------

# Byte strings that matter to HTTP/1.1 framing; a mutation splices one in anywhere.
_TOKENS = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b"\x7f",
    b"\xff",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"_",
    b'"',
    b"\r\n ",
    b"\r\n\t",
    b"\r\n\r\n",
    b"0\r\n\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 0\r\n",
    b"Content-Length: 1,1\r\n",
    b"Content-Length: +5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked, identity\r\n",
    b"Transfer-Encoding : chunked\r\n",
    b"Transfer-Encoding: \x0bchunked\r\n",
    b"transfer-encoding: CHUNKED\r\n",
    b"Host: other\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"Connection: upgrade\r\nUpgrade: h2c\r\n",
    b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n",
    b"x_api_key: k\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"HTTP/1.0",
    b"HTTP/1.2",
    b"http://evil.test",
    b"ffffffffffffffffff",
    b"fffffffffffffff\r\n",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    reqs = draw(st.lists(requests(), min_size=1, max_size=2))
    data = bytearray(b"".join(r[0] for r in reqs))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "case", "dup"]))
        if op == "insert":
            data[i:i] = draw(st.sampled_from(_TOKENS))
        elif op == "replace" and i < len(data):
            data[i : i + 1] = draw(st.sampled_from(_TOKENS))
        elif op == "delete" and i < len(data):
            del data[i : i + draw(st.integers(1, 3))]
        elif op == "truncate":
            del data[i:]
        elif op == "case" and i < len(data):
            data[i : i + 8] = bytes(data[i : i + 8]).swapcase()
        elif op == "dup":
            # Repeat the line around i: duplicate headers, chunk lines, request lines.
            start = data.rfind(b"\n", 0, i) + 1
            end = data.find(b"\n", i)
            if end >= 0:
                data[start:start] = data[start : end + 1]
    return bytes(data)


# ---- the tests -------------------------------------------------------------------------------


@_SETTINGS
@given(reqs=st.lists(requests(), min_size=1, max_size=3))
def test_generated_valid_requests_get_the_same_events(reqs: list) -> None:
    data = b"".join(r[0] for r in reqs)
    assert check_agreement(data) is None
    assert outcome(H11ServerCodec, data).verdict == "idle"


@_SETTINGS
@example(b"ET /0 HTTP/1.1\r\nGET /0 HTTP/1.1\r\nHost: [::1]:\n0: \r\n\r\n")
@example(
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nA: b\r;\r\n"
)
@example(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a\x01")
@example(  # a whole request, then a pipelined one rejected in its trailers (bare CR)
    b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n\x00\x00\x00\x00"
    b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\x00\r\n0\r\n"
    b"A: b\r\nC: d e\r\n\r\r"
)
@given(data=mutated())
def test_mutated_requests_get_the_same_verdict(data: bytes) -> None:
    check_agreement(data)


@_SETTINGS
@given(data=st.binary(max_size=200))
def test_random_bytes_get_the_same_verdict(data: bytes) -> None:
    check_agreement(data)


@pytest.mark.parametrize(
    "trailer",
    [b"Transfer-Encoding: chunked", b"transfer-encoding: CHUNKED", b"Content-Length: 5"],
)
def test_framing_headers_in_trailers_are_refused_by_both(trailer: bytes) -> None:
    """Found by `make fuzz`: llhttp refused these trailers and the h11 codec took them."""
    data = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    data += trailer + b"\r\n\r\n"
    assert check_agreement(data) is None
    assert outcome(H11ServerCodec, data) == Outcome("error", 400, ())


def test_known_disagreements_are_reachable_and_justified() -> None:
    """Each allow-list entry is exercised by a real input (else it is dead and must go), and
    the justification is in docs/security.md under the same name."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    bad_trailer = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
        b"A: b\r;\r\n"
    )
    assert check_agreement(bad_trailer) == "early-chunk-line-check"
    for name in KNOWN_DISAGREEMENTS:
        assert f"`{name}`" in doc, f"{name} is not documented in docs/security.md"
