#!/usr/bin/env bash
# Starts the bundled simulated provider and Junction on the demo config (what `make run` does).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MOCK_PORT=8090
PORT=3456

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "port $1 did not open" >&2
  return 1
}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$PY" -m proxy mock-provider --port "$MOCK_PORT" --tokens-per-s 60 &
pids+=($!)
wait_port "$MOCK_PORT"
"$PY" -m proxy serve --config examples/demo.yaml &
pids+=($!)
wait_port "$PORT"

cat <<TXT

Junction is listening on http://127.0.0.1:$PORT (admin on http://127.0.0.1:9901),
routing to the simulated provider on 127.0.0.1:$MOCK_PORT. Try:

  curl -s http://127.0.0.1:$PORT/v1/messages \\
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \\
    -d '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hello"}]}'

  curl -sN http://127.0.0.1:$PORT/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"gpt-4.1","stream":true,"messages":[{"role":"user","content":"hello"}]}'

  ANTHROPIC_BASE_URL=http://127.0.0.1:$PORT ANTHROPIC_API_KEY=demo claude

Press Ctrl-C to stop (Junction drains in-flight streams first).
TXT
wait -n
