"""Clients and upstream scripts for the fault matrix.

Blocking clients (httpx, a raw HTTP/1.1 socket, a raw HTTP/2 connection over h2) that can hang
up at any point — with a FIN or a TCP reset, or for HTTP/2 with RST_STREAM — and small helpers
to read what Junction sent: the error type in either dialect, SSE events, and scripted upstream
answers in both providers' grammars.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx

from tests.integration.proxy.harness import Running
from tests.support.h1server import ReceivedRequest, Responder, ServerConnection

from .rig import ANTHROPIC_MODEL, OPENAI_MODEL

ANTHROPIC_HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


def body(client: str, *, stream: bool = False, model: str | None = None) -> dict[str, Any]:
    if client == "anthropic":
        return {
            "model": model or ANTHROPIC_MODEL,
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": "hello"}],
        }
    return {
        "model": model or OPENAI_MODEL,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello"}],
    }


def ask(
    run: Running,
    client: str = "anthropic",
    *,
    stream: bool = False,
    model: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """One request, read whole (a stream too: it ends when Junction ends it)."""
    hs = dict(ANTHROPIC_HEADERS) if client == "anthropic" else {"content-type": "application/json"}
    hs.update(headers or {})
    return httpx.post(
        run.url + PATHS[client],
        json=body(client, stream=stream, model=model),
        headers=hs,
        timeout=timeout,
    )


def error_type(resp: httpx.Response, client: str) -> str:
    """The error's type in the client's dialect (and the shape checked on the way)."""
    doc = resp.json()
    if client == "anthropic":
        assert doc["type"] == "error", doc
        assert set(doc["error"]) == {"type", "message"}, doc
    else:
        assert set(doc["error"]) == {"message", "type", "param", "code"}, doc
    assert "Traceback" not in resp.text
    return str(doc["error"]["type"])


def sse(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event, in order."""
    out: list[tuple[str | None, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if name is not None or data:
            out.append((name, "\n".join(data)))
    return out


def in_band_error(text: str, client: str) -> str | None:
    """The type of the error event that ended a stream, or None when it has none."""
    events = sse(text)
    if not events:
        return None
    name, data = events[-1]
    if client == "anthropic":
        if name != "error":
            return None
        return str(json.loads(data)["error"]["type"])
    if data == "[DONE]" or '"error"' not in data:
        return None
    return str(json.loads(data)["error"]["type"])


def completed(text: str, client: str) -> bool:
    """Whether a stream carries its dialect's end (Junction must never fabricate one)."""
    if client == "anthropic":
        return any(name == "message_stop" for name, _ in sse(text))
    return any(data == "[DONE]" for _, data in sse(text))


def wait_until(check: Callable[[], bool], timeout: float = 2.0, what: str = "condition") -> float:
    """Poll ``check``; returns the seconds it took, fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"{what} not met within {timeout} s"
        time.sleep(0.005)
    return time.monotonic() - start


# -- raw clients that can hang up anywhere -------------------------------------------------------
def _linger0(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class H1Client:
    """One HTTP/1.1 request over a raw socket; ``hang_up`` closes with a FIN or a reset."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.received = b""

    def send(
        self,
        client: str,
        *,
        stream: bool,
        headers: dict[str, str] | None = None,
        model: str | None = None,
    ) -> None:
        data = json.dumps(body(client, stream=stream, model=model)).encode()
        hs = {**ANTHROPIC_HEADERS, **(headers or {}), "content-length": str(len(data))}
        head = f"POST {PATHS[client]} HTTP/1.1\r\nhost: x\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hs.items()
        )
        self.sock.sendall(head.encode() + b"\r\n" + data)

    def read_until(self, marker: bytes) -> None:
        while marker not in self.received:
            chunk = self.sock.recv(65536)
            assert chunk, self.received
            self.received += chunk

    def hang_up(self, rst: bool) -> None:
        if self.sock.fileno() < 0:
            return  # already gone
        if rst:
            _linger0(self.sock)
        self.sock.close()


class H2Client:
    """HTTP/2 prior knowledge over a raw socket, one stream at a time (stream 1)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.status: int | None = None
        self.data = b""

    def send(
        self,
        client: str,
        *,
        stream: bool,
        headers: dict[str, str] | None = None,
        model: str | None = None,
    ) -> None:
        data = json.dumps(body(client, stream=stream, model=model)).encode()
        hs = [
            (":method", "POST"),
            (":path", PATHS[client]),
            (":scheme", "http"),
            (":authority", "x"),
            *{**ANTHROPIC_HEADERS, **(headers or {})}.items(),
            ("content-length", str(len(data))),
        ]
        self.conn.send_headers(1, hs)
        self.conn.send_data(1, data, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())

    def read_until(self, marker: bytes) -> None:
        while marker not in self.data:
            chunk = self.sock.recv(65536)
            assert chunk, self.data
            for ev in self.conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived):
                    self.status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    self.data += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            self.sock.sendall(self.conn.data_to_send())

    def cancel(self) -> None:
        """RST_STREAM(CANCEL) on stream 1; the connection stays open."""
        self.conn.reset_stream(1, 8)
        self.sock.sendall(self.conn.data_to_send())

    def hang_up(self, rst: bool) -> None:
        if self.sock.fileno() < 0:
            return  # already gone
        if rst:
            _linger0(self.sock)
        self.sock.close()


# -- scripted upstream answers -----------------------------------------------------------------
def anthropic_event(name: str, data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"event: {name}\ndata: {payload}\n\n".encode()


def anthropic_start() -> bytes:
    return anthropic_event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_scripted",
                "type": "message",
                "role": "assistant",
                "model": ANTHROPIC_MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 1},
            },
        },
    )


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": OPENAI_MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


def openai_stream(text: str) -> list[bytes]:
    """A complete, valid OpenAI stream answering ``text``."""
    return [
        openai_chunk({"role": "assistant", "content": ""}),
        openai_chunk({"content": text}),
        openai_chunk({}, "stop"),
        b"data: [DONE]\n\n",
    ]


def sse_answer(chunks: list[bytes], *, end: bool = True, gap_s: float = 0.0) -> Responder:
    """A 200 text/event-stream, one chunked write per element, optionally ended."""

    async def responder(request: ReceivedRequest, conn: ServerConnection) -> None:
        await conn.send_head(200, [(b"content-type", b"text/event-stream")])
        for chunk in chunks:
            await conn.send_chunk(chunk)
            if gap_s:
                await asyncio.sleep(gap_s)
        if end:
            await conn.end_chunked()
        else:
            await conn.wait_peer_closed()

    return responder
