"""Throughput with observability off, with access log + metrics, and with tracing at 100 %.

    .venv/bin/python benchmarks/observability_ab.py [--duration 5] [--rounds 1]

The passthrough benchmark's request (benchmarks/workload.py) through one Junction worker to
benchmarks/canned_server.py, driven by wrk (1 thread, 32 connections), for each variant in
turn; Junction on core 0, wrk and the canned server on core 1 when taskset exists. With
tracing on, spans are exported by OTLP/HTTP to a second canned server (it answers 200 to
anything). Prints requests/s per variant and each as a ratio to everything off. Loopback
only; each run is bounded by ``--duration``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.procs import cpu_sample, pinned, port_accepts
from benchmarks.workload import BODY, HEADERS, MODEL
from benchmarks.wrk import lua_script, parse_report

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "off": "log: {access_log: false}\nmetrics: {enabled: false}\n",
    "log": "log: {access_log: true, access_log_file: %(log)s}\nmetrics: {enabled: false}\n",
    "metrics": "log: {access_log: false}\nmetrics: {enabled: true}\n",
    "log+metrics": "log: {access_log: true, access_log_file: %(log)s}\nmetrics: {enabled: true}\n",
    "log+metrics+tracing": (
        "log: {access_log: true, access_log_file: %(log)s}\nmetrics: {enabled: true}\n"
        "tracing: {enabled: true, sample_ratio: 1.0, "
        "otlp_endpoint: 'http://127.0.0.1:%(otlp)d/v1/traces'}\n"
    ),
}
BASE = """\
listen: {host: 127.0.0.1, port: %(port)d}
admin: {host: 127.0.0.1, port: %(admin)d}
providers:
  - name: mock
    dialect: anthropic
    base_url: http://127.0.0.1:%(upstream)d
    api_key: bench
    models: [%(model)s]
router: {default: "mock,%(model)s"}
"""


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_accepts(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing listens on {port}")
        time.sleep(0.05)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--port-base", type=int, default=18880)
    p.add_argument("--only", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    taskset = shutil.which("taskset") is not None
    core0, core1 = (0, 1) if taskset else (None, None)
    ports = {k: args.port_base + i for i, k in enumerate(("upstream", "otlp", "port", "admin"))}
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="junction-obs-ab-"))
    script = work / "post.lua"
    script.write_text(lua_script("POST", HEADERS, BODY))
    canned = [
        subprocess.Popen(
            pinned(core1, [py, str(REPO / "benchmarks/canned_server.py"), "--port", str(port)])
        )
        for port in (ports["upstream"], ports["otlp"])
    ]
    variants = {name: VARIANTS[name] for name in VARIANTS if name in args.only}
    results: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    try:
        wait_port(ports["upstream"])
        for _ in range(args.rounds):
            for name, extra in variants.items():
                cfg = work / f"{name}.yaml"
                values = {**ports, "model": MODEL, "log": str(work / "access.log")}
                cfg.write_text(BASE % values + extra % values)
                errors = open(work / f"{name}.stderr", "wb")  # noqa: SIM115 - closed below
                junction = subprocess.Popen(
                    pinned(core0, [py, "-m", "proxy", "serve", "--config", str(cfg)]),
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    cwd=REPO,
                )
                try:
                    try:
                        wait_port(ports["port"])
                    except SystemExit:
                        tail = (work / f"{name}.stderr").read_text(errors="replace")[-2000:]
                        raise SystemExit(f"Junction did not start ({name}):\n{tail}") from None
                    url = f"http://127.0.0.1:{ports['port']}/v1/messages"
                    warm = ["wrk", "-t1", "-c32", "-d1s", "-s", str(script), url]
                    subprocess.run(pinned(core1, warm), capture_output=True, check=True)
                    argv = ["wrk", "-t1", "-c32", f"-d{args.duration:g}s", "-s", str(script), url]
                    before = cpu_sample(junction.pid).sched_ns
                    out = subprocess.run(
                        pinned(core1, argv), capture_output=True, text=True, check=True
                    ).stdout
                    cpu_ns = cpu_sample(junction.pid).sched_ns - before
                    report = parse_report(out)
                    assert report["non_2xx_3xx"] == 0, out
                    cpu_us = cpu_ns / 1000 / report["requests"]
                    results[name].append(float(report["rps"]))
                    cpu[name].append(cpu_us)
                    print(
                        f"{name:22s} {report['rps']:9.0f} req/s  {cpu_us:7.1f} us CPU/request",
                        flush=True,
                    )
                finally:
                    junction.terminate()
                    junction.wait(30)
                    errors.close()
    finally:
        for c in canned:
            c.terminate()
            c.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    # The machine may be shared: Junction's own CPU time per request is the steadier figure
    # (one worker is CPU-bound, so throughput goes as its inverse).
    base, base_cpu = max(results["off"]), min(cpu["off"])
    for name, runs in results.items():
        best_cpu = min(cpu[name])
        print(
            f"{name:22s} best {max(runs):9.0f} req/s (x{max(runs) / base:.3f})  "
            f"{best_cpu:6.1f} us CPU/request (throughput x{base_cpu / best_cpu:.3f})"
        )


if __name__ == "__main__":
    main()
