"""proxy.native: the compiled-module list, the status report and the stale-binary check."""

from __future__ import annotations

import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import proxy
from proxy.native import (
    NATIVE_MODULES,
    NativeStatus,
    extension_stem,
    native_status,
    stale_extensions,
)

PACKAGE_DIR = Path(proxy.__file__).resolve().parent
SUFFIX = EXTENSION_SUFFIXES[0]  # e.g. ".cpython-311-x86_64-linux-gnu.so"

# Modules that stay plain Python: start-up only (pydantic models, argument parsing), the mock
# provider (independent of the build), and the module that reports on the build.
NEVER_COMPILED = ("proxy.cli", "proxy.config.", "proxy.mock_provider.", "proxy.native")


def test_every_listed_module_is_a_plain_source_file() -> None:
    assert len(set(NATIVE_MODULES)) == len(NATIVE_MODULES)
    for name in NATIVE_MODULES:
        path = PACKAGE_DIR.parent.joinpath(*name.split(".")).with_suffix(".py")
        assert path.is_file(), name
        assert path.name != "__init__.py", name


@pytest.mark.parametrize("prefix", NEVER_COMPILED)
def test_modules_that_must_stay_python_are_not_listed(prefix: str) -> None:
    assert [name for name in NATIVE_MODULES if name.startswith(prefix)] == []


def test_status_reports_how_each_module_was_loaded() -> None:
    status = native_status()
    assert sorted(status.compiled + status.interpreted) == sorted(NATIVE_MODULES)
    for name in NATIVE_MODULES:
        loaded_from = importlib.import_module(name).__file__
        assert loaded_from is not None
        assert (name in status.compiled) == loaded_from.endswith(tuple(EXTENSION_SUFFIXES)), name


def test_summary_counts_compiled_modules() -> None:
    status = NativeStatus(compiled=("a", "b"), interpreted=("c",))
    assert status.summary() == "2/3 modules compiled"
    assert NativeStatus((), ()).summary() == "0/0 modules compiled"


def test_extension_stem() -> None:
    assert extension_stem(Path(f"pkg/codec{SUFFIX}")) == "codec"
    assert extension_stem(Path("pkg/codec.so")) == "codec"
    assert extension_stem(Path("pkg/codec.py")) is None
    assert extension_stem(Path("pkg/codec.c")) is None


def _write(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_binaries_newer_than_their_sources_are_fine(tmp_path: Path) -> None:
    _write(tmp_path / "a.py", 1000.0)
    _write(tmp_path / f"a{SUFFIX}", 2000.0)
    _write(tmp_path / "sub" / "b.py", 1000.0)
    _write(tmp_path / "sub" / f"b{SUFFIX}", 1000.0)  # same second: built from this source
    _write(tmp_path / "c.py", 3000.0)  # no binary: runs as Python
    assert stale_extensions(tmp_path) == []


def test_a_binary_older_than_its_source_is_stale(tmp_path: Path) -> None:
    _write(tmp_path / "sub" / "b.py", 2000.0)
    binary = _write(tmp_path / "sub" / f"b{SUFFIX}", 1000.0)
    assert stale_extensions(tmp_path) == [f"{binary}: older than b.py"]


def test_a_binary_without_its_source_is_stale(tmp_path: Path) -> None:
    binary = _write(tmp_path / f"gone{SUFFIX}", 1000.0)
    assert stale_extensions(tmp_path) == [f"{binary}: no gone.py beside it"]


def test_the_shared_library_has_no_source_of_its_own(tmp_path: Path) -> None:
    _write(tmp_path / f"_native__mypyc{SUFFIX}", 1000.0)
    _write(tmp_path / "notes.txt", 1000.0)
    assert stale_extensions(tmp_path) == []
