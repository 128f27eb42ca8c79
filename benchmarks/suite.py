"""`python -m benchmarks`: Junction and its peers on the same mock provider, in one run.

    python -m benchmarks                    # the full set, ~13 minutes (what `make bench` runs)
    python -m benchmarks --quick            # short windows, one run: a smoke test
    python -m benchmarks --scenarios small,sweep --peers nginx,haproxy --runs 5

Pinning on a 2-core machine: the proxy under test (Junction or a peer) on core 0, the mock
provider and the load generator on core 1. Every target is measured in the same run against
the same mock, so each comparison is a ratio of figures taken minutes apart. Every figure is
the median of --runs runs, with the spread (min-max) beside it. Writes results.json,
RESULTS.md and plots/*.png under --out. Every process started is stopped on exit.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.machine import background_busy_percent, machine_info
from benchmarks.peers import PEERS, PeerLaunch, Ports, launch
from benchmarks.procs import BenchError, Service, Services, cpu_sample, pinned, port_is_free

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
PROXY_CPU, LOAD_CPU = 0, 1
SCENARIOS = (
    "calibration",
    "small",
    "sweep",
    "stream",
    "translate",
    "h2",
    "streams",
    "workers",
    "faults",
    "cache",
    "profile",
)
ANTHROPIC_HEADERS = [("anthropic-version", "2023-06-01"), ("content-type", "application/json")]


@dataclass(slots=True)
class Target:
    """One thing the generator sends to: the mock itself ("direct"), Junction, or a peer."""

    name: str
    port: int
    headers: list[tuple[str, str]]
    service: Service | None = None  # None for "direct": the mock is started by the suite
    pid: int = 0  # whose CPU and memory count
    version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str = "/v1/messages", port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}{path}"


def median_spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "n": len(values),
    }


class Suite:
    def __init__(self, args: argparse.Namespace, logs: Path) -> None:
        self.args = args
        self.logs = logs
        self.py = str(args.python)
        self.ports = Ports.from_base(args.port_base)
        self.services = Services(logs)
        self.commands: list[str] = []
        self.cpus_ok = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
        self.results: dict[str, Any] = {"targets": {}, "scenarios": {}, "errors": []}
        self.mock_pid = 0

    # -- processes --------------------------------------------------------------------------
    def cpu(self, core: int) -> int | None:
        return core if self.cpus_ok else None

    def record(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in (env or {}).items())
        self.commands.append(prefix + shlex.join(argv).replace(f"{REPO}/", ""))

    def start(
        self,
        name: str,
        argv: list[str],
        core: int | None,
        port: int,
        env: dict[str, str] | None = None,
        timeout_s: float = 15.0,
    ) -> Service:
        full = pinned(None if core is None else self.cpu(core), argv)
        self.record(full, env)
        service = self.services.start(name, full, REPO, env=os.environ | env if env else None)
        self.services.wait_ready(service, port, timeout_s)
        return service

    def run_tool(
        self, name: str, argv: list[str], timeout_s: float
    ) -> subprocess.CompletedProcess[str]:
        full = pinned(self.cpu(LOAD_CPU), argv)
        self.record(full)
        print(f"  .. {name}", flush=True)
        return subprocess.run(
            full, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def loadgen(
        self,
        name: str,
        target: Target,
        mode: list[str],
        *,
        body: bytes,
        url: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        duration: float | None = None,
    ) -> dict[str, Any]:
        a = self.args
        duration = duration or a.duration
        out = self.logs / f"lg-{len(self.commands)}.json"
        body_file = self.logs / f"body-{hashlib.sha256(body).hexdigest()[:12]}.json"
        if not body_file.exists():
            body_file.write_bytes(body)
        argv = [
            self.py,
            str(BENCH / "loadgen.py"),
            "--url",
            url or target.url(),
            *mode,
            "--duration",
            f"{duration:g}",
            "--warmup",
            f"{a.warmup:g}",
            "--body-file",
            str(body_file),
            "--json-out",
            str(out),
            "--quiet",
        ]
        for k, v in headers if headers is not None else target.headers:
            argv += ["--header", f"{k}: {v}"]
        pid = target.pid
        before = cpu_sample(pid) if pid else None
        proc = self.run_tool(name, argv, a.warmup + duration + 60)
        after = cpu_sample(pid) if pid else None
        if proc.returncode != 0 or not out.exists():
            raise BenchError(f"load generator failed for {name}: {proc.stderr[-2000:]}")
        result: dict[str, Any] = orjson.loads(out.read_bytes())
        if before is not None and after is not None and result["total_responses"]:
            result["cpu_us_per_request"] = round(
                (after.sched_ns - before.sched_ns) / 1000 / result["total_responses"], 1
            )
        return result

    # -- targets ----------------------------------------------------------------------------
    def start_mock(self) -> None:
        argv = [
            self.py,
            "-m",
            "proxy",
            "mock-provider",
            "--port",
            str(self.ports.mock),
            "--lenient",
            "--tokens-per-s",
            f"{self.args.tokens_per_s:g}",
            "--output-tokens",
            str(self.args.stream_tokens),
        ]
        self.mock_pid = self.start("mock", argv, LOAD_CPU, self.ports.mock).pid
        bad = [
            self.py,
            "-m",
            "proxy",
            "mock-provider",
            "--port",
            str(self.ports.mock_bad),
            "--lenient",
            "--fail-rate",
            "0.5",
            "--fail-mode",
            "status:500",
            "--seed",
            "7",
        ]
        self.start("mock-bad", bad, LOAD_CPU, self.ports.mock_bad)

    def direct(self) -> Target:
        t = Target("direct", self.ports.mock, [("x-api-key", "bench"), *ANTHROPIC_HEADERS])
        t.pid = self.mock_pid
        return t

    def start_junction(self, name: str, config: str, core: int | None = PROXY_CPU) -> Target:
        path = self.logs / f"{name}.yaml"
        path.write_text(config)
        argv = [self.py, "-m", "proxy", "serve", "--config", str(path)]
        service = self.start(name, argv, core, self.ports.junction)
        t = Target(name, self.ports.junction, [("x-api-key", "bench"), *ANTHROPIC_HEADERS], service)
        t.pid = service.pid
        t.extra["config"] = config
        return t

    def start_peer(self, name: str) -> Target | str:
        how: PeerLaunch | str = launch(name, self.args.peer_dir, self.ports, "python3")
        if isinstance(how, str):
            return how
        try:
            service = self.start(name, how.argv, PROXY_CPU, how.port, how.env, how.ready_timeout_s)
        except BenchError as e:
            return f"did not start: {str(e)[:600]}"
        headers = how.headers or [("x-api-key", "bench")]
        t = Target(name, how.port, [*headers, *ANTHROPIC_HEADERS], service, service.pid)
        t.version = how.version
        return t

    def stop(self, target: Target) -> None:
        if target.service is not None:
            self.services.stop(target.service)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of: {', '.join(SCENARIOS)} (default: all)",
    )
    p.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"comma-separated subset of: {', '.join(PEERS)}; 'none' for Junction alone",
    )
    p.add_argument("--quick", action="store_true", help="short windows and one run: a smoke test")
    p.add_argument("--runs", type=int, default=3, help="runs per figure; the median is shown")
    p.add_argument("--out", type=Path, default=BENCH, help="where results.json, RESULTS.md, plots/")
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each")
    p.add_argument("--port-base", type=int, default=18980, help="first of 13 loopback ports")
    p.add_argument(
        "--peer-dir",
        type=Path,
        default=REPO / "build" / "bench",
        help="where peers are installed (npm prefix, LiteLLM venv) and their configs written",
    )
    p.add_argument("--tokens-per-s", type=float, default=250.0, help="the mock's stream pace")
    p.add_argument("--stream-tokens", type=int, default=500, help="tokens per streamed answer")
    p.add_argument("--logs", type=Path, help="keep the processes' logs here (default: discarded)")
    p.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    p.add_argument(
        "--render-only", action="store_true", help="measure nothing: redraw from results.json"
    )
    args = p.parse_args(argv)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.peers = [] if args.peers == "none" else [s for s in args.peers.split(",") if s]
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        p.error(f"unknown peers: {', '.join(sorted(unknown))}")
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 2.0, 0.5
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if not Path(args.python).exists():
        args.python = sys.executable
    return args


def native_summary(python: str) -> str:
    """How much of Junction's data path runs compiled (mypyc) in the interpreter it runs with."""
    code = "from proxy.native import native_status; print(native_status().summary())"
    done = subprocess.run(
        [python, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout.strip() or f"unknown ({done.stderr.strip()[-200:]})"


def write_outputs(results: dict[str, Any], out: Path) -> list[Path]:
    from benchmarks.plots import draw_plots
    from benchmarks.suite_md import render

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    plots = draw_plots(results, out / "plots")
    results["plots"] = [str(p.relative_to(out)) for p in plots]
    (out / "RESULTS.md").write_text(render(results))
    return plots


def main(argv: list[str] | None = None) -> int:
    from benchmarks.scenarios import run_all

    args = parse_args(argv)
    if args.render_only:
        results = orjson.loads((args.out / "results.json").read_bytes())
        write_outputs(results, args.out)
        print(f"wrote {args.out / 'RESULTS.md'} and plots from {args.out / 'results.json'}")
        return 0
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="junction-suite-") as tmp:
        logs = Path(tmp)
        if args.logs is not None:  # keep every process's stdout/stderr and the bodies sent
            logs = args.logs
            logs.mkdir(parents=True, exist_ok=True)
        suite = Suite(args, logs)
        busy = [f"{n} {p}" for n, p in suite.ports.all().items() if not port_is_free(p)]
        if busy:
            print(f"port busy: {', '.join(busy)}; pass --port-base", file=sys.stderr)
            return 2
        suite.results["machine"] = machine_info(args.python)
        suite.results["machine"]["junction_native"] = native_summary(args.python)
        suite.results["settings"] = {
            "scenarios": args.scenarios,
            "peers": args.peers,
            "runs": args.runs,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "quick": args.quick,
            "pinned": suite.cpus_ok,
            "tokens_per_s": args.tokens_per_s,
            "stream_tokens": args.stream_tokens,
            "command": shlex.join(["python", "-m", "benchmarks", *(argv or sys.argv[1:])]),
        }
        failed: str | None = None
        try:
            run_all(suite)
        except BenchError as e:
            failed = str(e)
            print(f"\nbenchmark failed: {e}", file=sys.stderr)
        finally:
            suite.services.stop_all()
        r = suite.results
        r["machine"]["loadavg_end"] = os.getloadavg()
        r["machine"]["background_busy_percent_after"] = background_busy_percent()
        r["elapsed_s"] = round(time.monotonic() - started, 1)
        r["commands"] = suite.commands
        if failed:
            r["errors"].append(failed)
        write_outputs(r, args.out)
        print(f"\nwrote {args.out / 'RESULTS.md'}, results.json and plots/ in {r['elapsed_s']} s")
    return 1 if failed else 0
