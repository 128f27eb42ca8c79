"""A claude-code-router config.json served as is: captured Claude Code requests route the
way claude-code-router routes them (or better where docs/routing.md says so)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from proxy.config.ccr import read_ccr_config
from proxy.config.loader import load_config
from proxy.mock_provider import MockProvider
from proxy.server.worker import Worker

from .harness import LoopThread, Running, start_junction

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

CCR_CONFIG = """
// a claude-code-router config, as its users write it (JSON5: comments, trailing commas)
{
  "LOG": false,
  "API_TIMEOUT_MS": 600000,
  "Providers": [
    {
      "name": "deepseek",
      "api_base_url": "http://127.0.0.1:$MOCK_PORT/v1/chat/completions",
      "api_key": "$DEEPSEEK_API_KEY",
      "models": ["deepseek-chat", "deepseek-reasoner"],
      "transformer": {"use": ["deepseek"], "deepseek-chat": {"use": ["tooluse"]}},
    },
    {
      "name": "claude",
      "api_base_url": "http://127.0.0.1:$MOCK_PORT/v1/messages",
      "api_key": "${ANTHROPIC_KEY}",
      "models": ["claude-sonnet-4-5"],
    },
    {
      "name": "down",
      "api_base_url": "http://127.0.0.1:1/v1/chat/completions",
      "api_key": "x",
      "models": ["m"],
    },
  ],
  "Router": {
    "default": "down,m",
    "background": "deepseek,deepseek-chat",
    "think": "deepseek,deepseek-reasoner",
    "webSearch": "claude,claude-sonnet-4-5",
    "longContextThreshold": 60000,
  },
  "fallback": {"default": ["claude,claude-sonnet-4-5"]},
}
"""


@pytest.fixture
def served(lt: LoopThread, mock: MockProvider, tmp_path: Path) -> Iterator[Running]:
    env = {"MOCK_PORT": str(mock.port), "DEEPSEEK_API_KEY": "sk-ds", "ANTHROPIC_KEY": "sk-ant"}
    imported = read_ccr_config(CCR_CONFIG, env)
    cfg: dict[str, Any] = {
        **imported.config,
        "listen": {"host": "127.0.0.1", "port": 0},
        "admin": {"host": "127.0.0.1", "port": 0},
        "log": {"access_log": False},
    }
    for provider in cfg["providers"]:  # keep the secrets out of the written YAML
        provider["api_key"] = provider["api_key"].replace("${ANTHROPIC_KEY}", "sk-ant")
        provider["api_key"] = provider["api_key"].replace("${DEEPSEEK_API_KEY}", "sk-ds")
    run = start_junction(lt, tmp_path, cfg)
    yield run
    run.drain()
    run.assert_nothing_left()


def capture(name: str) -> tuple[str, dict[str, str], bytes]:
    doc = json.loads((FIXTURES / name).read_text())
    skip = {"host", "content-length", "connection", "accept-encoding"}
    headers = {k: v for k, v in doc["headers"] if k.lower() not in skip}
    body = doc["body"]
    return doc["target"], headers, (body if isinstance(body, str) else json.dumps(body)).encode()


def send(run: Running, name: str) -> httpx.Response:
    target, headers, body = capture(name)
    with httpx.Client(base_url=run.url, timeout=10) as client:
        return client.post(target, headers=headers, content=body)


def test_haiku_call_goes_to_background(served: Running, mock: MockProvider) -> None:
    resp = send(served, "routing/cc_04_haiku_model_thinking_budget.json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-junction-route"] == "deepseek,deepseek-chat"
    sent = mock.recorded[-1]
    assert sent.path == "/v1/chat/completions" and sent.json()["model"] == "deepseek-chat"
    assert sent.header("authorization") == "Bearer sk-ds"
    # deepseek's transformer caps max_tokens; tooluse forces a tool when tools are offered
    assert sent.json()["max_tokens"] <= 8192
    assert sent.json()["tool_choice"] == "required"


def test_main_turn_with_thinking_goes_to_think(served: Running, mock: MockProvider) -> None:
    resp = send(served, "routing/cc_02_main_stream_text.json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-junction-route"] == "deepseek,deepseek-reasoner"
    assert "event: message_stop" in resp.text
    assert mock.recorded[-1].json()["model"] == "deepseek-reasoner"


def test_default_falls_back_when_its_provider_is_unreachable(
    served: Running, mock: MockProvider
) -> None:
    """claude-code-router answers 500 here (it does not fall back on connection errors)."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.Client(base_url=served.url, timeout=10) as client:
        resp = client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-junction-route"] == "claude,claude-sonnet-4-5"
    assert "event: message_stop" in resp.text
    sent = mock.recorded[-1]
    assert sent.path.startswith("/v1/messages") and sent.header("x-api-key") == "sk-ant"


def test_explicit_provider_model_from_claude_codes_model_command(
    served: Running, mock: MockProvider
) -> None:
    body = {
        "model": "deepseek,deepseek-reasoner",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.Client(base_url=served.url, timeout=10) as client:
        resp = client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert resp.headers["x-junction-route"] == "deepseek,deepseek-reasoner"
    assert resp.json()["model"] == "deepseek,deepseek-reasoner"  # echoed as requested
    assert mock.recorded[-1].json()["model"] == "deepseek-reasoner"


CONFIG_ENV = {
    name: f"value-{name.lower()}"
    for name in [
        "ARK_API_KEY",
        "CCR_APIKEY",
        "DASHSCOPE_API_KEY",
        "DEEPSEEK_API_KEY",
        "MOONSHOT_API_KEY",
        "OPENROUTER_API_KEY",
        "SILICONFLOW_API_KEY",
        "ANTHROPIC_API_KEY",
        "TEAM",
        "VAR",
    ]
} | {
    "HOME": "/home/dev",
    "LOCAL_SUFFIX": "-local",
    "BACKGROUND_ROUTE": "anthropic,claude-haiku-4-5",
    "LOCAL_LLM_URL": "http://127.0.0.1:11434/v1/chat/completions",
}


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (FIXTURES / "ccr").glob("*.json")), ids=lambda n: n[:-5]
)
def test_real_claude_code_router_configs_are_served(
    lt: LoopThread, tmp_path: Path, name: str
) -> None:
    """Each real config.json starts a Junction that answers, and explains its routes."""
    imported = read_ccr_config((FIXTURES / "ccr" / name).read_text(), CONFIG_ENV)
    cfg: dict[str, Any] = {
        **imported.config,
        "listen": {"host": "127.0.0.1", "port": 0},
        "admin": {"host": "127.0.0.1", "port": 0},
        "log": {"access_log": False},
    }
    # Secrets stay ${VAR} references in the import; they are read when the config loads.
    path = tmp_path / "junction.yaml"
    path.write_text(yaml.safe_dump(cfg))
    worker = Worker(load_config(path, env=CONFIG_ENV), config_path=path, env=CONFIG_ENV)
    lt.run(worker.start())
    run = Running(lt, worker, path)
    try:
        with httpx.Client(base_url=run.url, timeout=10) as client:
            models = client.get("/v1/models", headers={"anthropic-version": "2023-06-01"})
            assert models.status_code == 200 and models.json()["data"]
            # Claude Code's probe of its base URL
            assert client.head("/").status_code == 200
        default = cfg["router"]["default"]
        first = default if isinstance(default, str) else default[0]
        ids = {m["id"] for m in models.json()["data"]}
        assert first.split(",", 1)[1] in ids
    finally:
        run.drain()
        run.assert_nothing_left()
