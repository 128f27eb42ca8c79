"""Several mock deployments in one process, each counting the requests it received.

    python -m benchmarks.counting_mocks --counts out.json \\
        --deployment d0 18860 0 status:500 --deployment d2 18862 1 stall

How this works: one `proxy.mock_provider.MockProvider` per --deployment (name, port, share of
failing requests, fail mode) on one event loop; on SIGTERM or SIGINT they stop and the number
of generation requests each received (POST /v1/messages) is written to --counts as
{name: count}. The resilience bench's peer comparison divides their sum by the requests the
client sent: upstream attempts per request, measured the same way for every gateway, whether
or not the gateway reports its own retries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from proxy.mock_provider import MockOptions, MockProvider

GENERATION_PATH = "/v1/messages"
OUTPUT_TOKENS = 16  # a short answer, as in the Junction-only runs of the resilience bench


def options(port: int, fail_rate: float, fail_mode: str) -> MockOptions:
    """One deployment's options: lenient like the suite's mock, failing as asked."""
    return MockOptions(
        port=port,
        output_tokens=OUTPUT_TOKENS,
        fail_rate=fail_rate,
        fail_mode=fail_mode,
        retry_after_s=0,
        strict=False,
    )


async def serve(deployments: dict[str, MockOptions], counts: Path) -> int:
    mocks = {name: MockProvider(opts) for name, opts in deployments.items()}
    try:
        for mock in mocks.values():
            await mock.start()
    except OSError as exc:
        print(f"counting_mocks: cannot listen: {exc}", file=sys.stderr)
        for mock in mocks.values():
            await mock.stop()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"counting mocks on ports {[m.port for m in mocks.values()]}", flush=True)
    await stop.wait()
    for mock in mocks.values():
        await mock.stop()
    counts.write_text(
        json.dumps({name: m.per_path.get(GENERATION_PATH, 0) for name, m in mocks.items()})
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--deployment",
        nargs=4,
        action="append",
        required=True,
        metavar=("NAME", "PORT", "FAIL_RATE", "FAIL_MODE"),
    )
    p.add_argument("--counts", type=Path, required=True, help="where {name: requests} goes")
    ns = p.parse_args(argv)
    try:
        deployments = {
            name: options(int(port), float(rate), mode) for name, port, rate, mode in ns.deployment
        }
    except ValueError as exc:
        p.error(str(exc))
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(deployments, ns.counts))
    return uvloop.run(serve(deployments, ns.counts))


if __name__ == "__main__":
    sys.exit(main())
