"""A minimal HTTP/1.1 server that answers every request with one canned Anthropic message.

    python benchmarks/canned_server.py --port 18083

Used to measure the load generator's own ceiling (it costs the server almost nothing per
request) and as the upstream when the project's mock provider is not available. Keep-alive,
requests answered in order; bodies are read and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import cast

import httptools
import uvloop

CANNED_BODY = (
    b'{"id":"msg_bench0000000000000000000000","type":"message","role":"assistant",'
    b'"model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello!"}],'
    b'"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":12,"output_tokens":3}}'
)
CANNED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"request-id: req_bench\r\ncontent-length: %d\r\n\r\n" % len(CANNED_BODY)
) + CANNED_BODY


class CannedServerConnection(asyncio.Protocol):
    __slots__ = ("_parser", "_transport")

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            self._transport.close()

    def on_message_complete(self) -> None:
        assert self._transport is not None
        self._transport.write(CANNED_RESPONSE)
        if not self._parser.should_keep_alive():
            self._transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(CannedServerConnection, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
