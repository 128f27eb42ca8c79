"""Keys and prompts never leak: every log line, /metrics, every admin document, every span
and every error body captured while requests with marker keys and prompts run is searched
for the markers."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.integration.proxy.harness import PROVIDER_KEY, Running
from tests.support.h1server import ScriptedHttp1Server

from .support import ANTHROPIC, admin, failing_first, message

PROMPT = "PROMPT-MARKER-d41d8cd98f"
CLIENT_KEY = "sk-junction-CLIENT-MARKER-1a2b3c"
WRONG_KEY = "sk-junction-WRONG-MARKER-9z8y7x"
SCRIPTED_KEY = "sk-scripted-PROVIDER-MARKER-5e6f"
DOWN_KEY = "sk-down-PROVIDER-MARKER-0c0d"
ADMIN_TOKEN = "ADMIN-TOKEN-MARKER-77aa"
RELOAD_KEY = "sk-reload MARKER-bad-key"  # a space: not a valid header value
MARKERS = (PROMPT, CLIENT_KEY, WRONG_KEY, SCRIPTED_KEY, DOWN_KEY, ADMIN_TOKEN, PROVIDER_KEY)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_key_or_prompt_in_anything_observable(
    junction_factory: Callable[..., Running],
    upstream: Callable[[Any], ScriptedHttp1Server],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="junction")
    server = upstream(failing_first(1, status=529))
    providers: list[dict[str, Any]] = [
        {
            "name": "mock",
            "dialect": "anthropic",
            "base_url": f"http://127.0.0.1:{server.port}",
            "api_key": "${MOCK_KEY}",
            "models": ["claude-sonnet-4-5"],
        },
        {
            "name": "scripted",
            "dialect": "anthropic",
            "base_url": f"http://127.0.0.1:{server.port}",
            "api_key": SCRIPTED_KEY,
            "models": ["claude-haiku-4-5"],
        },
        {
            "name": "down",
            "dialect": "openai",
            "base_url": f"http://127.0.0.1:{closed_port()}",
            "api_key": DOWN_KEY,
            "models": ["gpt-4.1"],
        },
    ]
    log_file = tmp_path / "access.log"
    run = junction_factory(
        providers=providers,
        router={
            "default": "mock,claude-sonnet-4-5",
            "aliases": {"fast": "scripted,claude-haiku-4-5", "gone": "down,gpt-4.1"},
        },
        auth={"keys": [{"name": "team", "key": CLIENT_KEY}]},
        admin={"token": ADMIN_TOKEN},
        log={"access_log": True, "access_log_file": str(log_file)},
        tracing={"enabled": True},
        resilience={"retry": {"base_backoff_s": 0.01, "max_backoff_s": 0.02}},
    )
    tracing = run.worker.observer.tracing
    assert tracing is not None
    exporter = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))

    captured: list[str] = []
    url = f"{run.url}/v1/messages"
    good = {**ANTHROPIC, "x-api-key": CLIENT_KEY}
    requests: list[tuple[dict[str, str], bytes]] = [
        (good, httpx.Request("POST", url, json=message(PROMPT)).content),
        (good, httpx.Request("POST", url, json=message(PROMPT, stream=True)).content),
        (good, httpx.Request("POST", url, json=message(PROMPT, model="fast")).content),
        (good, httpx.Request("POST", url, json=message(PROMPT, model="gone")).content),
        (
            {**ANTHROPIC, "x-api-key": WRONG_KEY},
            httpx.Request("POST", url, json=message(PROMPT)).content,
        ),
        ({**ANTHROPIC, "authorization": f"Bearer {WRONG_KEY}"}, b"{}"),
        (good, b'{"model": "x", "messages": "' + PROMPT.encode()),  # not JSON
    ]
    statuses = []
    for headers, body in requests:
        r = httpx.post(url, content=body, headers=headers, timeout=10)
        statuses.append(r.status_code)
        if r.status_code >= 400:
            captured.append(r.text)
        captured.append(str(r.headers))
    assert statuses[:3] == [200, 200, 200] and statuses[3] >= 500
    assert statuses[4:6] == [401, 401] and statuses[6] == 400

    # A reload with a bad key: refused, and the error names the key path, not the value.
    cfg = yaml.safe_load(run.config_path.read_text())
    cfg["providers"][1]["api_key"] = RELOAD_KEY
    run.config_path.write_text(yaml.safe_dump(cfg))
    reload = admin(run, "/admin/reload", method="POST", token=ADMIN_TOKEN)
    assert reload.status_code == 422
    captured.append(reload.text)

    for path in ("/metrics", "/stats", "/admin/config", "/admin/routes", "/admin/usage",
                 "/admin/upstreams", "/nowhere"):  # fmt: skip
        r = admin(run, path, token=ADMIN_TOKEN)
        assert r.status_code in (200, 404), path
        captured.append(r.text)
    captured.append(admin(run, "/metrics", token=WRONG_KEY).text)

    assert run.worker.access_log is not None
    run.lt.call(run.worker.access_log.flush)
    lines = log_file.read_text()
    assert len(lines.splitlines()) == len(requests)
    captured.append(lines)
    spans = exporter.get_finished_spans()
    assert len(spans) >= len(requests)
    captured.extend(span.to_json() for span in spans)
    ours = [r.getMessage() for r in caplog.records if r.name.split(".")[0] == "junction"]
    captured.extend(ours)
    assert any("reload failed" in message for message in ours)

    # The markers were really in flight (so their absence above means something).
    assert all(PROMPT.encode() in r.body for r in server.requests)
    assert any(r.header(b"x-api-key") == SCRIPTED_KEY.encode() for r in server.requests)
    assert any(r.header(b"x-api-key") == PROVIDER_KEY.encode() for r in server.requests)
    everything = "\n".join(captured)
    for marker in (*MARKERS, RELOAD_KEY, "MARKER"):
        assert marker not in everything, marker
