#!/usr/bin/env bash
# `make hardening`: h2load and slowhttptest against a live Junction in front of the bundled
# mock provider, each run time-boxed. Fails when Junction stops answering or h2load sees
# failed requests. Not part of `make test`: it puts real load on the machine (kept small).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SECONDS_EACH=${HARDENING_SECONDS:-15}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "port $1 did not open" >&2
  return 1
}
MOCK=$(free_port); PORT=$(free_port); ADMIN=$(free_port)
BODY='{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'
printf '%s' "$BODY" >"$work/body.json"
cat >"$work/junction.yaml" <<YAML
listen: {host: 127.0.0.1, port: $PORT}
admin: {host: 127.0.0.1, port: $ADMIN}
server: {max_connections: 500}
limits: {request_header_timeout_s: 3, request_body_timeout_s: 3}
log: {access_log: false}
providers:
  - {name: mock, dialect: anthropic, base_url: "http://127.0.0.1:$MOCK", api_key: k,
     models: [claude-sonnet-4-5]}
router: {default: "mock,claude-sonnet-4-5"}
YAML
"$PY" -m proxy mock-provider --port "$MOCK" >"$work/mock.log" 2>&1 &
pids+=($!)
wait_port "$MOCK"
"$PY" -m proxy serve --config "$work/junction.yaml" >"$work/junction.log" 2>&1 &
pids+=($!)
wait_port "$PORT"

answers() {  # a real request through Junction, within 5 s
  code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/messages" \
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -d "$BODY" || true)
  [ "$code" = 200 ] || { echo "FAIL: Junction answered '$code' $1" >&2; tail -20 "$work/junction.log" >&2; exit 1; }
  echo "ok: Junction answers $1"
}
answers "at start"

if command -v h2load >/dev/null; then
  for proto in h2c http/1.1; do
    extra=(); [ "$proto" = http/1.1 ] && extra=(--h1)
    out=$(timeout "$SECONDS_EACH" h2load "${extra[@]}" -n 2000 -c 10 -m 10 -d "$work/body.json" \
      -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
      "http://127.0.0.1:$PORT/v1/messages" 2>&1 || true)
    line=$(grep '^requests:' <<<"$out" || true)
    echo "h2load $proto: $line"
    grep -q '2000 succeeded, 0 failed, 0 errored' <<<"$line" \
      || { echo "FAIL: h2load $proto" >&2; echo "$out" >&2; exit 1; }
  done
else
  echo "skip: h2load not installed (Debian: nghttp2-client)"
fi
answers "after h2load"

if ! command -v slowhttptest >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slowhttptest >/dev/null 2>&1 || true
fi
if command -v slowhttptest >/dev/null; then
  # -H slowloris, -B slow body, -X slow read; 200 connections, one slow step every 2 s.
  for mode in -H -B -X; do
    args=("$mode" -c 200 -r 100 -i 2 -l "$SECONDS_EACH" -u "http://127.0.0.1:$PORT/v1/messages" -t POST -p 3)
    [ "$mode" = -X ] && args=(-X -c 200 -r 100 -w 1 -y 2 -n 2 -z 1 -k 3 -l "$SECONDS_EACH" -u "http://127.0.0.1:$PORT/" -p 3)
    timeout $((SECONDS_EACH + 10)) slowhttptest "${args[@]}" >"$work/slow$mode.log" 2>&1 &
    slow=$!
    sleep $((SECONDS_EACH / 2))
    answers "during slowhttptest $mode"
    wait "$slow" || true
    summary=$(sed 's/\x1b\[[0-9;]*m//g' "$work/slow$mode.log" | grep -E '^\s*(closed|service available):' | tail -2 | tr -s ' \n' ' ')
    echo "slowhttptest $mode: $summary"
  done
else
  echo "skip: slowhttptest not installed and cannot be installed here"
fi
answers "at the end"
grep -q Traceback "$work/junction.log" && { echo "FAIL: traceback in Junction's log" >&2; exit 1; }
echo "hardening: all good"
