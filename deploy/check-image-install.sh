#!/usr/bin/env bash
# Repeat deploy/Dockerfile's install outside Docker, for a machine without a container engine:
# build the wheels as the build stage does, install them into a fresh virtualenv as the final
# stage does (offline, from the wheels only), start the image's command with the image's
# config and check /readyz the way the image's HEALTHCHECK does. Needs the package index for
# the first step (as `docker build` does), nothing else.
#
#   bash deploy/check-image-install.sh [PYTHON]      # default: python3
#
# Listens on loopback ports 13456 (API) and 19901 (admin) while it runs; exits 0 when /readyz
# answered 200 and Junction then drained and exited on SIGTERM.
set -euo pipefail

PYTHON=${1:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID"; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The build context the Dockerfile sees (Dockerfile.dockerignore): pyproject, README, proxy/.
mkdir -p "$WORK/src"
cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$WORK/src/"
(cd "$ROOT" && tar --exclude='__pycache__' --exclude='*.so' --exclude='*.py[co]' -cf - proxy) \
    | tar -xf - -C "$WORK/src"

echo "== build stage: pip wheel"
"$PYTHON" -m venv "$WORK/build-venv"
(cd "$WORK/src" && "$WORK/build-venv/bin/python" -m pip wheel -q --wheel-dir "$WORK/wheels" .)

echo "== final stage: install from the wheels only"
"$PYTHON" -m venv "$WORK/opt-junction"
"$WORK/opt-junction/bin/pip" install -q --no-cache-dir --no-index --find-links "$WORK/wheels" junction
"$WORK/opt-junction/bin/pip" uninstall -q -y pip
du -sh "$WORK/opt-junction" | sed 's/^/virtualenv size: /'

echo "== entrypoint: junction serve --config deploy/junction.yaml"
# The image's ports are moved to free loopback ones; everything else is the image's config.
export JUNCTION_LISTEN__HOST=127.0.0.1 JUNCTION_LISTEN__PORT=13456
export JUNCTION_ADMIN__HOST=127.0.0.1 JUNCTION_ADMIN__PORT=19901
export PYTHONDONTWRITEBYTECODE=1
(cd "$WORK" && exec env -u ANTHROPIC_API_KEY -u OPENAI_API_KEY \
    "$WORK/opt-junction/bin/junction" serve --config "$ROOT/deploy/junction.yaml") &
PID=$!

healthcheck() {
    "$WORK/opt-junction/bin/python" -c "import http.client, os, sys; c = http.client.HTTPConnection('127.0.0.1', int(os.environ.get('JUNCTION_ADMIN__PORT', '9901')), timeout=2); c.request('GET', '/readyz'); sys.exit(0 if c.getresponse().status == 200 else 1)" 2>/dev/null
}
for _ in $(seq 1 100); do
    if healthcheck; then break; fi
    kill -0 "$PID" 2>/dev/null || { echo "junction exited before it was ready" >&2; exit 1; }
    sleep 0.1
done
healthcheck || { echo "/readyz never answered 200" >&2; exit 1; }
echo "/readyz: 200"

kill -TERM "$PID"
wait "$PID"
status=$?
PID=
echo "junction exited with status $status after SIGTERM"
exit "$status"
