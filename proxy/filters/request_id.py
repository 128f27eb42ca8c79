"""Request ids: a client's sane ``x-request-id`` is kept, otherwise one is made here."""

from __future__ import annotations

import os

MAX_REQUEST_ID_BYTES = 128


class RequestIdSource:
    """Unique ids without a random draw per request: a random per-process prefix plus a
    counter (os.urandom is a syscall; this is a format call)."""

    __slots__ = ("_n", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex().encode()
        self._n = 0

    def next(self) -> bytes:
        self._n += 1
        return b"%s%08x" % (self._prefix, self._n)
