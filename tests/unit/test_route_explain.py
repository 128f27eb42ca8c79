"""`junction route --explain`: the decision a request would get, printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.cli import main

CONFIG = """
providers:
  - name: mock
    dialect: anthropic
    base_url: http://127.0.0.1:8090
    api_key: k
    models: [claude-sonnet-4-5]
    model_info: {claude-sonnet-4-5: {context_window: 100}}
  - {name: oai, dialect: openai, base_url: "http://127.0.0.1:8090", api_key: k,
     models: [gpt-4.1, gpt-4.1-mini]}
router:
  default: [mock,claude-sonnet-4-5, oai,gpt-4.1]
  background: oai,gpt-4.1-mini
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "junction.yaml"
    path.write_text(CONFIG)
    return path


def run(config: Path, tmp_path: Path, request: object, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    req = tmp_path / "request.json"
    req.write_text(json.dumps(request))
    code = main(["route", "--config", str(config), "--explain", str(req)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_background_request_is_explained(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "x"}],
    }
    code, out, _ = run(config, tmp_path, body, capsys)
    assert code == 0
    assert "scenario:  background" in out
    assert "chosen:    oai,gpt-4.1-mini via default" in out


def test_rejected_candidates_and_fallbacks_are_listed(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "x"}],
    }
    code, out, _ = run(config, tmp_path, body, capsys)
    assert code == 0
    assert "chosen:    oai,gpt-4.1" in out
    assert "rejected:  mock,claude-sonnet-4-5 via default" in out and "context window 100" in out


def test_captured_request_and_unknown_provider(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = {
        "target": "/v1/chat/completions",
        "headers": [["Content-Type", "application/json"]],
        "body": {"model": "nope,zzz", "messages": [{"role": "user", "content": "x"}]},
    }
    code, out, _ = run(config, tmp_path, capture, capsys)
    assert code == 0
    assert "openai dialect" in out and "result:    HTTP 404" in out and "'nope'" in out


def test_bad_request_file_exits_2(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = tmp_path / "request.json"
    req.write_text("{not json")
    assert main(["route", "--config", str(config), "--explain", str(req)]) == 2
    assert "not JSON" in capsys.readouterr().err
