"""Response-cache figures: L1 and L2 hits against passthrough, on this machine.

    .venv/bin/python benchmarks/cache_bench.py             # writes benchmarks/RESULTS-cache.md

Four measurements, Junction on core 0, the mock, redis-server and the load on core 1:

1. passthrough, cache off: closed loop, 32 connections (benchmarks/loadgen.py): req/s;
2. L1 hits (one deterministic request, stored once): the same closed loop: req/s;
3. L1 hits at a fixed rate (open loop, --rate): p50/p99 from each request's scheduled time;
4. L2 hits: L1 holds one entry, and the load cycles through --keys distinct requests stored
   beforehand, so nearly every request misses L1 and is answered from Redis: p50/p99 at the
   same fixed rate (its own small open-loop client below, since loadgen sends one body).

Goals (the cache issue): an L1 hit at least the passthrough req/s with p99 under 1 ms; an L2
hit p99 under 2 ms. Loopback only; every process it starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.histogram import LatencyHistogram  # noqa: E402
from benchmarks.procs import BenchError, Services, pinned, port_is_free  # noqa: E402
from benchmarks.workload import HEADERS, MODEL  # noqa: E402

PROXY_CPU, LOAD_CPU = 0, 1
REDIS_ARGS = ["--save", "", "--appendonly", "no", "--dir"]  # nothing persisted; the dir last

CONFIG = """\
listen: {{host: 127.0.0.1, port: {port}}}
admin: {{host: 127.0.0.1, port: {admin}}}
providers:
  - {{name: mock, dialect: anthropic, base_url: "http://127.0.0.1:{mock}", api_key: bench,
      models: [{model}]}}
router: {{default: "mock,{model}"}}
"""
CACHE = """\
redis: {{url: "redis://127.0.0.1:{redis}/0"}}
cache: {{policy: all, max_entries: {entries}}}
"""


def body(i: int | None) -> bytes:
    text = "Hello!" if i is None else f"Question number {i}?"
    return json.dumps(
        {
            "model": MODEL,
            "max_tokens": 16,
            "temperature": 0,
            "messages": [{"role": "user", "content": text}],
        },
        separators=(",", ":"),
    ).encode()


def request_bytes(port: int, data: bytes) -> bytes:
    head = ["POST /v1/messages HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{k}: {v}" for k, v in HEADERS]
    head.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


class _Conn(asyncio.Protocol):
    """One keep-alive connection; responses are framed by content-length (Junction's are)."""

    def __init__(self) -> None:
        self.buf = b""
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = self.buf[:end].lower()
        i = head.find(b"content-length:")
        length = int(head[i + 15 :].split(b"\r\n", 1)[0]) if i >= 0 else 0
        if len(self.buf) >= end + 4 + length:
            status = int(self.buf[9:12])
            self.buf = self.buf[end + 4 + length :]
            waiter, self.waiter = self.waiter, None
            waiter.set_result(status)


async def open_loop(
    port: int, requests: list[bytes], rate: float, seconds: float, conns: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(conns):
        _, proto = await loop.create_connection(_Conn, "127.0.0.1", port)
        idle.put_nowait(proto)
    hist = LatencyHistogram()
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(data: bytes, due: float) -> None:
        nonlocal errors
        conn = await idle.get()
        conn.waiter = loop.create_future()
        assert conn.transport is not None
        conn.transport.write(data)
        status = await conn.waiter
        hist.record(int((time.perf_counter() - due) * 1e9))  # from the schedule
        if status != 200:
            errors += 1
        idle.put_nowait(conn)

    start = time.perf_counter() + 0.05
    n = int(rate * seconds)
    for k in range(n):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t = loop.create_task(one(requests[k % len(requests)], due))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return {
        "requests": n,
        "errors": errors,
        "p50_ms": hist.percentile(50) / 1e6,
        "p99_ms": hist.percentile(99) / 1e6,
        "p999_ms": hist.percentile(99.9) / 1e6,
    }


def loadgen(port: int, data: bytes, out: Path, extra: list[str], seconds: float) -> dict[str, Any]:
    import subprocess

    argv = [
        sys.executable,
        str(BENCH / "loadgen.py"),
        "--url",
        f"http://127.0.0.1:{port}/v1/messages",
        "--duration",
        str(seconds),
        "--warmup",
        "1",
        "--body",
        data.decode(),
        "--json-out",
        str(out),
        "--quiet",
        *extra,
        *[x for k, v in HEADERS for x in ("--header", f"{k}: {v}")],
    ]
    subprocess.run(pinned(LOAD_CPU, argv), check=True, timeout=seconds + 60)
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=2000.0, help="open-loop rate for the p99 runs")
    p.add_argument("--keys", type=int, default=500, help="distinct requests of the L2 run")
    p.add_argument("--port-base", type=int, default=18870)
    p.add_argument("--results", type=Path, default=BENCH / "RESULTS-cache.md")
    args = p.parse_args(argv)
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("cache_bench: redis-server is needed (make test installs it)", file=sys.stderr)
        return 1
    b = args.port_base
    ports = {"mock": b, "redis": b + 1, "off": b + 2, "l1": b + 3, "l2": b + 4, "admin": b + 5}
    if not all(port_is_free(v) for v in ports.values()) or not port_is_free(b + 6):
        print(f"cache_bench: a port in {b}..{b + 6} is busy", file=sys.stderr)
        return 1
    py = sys.executable
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="junction-cache-") as tmp:
        work = Path(tmp)
        services = Services(work)
        try:
            mock = services.start(
                "mock",
                pinned(LOAD_CPU, [py, "-m", "proxy.mock_provider", "--port", str(ports["mock"])]),
                REPO,
            )
            services.wait_ready(mock, ports["mock"])
            redis_argv = [redis_server, "--port", str(ports["redis"]), *REDIS_ARGS, str(work)]
            redis = services.start("redis", pinned(LOAD_CPU, redis_argv), REPO)
            services.wait_ready(redis, ports["redis"])

            def junction(name: str, port: int, admin: int, cache: str) -> None:
                cfg = work / f"{name}.yaml"
                base = CONFIG.format(port=port, admin=admin, mock=ports["mock"], model=MODEL)
                cfg.write_text(base + "log: {access_log: false}\n" + cache)
                argv_j = [py, "-m", "proxy", "serve", "--config", str(cfg)]
                svc = services.start(name, pinned(PROXY_CPU, argv_j), REPO)
                services.wait_ready(svc, port)

            # 1 and 2: max throughput, cache off and L1 hits (one at a time on core 0).
            junction("off", ports["off"], ports["admin"], "")
            closed = ["--closed-loop", "--connections", "32"]
            off = loadgen(ports["off"], body(None), work / "off.json", closed, args.duration)
            services.stop(services.started[-1])
            junction(
                "l1",
                ports["l1"],
                ports["admin"],
                CACHE.format(redis=ports["redis"], entries=10_000),
            )
            l1 = loadgen(ports["l1"], body(None), work / "l1.json", closed, args.duration)
            rate = ["--rate", str(args.rate), "--connections", "32"]
            l1_open = loadgen(ports["l1"], body(None), work / "l1o.json", rate, args.duration)
            services.stop(services.started[-1])
            # 4: L2 hits: store --keys answers, then cycle through them with L1 holding one.
            junction(
                "l2", ports["l2"], ports["admin"] + 1, CACHE.format(redis=ports["redis"], entries=1)
            )
            reqs = [request_bytes(ports["l2"], body(i)) for i in range(args.keys)]
            warm = asyncio.run(open_loop(ports["l2"], reqs, 500.0, args.keys / 500.0, 16))
            if warm["errors"]:
                raise BenchError(f"warming the L2 run failed: {warm}")
            l2 = asyncio.run(open_loop(ports["l2"], reqs, args.rate, args.duration, 32))
            with urllib.request.urlopen(
                f"http://127.0.0.1:{ports['admin'] + 1}/admin/cache", timeout=5
            ) as r:
                stats = json.loads(r.read())
        except BenchError as e:
            print(f"cache_bench: {e}", file=sys.stderr)
            return 1
        finally:
            services.stop_all()
    figures = {
        "passthrough_rps": off["achieved_rps"],
        "l1_rps": l1["achieved_rps"],
        "l1_p50_ms": l1_open["latency_ms"]["p50"],
        "l1_p99_ms": l1_open["latency_ms"]["p99"],
        "l1_errors": l1_open["errors"]["total"] + l1["errors"]["total"],
        "l2": l2,
        "stats": stats,
    }
    text = render(figures, args)
    args.results.write_text(text)
    print(text)
    return 0


def render(f: dict[str, Any], args: argparse.Namespace) -> str:
    st = f["stats"].get("stats", f["stats"])
    l2 = f["l2"]
    ratio = f["l1_rps"] / f["passthrough_rps"] if f["passthrough_rps"] else 0.0
    return "\n".join(
        [
            "# Response cache",
            "",
            f"Generated by `.venv/bin/python benchmarks/cache_bench.py --duration {args.duration:g}"
            f" --rate {args.rate:g} --keys {args.keys}` on"
            f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. One worker on core 0; the"
            " mock, redis-server and the load on core 1; access log off; a small request"
            " (`temperature: 0`, `max_tokens` 16).",
            "",
            "| | measured | goal |",
            "|---|--:|--:|",
            f"| passthrough, cache off, closed loop | {f['passthrough_rps']:,.0f} req/s | |",
            f"| L1 hits, the same closed loop | {f['l1_rps']:,.0f} req/s ({ratio:.2f}x) | ≥ 1x |",
            f"| L1 hits at {args.rate:,.0f} req/s, p50 / p99 | {f['l1_p50_ms']:.3f} / "
            f"{f['l1_p99_ms']:.3f} ms | p99 < 1 ms |",
            f"| L2 (Redis) hits at {args.rate:,.0f} req/s, p50 / p99 / p99.9 | {l2['p50_ms']:.3f} /"
            f" {l2['p99_ms']:.3f} / {l2['p999_ms']:.3f} ms | p99 < 2 ms |",
            "",
            f"L2 run: {l2['requests']} requests over {args.keys} stored answers, {l2['errors']}"
            f" errors; cache counters afterwards: hits_l1 {st.get('hits_l1_total')}, hits_l2"
            f" {st.get('hits_l2_total')}, misses {st.get('misses_total')}. L1/L2 errors:"
            f" {f['l1_errors']}.",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
