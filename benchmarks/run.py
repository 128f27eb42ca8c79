"""Measures Junction against the mock provider directly and writes benchmarks/RESULTS-overhead.md.

    bash benchmarks/run.sh              # what `make bench` runs
    .venv/bin/python benchmarks/run.py --quick   # 2-second scenarios, for a smoke test

Layout on a 2-core machine: the mock provider and the load generator share core 1, Junction
(one worker) has core 0. Every scenario is measured straight to the mock and through Junction
in the same run. Every number in RESULTS-overhead.md comes from this run; nothing is typed in.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks.idle_conns import IdleConnections
from benchmarks.machine import background_busy_percent, machine_info
from benchmarks.peers import Ports, nginx_launch
from benchmarks.procs import (
    BenchError,
    Service,
    Services,
    cpu_sample,
    pinned,
    port_is_free,
    rss_kb,
)
from benchmarks.results_md import render_results
from benchmarks.target import build_request, loopback_target
from benchmarks.workload import BODY, CONFIG_TEMPLATE, HEADERS, MODEL, check_request, url
from benchmarks.wrk import lua_script, parse_report

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
PROXY_CPU, LOAD_CPU = 0, 1  # Junction alone on core 0; generator and mock on core 1
SCENARIOS = [
    ("a", "max throughput", ["--closed-loop", "--connections", "32"]),
    ("b", "1,000 req/s, 1 connection", ["--rate", "1000", "--connections", "1"]),
    ("c", "10,000 req/s, 32 connections", ["--rate", "10000", "--connections", "32"]),
]


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.py = str(Path(args.python))
        self.services = Services(work)
        self.commands: list[str] = []
        self.results: dict[str, Any] = {"scenarios": {}, "errors": []}
        self.junction: Service | None = None  # None: never started, or found dead
        self.junction_pid = 0
        self.cpus_ok = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None

    # -- helpers -------------------------------------------------------------------------------
    def cpu(self, core: int) -> int | None:
        return core if self.cpus_ok else None

    def record(self, argv: list[str]) -> None:
        # Commands run from the repository root; show them as one would type them there.
        self.commands.append(shlex.join(argv).replace(f"{REPO}/", ""))

    def start(self, name: str, argv: list[str], core: int, port: int) -> Service:
        full = pinned(self.cpu(core), argv)
        self.record(full)
        service = self.services.start(name, full, REPO)
        self.services.wait_ready(service, port)
        return service

    def loadgen(
        self, name: str, url: str, mode: list[str], measure: dict[str, int]
    ) -> dict[str, Any]:
        """One load generator run; `measure` names the server processes whose CPU to read."""
        a = self.args
        out = self.work / f"loadgen-{len(self.commands)}.json"
        argv = [
            self.py,
            str(BENCH / "loadgen.py"),
            "--url",
            url,
            *mode,
            "--duration",
            f"{a.duration:g}",
            "--warmup",
            f"{a.warmup:g}",
            "--body",
            BODY,
            "--json-out",
            str(out),
        ]
        for k, v in HEADERS:
            argv += ["--header", f"{k}: {v}"]
        full = pinned(self.cpu(LOAD_CPU), argv)
        self.record(full)
        print(f"\n== {name}", flush=True)
        before = {role: cpu_sample(pid) for role, pid in measure.items()}
        proc = subprocess.run(full, cwd=REPO, timeout=a.warmup + a.duration + 60, check=False)
        after = {role: cpu_sample(pid) for role, pid in measure.items()}
        if proc.returncode != 0 or not out.exists():
            raise BenchError(f"load generator failed for {name} (exit {proc.returncode})")
        result: dict[str, Any] = orjson.loads(out.read_bytes())
        per_request_us = 1000 * max(1, result["total_responses"])
        result["server_cpu"] = {
            role: {
                "us_per_request_sched": round(
                    (after[role].sched_ns - before[role].sched_ns) / per_request_us, 1
                ),
                "us_per_request_stat": round(
                    (after[role].ticks_ns - before[role].ticks_ns) / per_request_us, 1
                ),
            }
            for role in measure
        }
        return result

    def wrk(self, name: str, url: str) -> dict[str, Any] | None:
        if shutil.which("wrk") is None:
            return None
        script = self.work / "post.lua"
        script.write_text(lua_script("POST", HEADERS, BODY))
        argv = [
            "wrk",
            "-t1",
            "-c32",
            f"-d{self.args.duration:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ]
        full = pinned(self.cpu(LOAD_CPU), argv)
        self.record(full)
        print(f"\n== {name}", flush=True)
        proc = subprocess.run(
            full, capture_output=True, text=True, timeout=self.args.duration + 30, check=False
        )
        print(proc.stdout, end="", flush=True)
        if proc.returncode != 0:
            self.results["errors"].append(f"{name}: wrk exited {proc.returncode}: {proc.stderr}")
            return None
        return parse_report(proc.stdout)

    def canned(self, name: str, port: int, core: int) -> Service:
        argv = [self.py, str(BENCH / "canned_server.py"), "--port", str(port)]
        return self.start(name, argv, core, port)

    # -- scenarios -----------------------------------------------------------------------------
    def run(self) -> None:
        base = self.args.port_base
        ports = {
            "mock": base,
            "junction": base + 1,
            "admin": base + 2,
            "canned": base + 3,
            "nginx": base + 4,
            "nginx_h2": base + 5,
            "nginx_fault": base + 6,
        }
        busy = [f"{name} {port}" for name, port in ports.items() if not port_is_free(port)]
        if busy:
            raise BenchError(f"port busy: {', '.join(busy)}; free it or pass --port-base")
        self.results["ports"] = ports
        self.calibrate(ports["canned"])
        mock = self.start("mock", self.mock_command(ports["mock"]), LOAD_CPU, ports["mock"])
        check_request(ports["mock"], "mock provider")
        self.start_junction(ports)
        if self.junction_alive("start"):  # d. memory first, before load grows caches and pools
            self.memory(ports["junction"])
        self.against_mock(ports, {"mock": mock.pid})
        self.nginx_reference(ports, {"mock": mock.pid})
        if self.junction_alive("the load scenarios"):
            self.results["memory"]["rss_after_load_kb"] = rss_kb(self.junction_pid)
        # a'. The same as a. with an upstream that costs almost nothing, so that the shared
        # generator-and-upstream core is not what limits Junction: the canned server takes
        # over the mock's port, and Junction's pool reconnects to it during the warmup.
        self.services.stop(mock)
        upstream = self.canned("canned-upstream", ports["mock"], LOAD_CPU)
        closed = ["--closed-loop", "--connections", "32"]
        title = "a'. max throughput, {} canned upstream"
        sc = self.results["scenarios"]
        servers = {"upstream": upstream.pid}
        sc["a2_direct"] = self.loadgen(
            title.format("direct to the"), url(ports["mock"]), closed, servers
        )
        self.via_junction("a2_junction", title.format("Junction ->"), ports, closed, servers)

    def calibrate(self, port: int) -> None:
        """The generator's own ceiling, against a server that costs almost nothing."""
        canned = self.canned("canned", port, PROXY_CPU)
        sc = self.results["scenarios"]
        sc["calibration"] = self.loadgen(
            "calibration: closed loop -> canned server",
            url(port),
            ["--closed-loop", "--connections", "32"],
            {"canned": canned.pid},
        )
        sc["calibration_open"] = self.loadgen(
            "calibration: open loop 20,000 req/s -> canned server",
            url(port),
            ["--rate", "20000", "--connections", "32"],
            {"canned": canned.pid},
        )
        self.services.stop(canned)

    def against_mock(self, ports: dict[str, int], servers: dict[str, int]) -> None:
        sc = self.results["scenarios"]
        direct = url(ports["mock"])
        for key, title, mode in SCENARIOS:
            sc[f"{key}_direct"] = self.loadgen(f"{key}. {title}, direct", direct, mode, servers)
            self.via_junction(f"{key}_junction", f"{key}. {title}, Junction", ports, mode, servers)
            if key == "a":
                sc["a_wrk_direct"] = self.wrk("a. wrk, direct", direct)
                if self.junction_alive("a. max throughput"):
                    sc["a_wrk_junction"] = self.wrk("a. wrk, Junction", url(ports["junction"]))

    def nginx_reference(self, ports: dict[str, int], servers: dict[str, int]) -> None:
        """b. and c. through nginx on Junction's core: what any proxy hop costs on this machine.

        On a VM most of the one-connection figure is waking an idle core twice per request;
        nginx, measured in the same run, shows how much of it is the hop rather than Junction.
        """
        if self.args.no_nginx:
            return
        peer_ports = replace(
            Ports.from_base(0),  # only the mock's and nginx's ports are used
            mock=ports["mock"],
            mock_bad=ports["mock"],
            nginx=ports["nginx"],
            nginx_h2=ports["nginx_h2"],
            nginx_fault=ports["nginx_fault"],
        )
        how = nginx_launch(self.work, peer_ports)
        if isinstance(how, str):
            self.results["errors"].append(f"nginx reference not measured: {how}")
            return
        self.results["nginx_version"] = how.version
        nginx = self.start("nginx", how.argv, PROXY_CPU, how.port)
        try:
            target = f"http://127.0.0.1:{how.port}/v1/messages"
            measure = servers | {"nginx": nginx.pid}
            sc = self.results["scenarios"]
            for key, title, mode in SCENARIOS[1:]:
                sc[f"{key}_nginx"] = self.loadgen(f"{key}. {title}, nginx", target, mode, measure)
        finally:
            self.services.stop(nginx)

    def via_junction(
        self, key: str, title: str, ports: dict[str, int], mode: list[str], servers: dict[str, int]
    ) -> None:
        """One scenario through Junction, unless it is down; notes it if it dies meanwhile."""
        if not self.junction_alive(title):
            return
        try:
            self.results["scenarios"][key] = self.loadgen(
                title, url(ports["junction"]), mode, servers | {"junction": self.junction_pid}
            )
        except BenchError:
            if self.junction_alive(title):
                raise  # the generator failed, not Junction
        if not self.junction_alive(title):  # died meanwhile: its partial figures would mislead
            self.results["scenarios"].pop(key, None)

    def junction_alive(self, during: str) -> bool:
        """Whether Junction still runs; the first time it is found dead, says so with its stderr."""
        junction = self.junction
        if junction is None:
            return False
        code = junction.popen.poll()
        if code is None:
            return True
        self.junction = None
        message = (
            f"Junction exited with code {code} during {during}; no figures through it from"
            f" then on.\nJunction's stderr:\n{junction.stderr_tail()}"
        )
        print(f"\nJUNCTION FAILED: {message}\n", file=sys.stderr, flush=True)
        self.results["junction_error"] = message
        return False

    def mock_command(self, port: int) -> list[str]:
        junction_cli = Path(self.py).with_name("junction")
        if (REPO / "proxy" / "mock_provider" / "cli.py").exists():
            if junction_cli.exists():
                return [str(junction_cli), "mock-provider", "--port", str(port)]
            return [self.py, "-m", "proxy.mock_provider", "--port", str(port)]
        self.results["errors"].append(
            "proxy/mock_provider is missing: the canned server stood in for the mock provider"
        )
        return [self.py, str(BENCH / "canned_server.py"), "--port", str(port)]

    def start_junction(self, ports: dict[str, int]) -> None:
        config = self.work / "junction-bench.yaml"
        config.write_text(
            CONFIG_TEMPLATE.format(
                port=ports["junction"],
                admin_port=ports["admin"],
                mock_port=ports["mock"],
                model=MODEL,
            )
        )
        self.results["junction_config"] = config.read_text()
        argv = [self.py, "-m", "proxy", "serve", "--config", str(config)]
        try:
            junction = self.start("junction", argv, PROXY_CPU, ports["junction"])
            self.junction_pid = junction.pid
            time.sleep(0.5)  # let start-up allocations settle before the idle reading
            self.results["memory"] = {"rss_idle_after_start_kb": rss_kb(self.junction_pid)}
            try:
                check_request(ports["junction"], "Junction")
            except BenchError as e:
                raise BenchError(f"{e}\nJunction's stderr:\n{junction.stderr_tail()}") from None
        except BenchError as e:
            print(f"\nJUNCTION FAILED: {e}\n", file=sys.stderr, flush=True)
            self.results["junction_error"] = str(e)
            self.results.pop("memory", None)
            return
        self.junction = junction

    def memory(self, port: int) -> None:
        n = self.args.idle_connections
        request = build_request("POST", loopback_target(url(port)), HEADERS, BODY.encode())
        print(f"\n== d. memory: {n} idle keep-alive connections", flush=True)

        async def measure() -> dict[str, Any]:
            warm = IdleConnections()
            await warm.open("127.0.0.1", port, request, 1)
            await warm.close()
            await asyncio.sleep(0.3)
            before = rss_kb(self.junction_pid)
            conns = IdleConnections()
            try:
                await conns.open("127.0.0.1", port, request, n)
                await asyncio.sleep(0.5)
                after = rss_kb(self.junction_pid)
            finally:
                await conns.close()
            return {
                "connections": n,
                "rss_before_kb": before,
                "rss_after_kb": after,
                "kb_per_connection": round((after - before) / n, 2),
                "statuses": {str(k): v for k, v in conns.statuses.items()},
            }

        self.commands.append(
            f"# run.py itself: {n} keep-alive connections to 127.0.0.1:{port}, one request"
            " on each, one at a time, then held idle while VmRSS is read"
        )
        self.results["memory"].update(asyncio.run(measure()))
        print(orjson.dumps(self.results["memory"]).decode(), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--quick", action="store_true", help="2 s scenarios, 200 idle connections")
    p.add_argument("--idle-connections", type=int, default=1000)
    p.add_argument(
        "--port-base", type=int, default=18780, help="mock, Junction, admin, canned, nginx (+0..+6)"
    )
    p.add_argument("--no-nginx", action="store_true", help="skip the nginx reference for b. and c.")
    p.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    p.add_argument("--results", type=Path, default=BENCH / "RESULTS-overhead.md")
    p.add_argument("--json", type=Path, default=BENCH / "results-overhead.json")
    p.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite --results from the figures saved in --json",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.idle_connections = 2.0, 0.5, 200
    if not Path(args.python).exists():
        args.python = sys.executable
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        args.results.write_text(render_results(orjson.loads(args.json.read_bytes())))
        print(f"wrote {args.results} from {args.json}")
        return 0
    # SIGTERM/SIGHUP unwind through `finally`, so every started process is stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="junction-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        bench.results["machine"] = machine_info(args.python)
        bench.results["settings"] = {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "pinned": bench.cpus_ok,
            "body": BODY,
            "headers": [f"{k}: {v}" for k, v in HEADERS],
        }
        failed: str | None = None
        try:
            bench.run()
        except BenchError as e:
            failed = str(e)
            print(f"\nbenchmark failed: {e}", file=sys.stderr)
        finally:
            bench.services.stop_all()
        bench.results["machine"]["loadavg_end"] = os.getloadavg()
        bench.results["machine"]["background_busy_percent_after"] = background_busy_percent()
        bench.results["commands"] = bench.commands
        if failed:
            bench.results["errors"].append(failed)
        # A run that measured nothing leaves the last RESULTS-overhead.md and its JSON as they were.
        if failed is None or bench.results["scenarios"].get("a_direct"):
            args.json.write_bytes(orjson.dumps(bench.results, option=orjson.OPT_INDENT_2))
            args.results.write_text(render_results(bench.results))
            print(f"\nwrote {args.results} and {args.json}")
    if failed or "junction_error" in bench.results:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
