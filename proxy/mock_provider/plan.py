"""A response script: what to send, when, and how it ends. Sans-I/O.

The planner turns one request into a `Plan`; the HTTP/1.1 and HTTP/2 shells execute it (at
once when it has no pauses, otherwise with loop timers in `runner.py`). Injected failures are
plans too, so both protocols misbehave the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

Headers = list[tuple[bytes, bytes]]

GARBAGE = b"\x16\x03\x01\x00\xffNOT-HTTP \x00\x01\x02\xfe\xff garbage from the mock provider\r\n"


class Kind(enum.Enum):
    RESPOND = "respond"  # status, headers, then the chunks
    RESET = "reset"  # abort without a byte
    STALL = "stall"  # send nothing, hold the connection until the client leaves
    GARBAGE = "garbage"  # raw non-HTTP bytes, then close


class Ending(enum.Enum):
    END = "end"  # complete the response
    RESET = "reset"  # abort after the chunks
    STALL = "stall"  # go silent after the chunks


@dataclass(frozen=True, slots=True)
class Plan:
    kind: Kind
    status: int = 200
    headers: Headers | None = None  # no framing headers except content-length when fixed
    chunks: tuple[bytes, ...] = ()
    # pause before each chunk (index-aligned, [0] is ignored: first_byte_delay_s covers it);
    # None = send everything at once
    delays_s: tuple[float, ...] | None = None
    first_byte_delay_s: float = 0.0
    ending: Ending = Ending.END
    streaming: bool = False  # HTTP/1.1: chunked framing, the body length is not known upfront

    @property
    def immediate(self) -> bool:
        """Can be written in one go from the parser callback."""
        return (
            self.kind is Kind.RESPOND
            and self.first_byte_delay_s <= 0.0
            and self.delays_s is None
            and self.ending is Ending.END
        )


def fixed(status: int, headers: Headers, body: bytes, *, head: bool = False) -> Plan:
    """A complete non-streaming reply; HEAD keeps the length but drops the body."""
    headers.append((b"content-length", b"%d" % len(body)))
    return Plan(Kind.RESPOND, status, headers, () if head else (body,))


def events(status: int, headers: Headers, chunks: tuple[bytes, ...]) -> Plan:
    return Plan(Kind.RESPOND, status, headers, chunks, streaming=True)


def paced(plan: Plan, tokens: tuple[int, ...], tokens_per_s: float, gap_s: float) -> Plan:
    """Spread a stream's events over time: each waits ``gap_s`` plus its tokens' share."""
    if tokens_per_s <= 0.0 and gap_s <= 0.0:
        return plan
    per_token = 1.0 / tokens_per_s if tokens_per_s > 0.0 else 0.0
    return replace(plan, delays_s=tuple(gap_s + n * per_token for n in tokens))


def cut_short(plan: Plan, ending: Ending) -> Plan:
    """Keep the status line and part of the body, then reset or stall.

    A stream keeps its first half of events (at least two, so a client sees it start); a
    fixed body keeps half its bytes while still announcing the full length.
    """
    if plan.kind is not Kind.RESPOND:
        return plan
    if plan.streaming:
        keep = max(2, len(plan.chunks) // 2)
        chunks = plan.chunks[: min(keep, max(1, len(plan.chunks) - 1))]
    else:
        body = b"".join(plan.chunks)
        chunks = (body[: len(body) // 2],)
    delays = plan.delays_s[: len(chunks)] if plan.delays_s is not None else None
    return replace(plan, chunks=chunks, delays_s=delays, ending=ending)


def delayed(plan: Plan, latency_s: float) -> Plan:
    return replace(plan, first_byte_delay_s=latency_s) if latency_s > 0.0 else plan
