"""tune_malloc: glibc keeps freed heap pages mapped, so churn stops costing page faults."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest

from proxy.server.malloc import tune_malloc


def _has_glibc_mallopt() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallopt") and sys.platform.startswith("linux")
    except OSError:
        return False


glibc_only = pytest.mark.skipif(not _has_glibc_mallopt(), reason="needs glibc's mallopt")

# A burst keeps ~0.5 MB of small buffers alive, then frees them at once (as a flushed batch of
# access-log lines does): with glibc's defaults the freed heap top goes back to the kernel and
# the next burst faults it in again; tuned, the pages stay mapped.
_CHURN = textwrap.dedent(
    """
    import resource, sys
    from proxy.server.malloc import tune_malloc
    if sys.argv[1] == "tuned":
        assert tune_malloc({})
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def burst():
        kept = [b"x" * 1000 + bytes([i % 256]) for i in range(512)]
        return len(kept)
    for _ in range(5):
        burst()
    before = faults()
    for _ in range(200):
        burst()
    print(faults() - before)
    """
)


def _churn_faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CHURN, mode],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    return int(out.stdout.strip())


@glibc_only
def test_tuned_allocator_stops_faulting_on_buffer_churn() -> None:
    default = _churn_faults("default")
    tuned = _churn_faults("tuned")
    assert default > 200 * 32  # each burst faulted its pages in afresh
    assert tuned < 200  # they stayed mapped


@glibc_only
@pytest.mark.parametrize(
    "env",
    [
        {"MALLOC_TRIM_THRESHOLD_": "131072"},
        {"MALLOC_MMAP_THRESHOLD_": "131072"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"},
    ],
)
def test_operator_tunables_win(env: dict[str, str]) -> None:
    assert tune_malloc(env) is False


@glibc_only
def test_unrelated_glibc_tunables_do_not_block_it() -> None:
    assert tune_malloc({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"}) is True
