"""Processes the benchmark starts: pinned launch, readiness, CPU and memory readings, cleanup."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A precondition failed: a busy port, a missing tool, a server that won't start."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


@dataclass
class Service:
    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr_tail(self, max_bytes: int = 4000) -> str:
        try:
            data = self.stderr_path.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode(errors="replace")


@dataclass
class Services:
    """Everything the benchmark started; stop_all() ends each of them by its process group."""

    log_dir: Path
    started: list[Service] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None
    ) -> Service:
        out = self.log_dir / f"{name}.stdout"
        err = self.log_dir / f"{name}.stderr"
        with out.open("wb") as fo, err.open("wb") as fe:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                stdout=fo,
                stderr=fe,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        service = Service(name, argv, popen, out, err)
        self.started.append(service)
        return service

    def wait_ready(self, service: Service, port: int, timeout_s: float = 10.0) -> None:
        """Poll `port` until it accepts; BenchError with the service's stderr if it won't."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if service.popen.poll() is not None:
                raise BenchError(
                    f"{service.name} exited with code {service.popen.returncode} before listening"
                    f" on port {port}.\ncommand: {shlex.join(service.argv)}\n"
                    f"stderr:\n{service.stderr_tail()}"
                )
            if port_accepts(port):
                return
            time.sleep(0.05)
        raise BenchError(
            f"{service.name} did not listen on port {port} within {timeout_s:g} s.\n"
            f"command: {shlex.join(service.argv)}\nstderr:\n{service.stderr_tail()}"
        )

    def stop(self, service: Service) -> None:
        if service.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.pid, signal.SIGTERM)
            try:
                service.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.pid, signal.SIGKILL)
                service.popen.wait(timeout=5)
        else:
            # The leader is gone; anything it left in its group still goes.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.pid, signal.SIGKILL)
        if service in self.started:
            self.started.remove(service)

    def stop_all(self) -> None:
        for service in reversed(list(self.started)):
            self.stop(service)


def process_tree(root: int) -> list[int]:
    """root and its descendants (a multi-process server's workers count too)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


@dataclass(frozen=True, slots=True)
class CpuSample:
    ticks_ns: int  # utime + stime from /proc/PID/stat (clock-tick granularity)
    sched_ns: int  # run time from /proc/PID/schedstat (exact)


def cpu_sample(root: int) -> CpuSample:
    ticks = sched = 0
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            sched += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a worker that exited between listing and reading
    return CpuSample(ticks * 1_000_000_000 // _CLK_TCK, sched)


def rss_kb(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total
