"""A tiny blocking HTTP/1.1 client over a raw socket, for framing-level assertions."""

from __future__ import annotations

import contextlib
import socket

import h11


class RawConn:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.conn = h11.Connection(h11.CLIENT)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        hs = [("host", "127.0.0.1"), *list(headers or [])]
        if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hs):
            hs.append(("content-length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=hs))
        if body:
            data += self.conn.send(h11.Data(data=body))
        data += self.conn.send(h11.EndOfMessage())
        self.sock.sendall(data)

    def response(self) -> tuple[h11.Response, bytes]:
        resp: h11.Response | None = None
        body = bytearray()
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA:
                chunk = self.sock.recv(65536)
                self.conn.receive_data(chunk)
                continue
            if isinstance(ev, h11.Response):
                resp = ev
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                assert resp is not None
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    with contextlib.suppress(h11.LocalProtocolError):
                        self.conn.start_next_cycle()
                return resp, bytes(body)
            elif isinstance(ev, h11.ConnectionClosed):
                raise ConnectionError("closed before a complete response")

    def read_all_raw(self) -> bytes:
        out = bytearray()
        while True:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def is_closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def close(self) -> None:
        self.sock.close()


def header(resp: h11.Response, name: str) -> str | None:
    wanted = name.lower().encode()
    for k, v in resp.headers:
        if k == wanted:
            return bytes(v).decode("latin-1")
    return None
