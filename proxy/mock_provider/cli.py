"""Command line for the simulated provider: ``junction mock-provider`` and
``python -m proxy.mock_provider``.

On start it prints one line, ``mock-provider listening on <url> ...``, so a script that passed
``--port 0`` can read the chosen port. It serves until SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from proxy.mock_provider.options import DEFAULT_MODELS, FailMode, MockOptions
from proxy.mock_provider.server import MockProvider
from proxy.server.gc_pacer import GcPacer, tune_gc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = MockOptions()
    add = parser.add_argument
    add("--host", default=d.host, help="address to bind (default %(default)s)")
    add("--port", type=int, default=d.port, help="port; 0 = ephemeral (default %(default)s)")
    add("--latency-ms", type=float, default=d.latency_ms, help="time to first byte")
    add("--tokens-per-s", type=float, default=d.tokens_per_s, help="stream pace; 0 = unpaced")
    add("--sse-gap-ms", type=float, default=d.sse_gap_ms, help="pause between streamed events")
    add("--output-tokens", type=int, default=d.output_tokens, help="answer length in tokens")
    add("--fail-rate", type=float, default=d.fail_rate, help="share of failing requests, 0..1")
    add(
        "--fail-mode",
        type=_fail_mode,
        default=d.fail_mode,
        help="status:<code> | reset | reset-mid-stream | stall | stall-mid-stream | "
        "overloaded-in-stream | garbage | bad-json (default %(default)s)",
    )
    add("--seed", type=int, default=d.seed, help="seed of failures and generated words")
    add("--require-key", default=None, metavar="KEY", help="401 unless x-api-key/Bearer is KEY")
    add("--tls-cert", default=None, help="PEM certificate chain; enables TLS with --tls-key")
    add("--tls-key", default=None, help="PEM private key")
    add("--h2c", action=argparse.BooleanOptionalAction, default=d.h2c,
        help="accept HTTP/2 prior knowledge on cleartext")  # fmt: skip
    add("--tls-h2", action=argparse.BooleanOptionalAction, default=d.tls_h2,
        help="offer h2 through ALPN when TLS is on")  # fmt: skip
    add("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model ids")
    add("--record-limit", type=int, default=d.record_limit, help="requests kept for inspection")
    add("--idle-timeout-s", type=float, default=d.idle_timeout_s,
        help="close idle keep-alive connections after this; 0 = never")  # fmt: skip
    add("--retry-after-s", type=int, default=d.retry_after_s, help="retry-after on 429/503/529")
    add("--lenient", action="store_true",
        help="answer requests a real provider would reject (default: 400 like it)")  # fmt: skip


def _fail_mode(text: str) -> str:
    try:
        return str(FailMode.parse(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def options_from(ns: argparse.Namespace) -> MockOptions:
    models = tuple(m.strip() for m in ns.models.split(",") if m.strip())
    return MockOptions(
        host=ns.host,
        port=ns.port,
        latency_ms=ns.latency_ms,
        tokens_per_s=ns.tokens_per_s,
        sse_gap_ms=ns.sse_gap_ms,
        output_tokens=ns.output_tokens,
        fail_rate=ns.fail_rate,
        fail_mode=ns.fail_mode,
        seed=ns.seed,
        require_key=ns.require_key,
        tls_cert=ns.tls_cert,
        tls_key=ns.tls_key,
        h2c=ns.h2c,
        tls_h2=ns.tls_h2,
        models=models,
        record_limit=ns.record_limit,
        idle_timeout_s=ns.idle_timeout_s,
        retry_after_s=ns.retry_after_s,
        strict=not ns.lenient,
    )


def run(ns: argparse.Namespace) -> int:
    try:
        options = options_from(ns)
    except ValueError as exc:
        print(f"mock-provider: {exc}", file=sys.stderr)
        return 2
    runner_kwargs: dict[str, Any] = {}
    factory = _uvloop_factory()
    if factory is not None:
        runner_kwargs["loop_factory"] = factory
    with asyncio.Runner(**runner_kwargs) as runner:
        return runner.run(_serve(options))


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _serve(options: MockOptions) -> int:
    provider = MockProvider(options)
    try:
        await provider.start()
    except OSError as exc:
        print(f"mock-provider: cannot listen on {options.host}:{options.port}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    # As Junction's workers do (proxy/server/gc_pacer.py). With the default thresholds, a few
    # thousand open streams made full collections of 30-60 ms, and with raised thresholds
    # alone the young generation went uncollected for seconds, then took 7-9 ms (at ~1,050
    # streams), which every benchmark showed as gaps in the provider's own streams.
    tune_gc()
    loop = asyncio.get_running_loop()
    pacer = GcPacer(loop)
    pacer.start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    protocols = "HTTP/1.1" + (", h2c" if options.h2c and not options.tls_cert else "")
    if options.tls_cert:
        protocols += ", TLS" + (" (ALPN h2, http/1.1)" if options.tls_h2 else "")
    print(f"mock-provider listening on {provider.base_url} ({protocols})", flush=True)
    try:
        await stop.wait()
    finally:
        pacer.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await provider.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proxy.mock_provider",
        description="Simulated Anthropic / OpenAI provider for demos, tests and benchmarks.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
