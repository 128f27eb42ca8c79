"""Request fields of a hostile type, through a live Junction: a typed 400 in the client's
dialect, never a dropped connection or a traceback (found by `make fuzz`)."""

from __future__ import annotations

import json

from proxy.mock_provider import MockProvider
from tests.integration.proxy.harness import Running
from tests.integration.proxy.rawhttp import RawConn


def test_unhashable_reasoning_effort_is_a_400(junction: Running, mock: MockProvider) -> None:
    body = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "reasoning_effort": [],
            "messages": [{"role": "user", "content": "hi"}],
        }
    ).encode()
    c = RawConn(junction.port, timeout=5)
    c.request("POST", "/v1/chat/completions", [("content-type", "application/json")], body)
    resp, out = c.response()
    c.close()
    assert resp.status_code == 400
    assert json.loads(out)["error"]["type"] == "invalid_request_error"
    assert mock.recorder.requests_total == 0
