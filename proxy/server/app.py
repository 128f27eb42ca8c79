"""`junction serve`: one worker in this process, or N workers sharing the port.

With ``server.workers`` > 1 the parent forks the workers before any event loop exists; each
binds the port with SO_REUSEPORT, so the kernel spreads connections across them. The parent
only relays signals (TERM/INT drain, HUP reload) and restarts a worker that died on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.errors import ConfigError
from proxy.native import native_status
from proxy.observability.app_log import configure_logging
from proxy.server.gc_pacer import GcPacer, tune_gc
from proxy.server.loop import loop_factory
from proxy.server.malloc import tune_malloc
from proxy.server.worker import Worker

if TYPE_CHECKING:
    from proxy.config.model import JunctionConfig

log = logging.getLogger("junction")

RESTART_BACKOFF_S = 1.0


def serve(
    config: JunctionConfig,
    *,
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> int:
    configure_logging(config.log)  # JSON or text lines on standard error (log.format)
    workers = config.server.workers
    if workers <= 1:
        return run_worker(config, config_path, overrides, reuse_port=False)
    return _supervise(config, config_path, overrides, workers)


def run_worker(
    config: JunctionConfig,
    config_path: Path | None,
    overrides: Mapping[str, Any] | None,
    *,
    reuse_port: bool,
) -> int:
    try:
        factory = loop_factory(config.server.loop)
    except ConfigError as exc:
        print(f"junction: config error:\n{exc.message}", file=sys.stderr)
        return 2

    async def main() -> int:
        worker = Worker(config, config_path=config_path, overrides=overrides, reuse_port=reuse_port)
        try:
            await worker.start()
        except ConfigError as exc:
            print(f"junction: {exc.message}", file=sys.stderr)
            return 2
        worker.install_signal_handlers()
        tune_gc()
        pacer = GcPacer(asyncio.get_running_loop())
        pacer.start()
        tune_malloc()
        scheme = "https" if config.listen.tls is not None else "http"
        log.info(
            "listening on %s://%s:%d (admin %s; native: %s)",
            scheme,
            config.listen.host,
            worker.port,
            f"http://{config.admin.host}:{worker.admin_port}" if worker.admin_port else "off",
            native_status().summary(),
        )
        try:
            code = await worker.run_until_stopped()
        finally:
            pacer.stop()
        log.info("drained, exiting")
        return code

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """A worker must not outlive its supervisor (killed with SIGKILL, or crashed): on Linux
    the kernel then sends the worker SIGTERM, which drains it like any stop. Elsewhere the
    supervisor's own signal relay is all there is."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the call above took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _supervise(
    config: JunctionConfig,
    config_path: Path | None,
    overrides: Mapping[str, Any] | None,
    workers: int,
) -> int:
    children: dict[int, int] = {}  # pid -> slot
    stopping = False

    def spawn(slot: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # child
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            _die_with(parent)
            code = 1
            try:
                code = run_worker(config, config_path, overrides, reuse_port=True)
            finally:
                os._exit(code)
        children[pid] = slot

    def relay(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, relay)
    for slot in range(workers):
        spawn(slot)
    log.info("started %d workers", workers)
    worst = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        slot = children.pop(pid, -1)
        code = os.waitstatus_to_exitcode(status)
        if code == 2 and not stopping:
            # A worker that cannot start (bad config, busy port) will not do better on retry.
            log.error("worker %d could not start; stopping", pid)
            relay(signal.SIGTERM, None)
            worst = 2
            continue
        if stopping or slot < 0:
            worst = max(worst, 0 if code == 0 else 1)
            continue
        log.error("worker %d exited with %d; restarting it", pid, code)
        time.sleep(RESTART_BACKOFF_S)
        if not stopping:
            spawn(slot)
    return worst
