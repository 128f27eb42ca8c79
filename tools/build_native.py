"""Compile Junction's hot path with mypyc, in place, or fall back to plain Python.

    python tools/build_native.py build    compile proxy.native.NATIVE_MODULES (the default)
    python tools/build_native.py off      move the binaries aside: run pure Python
    python tools/build_native.py stash    the same, for `make test-pure`
    python tools/build_native.py unstash  put them back (dropped if the sources changed since)
    python tools/build_native.py clean    delete the binaries and build/native/

How it works: the modules listed in proxy/native.py go through mypyc's `mypycify` (one shared
library, `proxy/_native__mypyc`, plus one small shim extension per module) and setuptools'
`build_ext` into build/native/; each finished .so is then copied next to its .py and renamed
into place, so a process that already has the old binary mapped keeps a valid file.
setuptools is driven directly (no setup() call), so pyproject.toml's metadata is never parsed
by whatever setuptools the virtualenv has.

`build` never fails for lack of a toolchain: no mypy, no C compiler or no Python headers, or a
failed compile, print one warning, remove the in-tree binaries and exit 0, so the same modules
run as plain Python. `--strict` (used by `make native`) exits 1 instead. JUNCTION_NATIVE=0
makes `build` behave as `off`.

A digest of every source mypy reads from the project (proxy/**/*.py, pyproject.toml, this
script) plus the mypy and Python versions is kept in build/native/manifest.json: when it
matches and every binary is present, `build` only refreshes their timestamps. The digest
covers uncompiled modules too because mypyc inlines `Final` literals from any module it sees.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.native import NATIVE_GROUP, NATIVE_MODULES, extension_stem  # noqa: E402

PACKAGE = ROOT / "proxy"
BUILD = ROOT / "build" / "native"
C_DIR = BUILD / "c"
LIB_DIR = BUILD / "lib"
TEMP_DIR = BUILD / "temp"
STASH = BUILD / "stash"
LOG = BUILD / "build.log"
MANIFEST = BUILD / "manifest.json"
FAILED = BUILD / "failed.json"  # the digest and reason of the last failed build
STAMP = BUILD / "stamp"
OPT_LEVEL = "3"


def say(message: str) -> None:
    print(f"native: {message}", flush=True)


def warn(message: str, note: str = "") -> None:
    line = f"WARNING: native build: {message}; running pure Python{note}"
    print(line, file=sys.stderr, flush=True)


def module_path(name: str) -> Path:
    return ROOT.joinpath(*name.split(".")).with_suffix(".py")


def ext_filename(name: str) -> str:
    """The in-tree path, relative to ROOT, of extension module `name`."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or EXTENSION_SUFFIXES[0]
    return os.path.join(*name.split(".")) + suffix


def expected_binaries() -> list[str]:
    names = [*NATIVE_MODULES, f"{NATIVE_GROUP}__mypyc"]
    return [ext_filename(name) for name in names]


def in_tree_binaries() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*") if extension_stem(p) is not None)


def digest() -> str:
    h = hashlib.sha256()
    try:
        from mypy.version import __version__ as mypy_version
    except ImportError:
        mypy_version = "none"
    h.update(f"{sys.version}\0{mypy_version}\0{OPT_LEVEL}\0".encode())
    inputs = [ROOT / "pyproject.toml", Path(__file__).resolve(), *sorted(PACKAGE.rglob("*.py"))]
    for path in inputs:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_manifest() -> str | None:
    value = read_json(MANIFEST).get("digest")
    return value if isinstance(value, str) else None


def forget_build() -> None:
    for path in (STAMP, MANIFEST):
        path.unlink(missing_ok=True)


def remove_binaries() -> int:
    binaries = in_tree_binaries()
    for path in binaries:
        path.unlink()
    return len(binaries)


def stash() -> int:
    """Move the in-tree binaries under build/native/stash/, keeping their timestamps."""
    binaries = in_tree_binaries()
    for path in binaries:
        target = STASH / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    STAMP.unlink(missing_ok=True)  # make must run `build` again, which unstashes
    return len(binaries)


def unstash() -> int:
    """Put stashed binaries back when they still match the sources; otherwise drop them."""
    if not STASH.exists():
        return 0
    stashed = sorted(p for p in STASH.rglob("*") if p.is_file())
    fresh = read_manifest() == digest()
    restored = 0
    for path in stashed:
        if fresh:
            target = ROOT / path.relative_to(STASH)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            restored += 1
    shutil.rmtree(STASH)
    if fresh:
        STAMP.touch()
    else:
        forget_build()
    return restored


def preflight() -> str | None:
    """Why compiling cannot work here, or None."""
    for name in ("mypyc", "setuptools"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed in {sys.prefix} (`make native` installs it)"
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        return f"no Python headers ({include} missing; Debian: python3-dev)"
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc!r} not found; Debian: build-essential)"
    return None


def compile_in_child() -> None:
    """The compile proper, in a child process whose output goes to the log: mypyc reports type
    errors and the C compiler its warnings on the process's own file descriptors."""
    from mypyc.build import mypycify

    setuptools = importlib.import_module("setuptools")  # untyped in older releases

    os.chdir(ROOT)
    paths = [str(module_path(name).relative_to(ROOT)) for name in NATIVE_MODULES]
    extensions = mypycify(
        paths,
        opt_level=OPT_LEVEL,
        target_dir=str(C_DIR.relative_to(ROOT)),
        group_name=NATIVE_GROUP,
    )
    dist = setuptools.Distribution({"name": "junction-native", "ext_modules": extensions})
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib = str(LIB_DIR)
    cmd.build_temp = str(TEMP_DIR)
    cmd.inplace = False
    cmd.parallel = os.cpu_count() or 1
    dist.run_command("build_ext")


def install_built() -> None:
    """Copy each built binary beside its source under a temporary name, then rename it into
    place: a running process that mapped the previous file keeps its own inode."""
    wanted = set(expected_binaries())
    for relative in sorted(wanted):
        built = LIB_DIR / relative
        target = ROOT / relative
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(built, tmp)
        os.replace(tmp, target)
    for path in in_tree_binaries():  # modules no longer on the list
        if str(path.relative_to(ROOT)) not in wanted:
            path.unlink()


def build(strict: bool) -> int:
    if os.environ.get("JUNCTION_NATIVE") == "0":
        return off()
    unstash()
    current = digest()
    expected = [ROOT / rel for rel in expected_binaries()]
    if read_manifest() == current and all(p.exists() for p in expected):
        now = time.time()
        for path in expected:
            os.utime(path, (now, now))
        STAMP.touch()
        say(f"up to date ({len(NATIVE_MODULES)} modules compiled)")
        return 0

    def fail(reason: str) -> int:
        forget_build()
        remove_binaries()
        BUILD.mkdir(parents=True, exist_ok=True)
        FAILED.write_text(json.dumps({"digest": current, "reason": reason}))
        warn(reason)
        return 1 if strict else 0

    if not strict:
        failed = read_json(FAILED)
        if failed.get("digest") == current:
            # The same sources failed before: say so again rather than spend a minute on it.
            forget_build()
            remove_binaries()
            note = " (sources unchanged since that failure; `make native` tries again)"
            warn(str(failed.get("reason")), note)
            return 0

    FAILED.unlink(missing_ok=True)
    reason = preflight()
    if reason is not None:
        return fail(reason)
    say(f"compiling {len(NATIVE_MODULES)} modules with mypyc (log: {LOG.relative_to(ROOT)})")
    BUILD.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with LOG.open("wb") as log:
        child = subprocess.run(
            [sys.executable, __file__, "_compile"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    if child.returncode != 0:
        return fail(f"compile failed (exit {child.returncode}): {last_error_line()}")
    try:
        install_built()
    except OSError as exc:
        return fail(f"could not install the compiled modules: {exc}")
    MANIFEST.write_text(json.dumps({"digest": current, "modules": list(NATIVE_MODULES)}))
    STAMP.touch()
    say(f"compiled {len(NATIVE_MODULES)} modules in {time.monotonic() - started:.0f} s")
    return 0


def last_error_line() -> str:
    try:
        lines = LOG.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    for line in reversed(lines):
        if "error" in line.lower():
            return f"{line.strip()} (full log: {LOG.relative_to(ROOT)})"
    return f"see {LOG.relative_to(ROOT)}"


def off() -> int:
    moved = stash()
    say(f"JUNCTION_NATIVE=0: running pure Python ({moved} binaries set aside)")
    return 0


def clean() -> int:
    removed = remove_binaries()
    shutil.rmtree(BUILD, ignore_errors=True)
    say(f"removed {removed} binaries and {BUILD.relative_to(ROOT)}/")
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "build"
    if command == "_compile":
        compile_in_child()
        return 0
    BUILD.mkdir(parents=True, exist_ok=True)
    # One build at a time per tree: two `make test` runs must not write the same files.
    with (ROOT / "build" / ".native.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return run_command(command, strict="--strict" in argv)


def run_command(command: str, *, strict: bool) -> int:
    if command == "build":
        return build(strict)
    if command == "off":
        return off()
    if command == "stash":
        say(f"pure Python: {stash()} binaries set aside")
        return 0
    if command == "unstash":
        if os.environ.get("JUNCTION_NATIVE") == "0":
            return 0  # stay pure
        # Quiet when all went back: the test run's summary stays the last line of CI's log.
        if STASH.exists() and read_manifest() != digest():
            say("sources changed since the build: binaries dropped, the next build recompiles")
        unstash()
        return 0
    if command == "clean":
        return clean()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
