"""Session-wide checks: the suite runs the code in the tree, compiled or not.

The modules in proxy.native.NATIVE_MODULES may be compiled by mypyc into ``.so`` files beside
their sources (`make native`), and Python then imports the ``.so``. A binary older than its
source would run old code under the new file's name, so the session refuses to start when one
is found. The header and the summary say which build the run tested.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import proxy
from proxy.native import native_status, stale_extensions

PACKAGE_DIR = Path(proxy.__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    stale = stale_extensions(PACKAGE_DIR)
    if stale:
        listing = "\n  ".join(stale)
        raise pytest.UsageError(
            "compiled modules do not match their sources (they would run old code):\n  "
            f"{listing}\n"
            "run `make native` to rebuild them, or `make clean-native` to run pure Python"
        )


def pytest_report_header(config: pytest.Config) -> str:
    return f"junction native: {native_status().summary()} ({PACKAGE_DIR})"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # Also under -q, where the header is not shown: which build did this run test?
    terminalreporter.write_line(f"junction native: {native_status().summary()}")
