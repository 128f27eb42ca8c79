"""Which modules run compiled by mypyc, and whether the compiled binaries match their sources.

`tools/build_native.py` (run by `make native`, `make test` and `make run`) compiles the
modules named in ``NATIVE_MODULES`` with mypyc into extension modules placed beside their
sources (``proxy/protocol/codec.py`` gains ``codec.cpython-311-x86_64-linux-gnu.so``), all
backed by one shared library, ``proxy/_native__mypyc.*.so``. Python's import system prefers an
extension module to a ``.py`` of the same name, so nothing else changes: without the ``.so``
files (no C compiler, ``JUNCTION_NATIVE=0``, ``make clean-native``) the same modules run as
plain Python. This module only reports; it never builds and never imports a listed module.

A compiled module does not notice that its source changed. ``stale_extensions`` finds the
binaries older than their source (or whose source is gone), so the test session can refuse to
run old code under a new name.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Final

# The one list of compiled modules; the build script reads it from here. Everything on the
# per-request path that mypyc compiles cleanly. Left out on purpose: config/ and cli.py (run
# once at start), mock_provider/ (must stay independent of the build), server/ apart from
# streams.py (start-up and signals), admin/ (off the request path), routing/types.py and
# catalog.py (data built at load), routing/explain.py (a command), and dialects/transformers/
# (user classes subclass the transformer base).
NATIVE_MODULES: Final[tuple[str, ...]] = (
    "proxy.cache.anthropic_replay",
    "proxy.cache.capture",
    "proxy.cache.entry",
    "proxy.cache.flight",
    "proxy.cache.key",
    "proxy.cache.lru",
    "proxy.cache.openai_replay",
    "proxy.cache.policy",
    "proxy.cache.store",
    "proxy.dialects.errors",
    "proxy.dialects.pipeline",
    "proxy.dialects.tokens",
    "proxy.dialects.usage",
    "proxy.dialects.sse",
    "proxy.dialects.translate.a2o_request",
    "proxy.dialects.translate.a2o_response",
    "proxy.dialects.translate.a2o_stream",
    "proxy.dialects.translate.common",
    "proxy.dialects.translate.o2a_request",
    "proxy.dialects.translate.o2a_response",
    "proxy.dialects.translate.o2a_stream",
    "proxy.dialects.translate.provider_errors",
    "proxy.events",
    "proxy.filters.api",
    "proxy.filters.auth",
    "proxy.filters.hedge",
    "proxy.filters.body",
    "proxy.filters.cache",
    "proxy.filters.limit",
    "proxy.filters.local",
    "proxy.filters.passthrough",
    "proxy.filters.request_id",
    "proxy.filters.router",
    "proxy.filters.stream_start",
    "proxy.headers",
    "proxy.http.deadlines",
    "proxy.http.info",
    "proxy.http.stream",
    "proxy.limits.concurrency",
    "proxy.limits.gcra",
    "proxy.limits.spend",
    "proxy.observability.access_log",
    "proxy.observability.metrics",
    "proxy.observability.observer",
    "proxy.observability.proxy_metrics",
    "proxy.observability.trace_context",
    "proxy.observability.usage",
    "proxy.protocol.codec",
    "proxy.protocol.connection",
    "proxy.protocol.detect",
    "proxy.protocol.factory",
    "proxy.protocol.http1",
    "proxy.protocol.http1_common",
    "proxy.protocol.http1_h11",
    "proxy.protocol.http1_head",
    "proxy.protocol.http1_httptools",
    "proxy.protocol.http1_response",
    "proxy.protocol.http2",
    "proxy.protocol.http2_guard",
    "proxy.protocol.http2_headers",
    "proxy.protocol.http2_hpack",
    "proxy.protocol.http2_native",
    "proxy.protocol.http2_streams",
    "proxy.protocol.limits",
    "proxy.protocol.write_batch",
    "proxy.resilience.breaker",
    "proxy.resilience.health",
    "proxy.resilience.outcome",
    "proxy.resilience.outlier",
    "proxy.resilience.resources",
    "proxy.resilience.retry",
    "proxy.routing.decide",
    "proxy.routing.runtime",
    "proxy.routing.scenarios",
    "proxy.routing.selection",
    "proxy.routing.sessions",
    "proxy.routing.table",
    "proxy.routing.types",
    "proxy.server.streams",
    "proxy.upstream.api",
    "proxy.upstream.client",
    "proxy.upstream.connect",
    "proxy.upstream.dns",
    "proxy.upstream.exchange",
    "proxy.upstream.h2_frames",
    "proxy.upstream.http1",
    "proxy.upstream.http1_codec",
    "proxy.upstream.http1_h11",
    "proxy.upstream.http2",
    "proxy.upstream.pool",
    "proxy.upstream.read_batch",
    "proxy.upstream.tls",
)

# mypyc's group name: the shared library is this name plus "__mypyc", i.e. proxy/_native__mypyc.
NATIVE_GROUP: Final = "proxy._native"
_SHARED_LIB_STEM: Final = "_native__mypyc"


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """The listed modules split by how they run in this process."""

    compiled: tuple[str, ...]
    interpreted: tuple[str, ...]

    def summary(self) -> str:
        total = len(self.compiled) + len(self.interpreted)
        return f"{len(self.compiled)}/{total} modules compiled"


def is_extension_file(path: str | None) -> bool:
    return path is not None and path.endswith(tuple(EXTENSION_SUFFIXES))


def module_is_compiled(name: str) -> bool:
    """True when `name` is (or, if not imported yet, would be) loaded from an extension module."""
    module = sys.modules.get(name)
    if module is not None:
        return is_extension_file(getattr(module, "__file__", None))
    spec = importlib.util.find_spec(name)
    return spec is not None and is_extension_file(spec.origin)


def native_status() -> NativeStatus:
    compiled = tuple(name for name in NATIVE_MODULES if module_is_compiled(name))
    interpreted = tuple(name for name in NATIVE_MODULES if name not in compiled)
    return NativeStatus(compiled, interpreted)


def extension_stem(path: Path) -> str | None:
    """``codec`` for ``codec.cpython-311-x86_64-linux-gnu.so``; None for a non-extension."""
    for suffix in EXTENSION_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def stale_extensions(package_dir: Path) -> list[str]:
    """One line per compiled module under `package_dir` that would run code other than its
    source: the binary is older than the ``.py`` beside it, or the ``.py`` is gone."""
    problems: list[str] = []
    for binary in sorted(package_dir.rglob("*")):
        stem = extension_stem(binary)
        if stem is None or stem == _SHARED_LIB_STEM:
            continue
        source = binary.with_name(f"{stem}.py")
        if not source.exists():
            problems.append(f"{binary}: no {source.name} beside it")
        elif source.stat().st_mtime > binary.stat().st_mtime:
            problems.append(f"{binary}: older than {source.name}")
    return problems
