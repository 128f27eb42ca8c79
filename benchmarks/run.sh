#!/usr/bin/env bash
# Measures Junction against the mock provider directly and writes benchmarks/RESULTS-overhead.md
# (the detailed single-target overhead run; `python -m benchmarks` is the full suite).
# Usage: bash benchmarks/run.sh [--quick] [--port-base N] ...   (options: benchmarks/run.py --help)
# Takes about three minutes. Every process it starts is stopped on exit, however it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
if [[ ! -x "$PY" ]]; then
    echo "run.sh: $PY not found; run 'make bench' (or 'make test') to create the virtualenv" >&2
    exit 2
fi

# wrk gives a second opinion on max throughput; install it when apt is usable, else go without.
if ! command -v wrk >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "run.sh: installing wrk with apt-get" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) \
            >/dev/null 2>&1 || echo "run.sh: could not install wrk; continuing without it" >&2
    else
        echo "run.sh: wrk not installed and apt-get unusable; continuing without it" >&2
    fi
fi

bench_pid=""
cleanup() {
    # run.py stops its own servers on SIGTERM; this covers run.sh being interrupted.
    if [[ -n "$bench_pid" ]] && kill -0 "$bench_pid" 2>/dev/null; then
        kill -TERM "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PY" benchmarks/run.py "$@" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
exit "$status"
