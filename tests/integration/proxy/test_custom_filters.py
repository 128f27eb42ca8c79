"""Custom filters (``filters:``) through a running Junction: the worked example of
docs/extending.md (examples/extensions/team_budget.py), chain order, route restriction, a
filter that raises, and config errors at load and from ``junction check-config``.

The small filters below are named in configs by their import path in this module.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from proxy.cli import main
from proxy.config.loader import load_config
from proxy.errors import ConfigError
from proxy.filters.api import DataStatus, FilterCallbacks, HeadersStatus
from proxy.filters.custom import PROXY_PATHS
from proxy.headers import Headers
from proxy.mock_provider import MockProvider
from proxy.routing.table import RouteKind, match

from .harness import ENV, Running, base_config

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "extensions" / "team_budget.py"
DOC = REPO / "docs" / "extending.md"
HERE = "tests.integration.proxy.test_custom_filters"
TEAM_BUDGET = {
    "use": "examples.extensions.team_budget:TeamBudget",
    "options": {"teams": {"research": 8192, "support": 1024}},
}
ANTHROPIC = {"anthropic-version": "2023-06-01"}
DESTROYED: list[str] = []  # Tag.on_destroy appends its name


class Tag:
    """Adds ``x-order: <name>`` to the request and to the response."""

    def __init__(self, *, name: str) -> None:
        self.name = name.encode()

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self.cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        headers.append((b"x-order", self.name))
        return HeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.CONTINUE

    def set_encoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self.cb = callbacks

    def encode_headers(self, status: int, headers: Headers, end_stream: bool) -> HeadersStatus:
        headers.append((b"x-order", self.name))
        return HeadersStatus.CONTINUE

    def encode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.CONTINUE

    def on_destroy(self) -> None:
        DESTROYED.append(self.name.decode())


class ResponseOnly:
    """Encoder hooks only; no on_destroy (it is optional)."""

    def set_encoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        pass

    def encode_headers(self, status: int, headers: Headers, end_stream: bool) -> HeadersStatus:
        headers.append((b"x-response-only", b"1"))
        return HeadersStatus.CONTINUE

    def encode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.CONTINUE


class Faulty:
    """Raises in the hook named by ``fail_in`` when the request's system text says BOOM."""

    def __init__(self, *, fail_in: str) -> None:
        self.fail_in = fail_in
        self.armed = False

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self.cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        self.armed = "BOOM" in str(self.cb.request.body_json.get("system", ""))
        self._maybe_fail("decode_headers")
        return HeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        self._maybe_fail("decode_data")
        return DataStatus.CONTINUE

    def set_encoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        pass

    def encode_headers(self, status: int, headers: Headers, end_stream: bool) -> HeadersStatus:
        self._maybe_fail("encode_headers")
        return HeadersStatus.CONTINUE

    def encode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        self._maybe_fail("encode_data")
        return DataStatus.CONTINUE

    def _maybe_fail(self, hook: str) -> None:
        if self.armed and hook == self.fail_in:
            raise RuntimeError(f"{hook} failed on purpose")


class Delayed:
    """Holds the request for ``delay_s`` on the loop (asynchronous work), then lets it go."""

    def __init__(self, *, delay_s: float) -> None:
        self.delay_s = delay_s
        self.timer: asyncio.TimerHandle | None = None

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self.cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        self.timer = asyncio.get_running_loop().call_later(self.delay_s, self.done)
        return HeadersStatus.STOP

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.STOP_AND_BUFFER  # held until done(): the router gets it then

    def done(self) -> None:
        self.timer = None
        self.cb.request.headers.append((b"x-delayed", b"yes"))
        self.cb.continue_decoding()

    def on_destroy(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


class PartialFilter:
    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        return HeadersStatus.CONTINUE


class NoHooks:
    pass


def not_a_class() -> None:
    pass


def msg(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hello"}],
        **extra,
    }


def chat(model: str = "gpt-4.1", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}


def post(run: Running, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    extra = ANTHROPIC if path.startswith("/v1/messages") else {}
    with httpx.Client(base_url=run.url, timeout=10) as client:
        return client.post(path, json=body, headers={**extra, **headers})


def error_of(resp: httpx.Response, dialect: str) -> tuple[str, str]:
    """(type, message) of an error body, checking its dialect's shape."""
    doc = resp.json()
    if dialect == "anthropic":
        assert doc["type"] == "error", doc
        return doc["error"]["type"], doc["error"]["message"]
    assert set(doc["error"]) == {"message", "type", "param", "code"}, doc
    return doc["error"]["type"], doc["error"]["message"]


# -- the worked example ------------------------------------------------------------------------


@pytest.fixture
def budget(junction_factory: Callable[..., Running]) -> Running:
    return junction_factory(filters=[TEAM_BUDGET])


@pytest.mark.parametrize(
    ("path", "body", "dialect", "kind"),
    [
        ("/v1/messages", msg(), "anthropic", "authentication_error"),
        ("/v1/chat/completions", chat(), "openai", "invalid_request_error"),
    ],
)
def test_a_request_without_a_team_is_401_in_the_clients_dialect(
    budget: Running, mock: MockProvider, path: str, body: dict[str, Any], dialect: str, kind: str
) -> None:
    resp = post(budget, path, body)
    assert resp.status_code == 401
    assert error_of(resp, dialect) == (kind, "the x-team header is required")
    assert mock.recorded == []


@pytest.mark.parametrize(
    ("path", "body", "dialect", "kind"),
    [
        ("/v1/messages", msg(), "anthropic", "permission_error"),
        ("/v1/chat/completions", chat(), "openai", "permission_error"),
    ],
)
def test_an_unknown_team_is_403(
    budget: Running, mock: MockProvider, path: str, body: dict[str, Any], dialect: str, kind: str
) -> None:
    resp = post(budget, path, body, **{"x-team": "marketing"})
    assert resp.status_code == 403
    assert error_of(resp, dialect) == (kind, "team 'marketing' may not use this gateway")
    assert mock.recorded == []


def test_a_team_gets_its_budget_at_the_provider_and_its_name_on_the_response(
    budget: Running, mock: MockProvider
) -> None:
    # Same dialect both ways: the body's bytes are forwarded, so the filter replaces them.
    resp = post(budget, "/v1/messages", msg(max_tokens=4096), **{"x-team": "support"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-team"] == "support"
    assert resp.json()["type"] == "message"
    assert mock.recorded[-1].json()["max_tokens"] == 1024
    # Within the budget: the client's bytes go to the provider untouched.
    body = orjson.dumps(msg(max_tokens=100))
    with httpx.Client(base_url=budget.url, timeout=10) as client:
        resp = client.post(
            "/v1/messages",
            content=body,
            headers={**ANTHROPIC, "content-type": "application/json", "x-team": "research"},
        )
    assert resp.status_code == 200 and resp.headers["x-team"] == "research"
    assert mock.recorded[-1].body == body


@pytest.mark.parametrize(
    ("body", "field", "sent"),
    [
        (chat(max_completion_tokens=50_000), "max_completion_tokens", 1024),  # passthrough
        (chat(max_tokens=50_000), "max_tokens", 1024),
        (chat(), "max_tokens", 1024),  # none asked for: the budget is set
        (chat("claude-sonnet-4-5", max_tokens=50_000), "max_tokens", 1024),  # translated
        (chat(max_tokens=10), "max_tokens", 10),
    ],
    ids=["completion-tokens", "max-tokens", "absent", "translated", "within"],
)
def test_openai_clients_are_capped_too(
    budget: Running, mock: MockProvider, body: dict[str, Any], field: str, sent: int
) -> None:
    resp = post(budget, "/v1/chat/completions", body, **{"x-team": "support"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-team"] == "support"
    assert mock.recorded[-1].json()[field] == sent


def test_a_streamed_answer_carries_the_team_header(budget: Running) -> None:
    with (
        httpx.Client(base_url=budget.url, timeout=10) as client,
        client.stream(
            "POST",
            "/v1/messages",
            json=msg(stream=True),
            headers={**ANTHROPIC, "x-team": "research"},
        ) as resp,
    ):
        text = resp.read().decode()
    assert resp.status_code == 200
    assert resp.headers["x-team"] == "research"
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert "event: message_stop" in text


# -- chain order, routes, hooks ------------------------------------------------------------------


def test_filters_run_in_config_order_and_in_reverse_on_the_response(
    junction_factory: Callable[..., Running], mock: MockProvider, lt: Any
) -> None:
    run = junction_factory(
        filters=[
            {"use": f"{HERE}:Tag", "options": {"name": "first"}},
            {"use": f"{HERE}.Tag", "options": {"name": "second"}},
            {"use": f"{HERE}:ResponseOnly"},
        ]
    )
    DESTROYED.clear()
    resp = post(run, "/v1/messages", msg())
    assert resp.status_code == 200, resp.text
    assert mock.recorded[-1].header("x-order") == "first"
    assert [v for k, v in mock.recorded[-1].headers if k == b"x-order"] == [b"first", b"second"]
    assert resp.headers.get_list("x-order") == ["second", "first"]
    assert resp.headers["x-response-only"] == "1"
    assert lt.call(lambda: sorted(DESTROYED)) == ["first", "second"]  # once each


def test_routes_restrict_a_filter_to_some_paths(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(filters=[{**TEAM_BUDGET, "routes": ["/v1/chat/completions"]}])
    assert post(run, "/v1/chat/completions", chat()).status_code == 401
    resp = post(run, "/v1/messages", msg())
    assert resp.status_code == 200 and "x-team" not in resp.headers
    assert mock.recorded[-1].json()["max_tokens"] == 4096


def test_a_filter_may_hold_the_request_for_asynchronous_work(
    junction_factory: Callable[..., Running], mock: MockProvider
) -> None:
    run = junction_factory(filters=[{"use": f"{HERE}:Delayed", "options": {"delay_s": 0.02}}])
    body = orjson.dumps(msg())
    with httpx.Client(base_url=run.url, timeout=10) as client:
        resp = client.post(
            "/v1/messages", content=body, headers={**ANTHROPIC, "content-type": "application/json"}
        )
    assert resp.status_code == 200, resp.text
    assert mock.recorded[-1].header("x-delayed") == "yes"
    assert mock.recorded[-1].body == body


def test_proxy_paths_are_the_route_tables_proxy_routes() -> None:
    for path in PROXY_PATHS:
        route = match(path)
        assert route is not None and route.kind is RouteKind.PROXY


# -- a filter that raises ------------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["decode_headers", "decode_data"])
def test_a_request_hook_that_raises_is_a_500_in_the_clients_dialect(
    junction_factory: Callable[..., Running],
    mock: MockProvider,
    caplog: pytest.LogCaptureFixture,
    hook: str,
) -> None:
    run = junction_factory(filters=[{"use": f"{HERE}:Faulty", "options": {"fail_in": hook}}])
    with caplog.at_level(logging.ERROR, logger="junction.filters"):
        resp = post(run, "/v1/messages", msg(system="BOOM"))
        assert resp.status_code == 500
        assert error_of(resp, "anthropic") == ("api_error", "filter Faulty failed")
        oai = post(run, "/v1/chat/completions", chat(system="BOOM"))
    assert oai.status_code == 500
    assert error_of(oai, "openai") == ("server_error", "filter Faulty failed")
    assert "failed on purpose" not in resp.text  # the exception stays in the log
    assert mock.recorded == []
    lines = [r.getMessage() for r in caplog.records if r.name == "junction.filters"]
    assert len(lines) == 2
    assert re.fullmatch(
        rf"filter Faulty failed in {hook}: RuntimeError: {hook} failed on purpose "
        r"at test_custom_filters\.py:\d+",
        lines[0],
    )
    # The worker goes on serving, on the same connection and on new ones.
    with httpx.Client(base_url=run.url, timeout=10) as client:
        for _ in range(3):
            ok = client.post("/v1/messages", json=msg(system="fine"), headers=ANTHROPIC)
            assert ok.status_code == 200, ok.text


def test_a_response_hook_that_raises_ends_a_stream_in_band(
    junction_factory: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    run = junction_factory(
        filters=[{"use": f"{HERE}:Faulty", "options": {"fail_in": "encode_data"}}]
    )
    with (
        caplog.at_level(logging.ERROR, logger="junction.filters"),
        httpx.Client(base_url=run.url, timeout=10) as client,
        client.stream(
            "POST", "/v1/messages", json=msg(system="BOOM", stream=True), headers=ANTHROPIC
        ) as resp,
    ):
        text = resp.read().decode()
    assert resp.status_code == 200
    assert text.startswith("event: error\ndata: ")
    assert orjson.loads(text.split("data: ", 1)[1]) == {
        "type": "error",
        "error": {"type": "api_error", "message": "filter Faulty failed"},
    }
    assert "message_stop" not in text
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "filter Faulty failed in encode_data"
    ]
    assert post(run, "/v1/messages", msg()).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_encode_headers_that_raises_never_sends_a_success(
    junction_factory: Callable[..., Running], stream: bool
) -> None:
    run = junction_factory(
        filters=[{"use": f"{HERE}:Faulty", "options": {"fail_in": "encode_headers"}}]
    )
    with httpx.Client(base_url=run.url, timeout=10) as client:
        if stream:
            # An event stream: the head is out, the first event is the error.
            body = msg(system="BOOM", stream=True)
            with client.stream("POST", "/v1/messages", json=body, headers=ANTHROPIC) as resp:
                text = resp.read().decode()
            assert text.startswith("event: error\n") and "filter Faulty failed" in text
            assert "message_start" not in text
        else:
            # A JSON answer cannot turn into an error after its head: the connection closes.
            with pytest.raises(httpx.RemoteProtocolError):
                client.post("/v1/messages", json=msg(system="BOOM"), headers=ANTHROPIC)
    assert post(run, "/v1/messages", msg()).status_code == 200


# -- config errors -----------------------------------------------------------------------------


def load_with(tmp_path: Path, filters: list[Any]) -> None:
    path = tmp_path / "junction.yaml"
    path.write_text(yaml.safe_dump(base_config(8090, filters=filters)))
    load_config(path, env=ENV)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"use": "examples.extensions.nope:TeamBudget"},
            r"filters\[0\]\.use: cannot import 'examples\.extensions\.nope:TeamBudget' "
            r"\(ModuleNotFoundError: .*",
        ),
        (
            {"use": "examples.extensions.team_budget:TeamBudgt"},
            r"filters\[0\]\.use: cannot import .*\(no 'TeamBudgt' in examples\.extensions\..*",
        ),
        ({"use": "team budget"}, r"filters\[0\]\.use: must be an import path .*"),
        (
            {"use": f"{HERE}:not_a_class"},
            r"filters\[0\]\.use: .* is not a class \(got a function\)",
        ),
        (
            {"use": f"{HERE}:NoHooks"},
            r"filters\[0\]\.use: NoHooks is not a filter: it needs "
            r"set_decoder_callbacks/decode_headers/decode_data \(request\) and/or .*",
        ),
        (
            {"use": f"{HERE}:PartialFilter"},
            r"filters\[0\]\.use: PartialFilter is not a complete filter: has decode_headers "
            r"but no set_decoder_callbacks/decode_data",
        ),
        (
            {**TEAM_BUDGET, "options": {"teams": {"research": 8192}, "colour": "red"}},
            r"filters\[0\]\.options: examples\.extensions\.team_budget:TeamBudget rejected them "
            r"\(TypeError: .*unexpected keyword argument 'colour'\)",
        ),
        (
            {**TEAM_BUDGET, "options": {"teams": {"research": -1}}},
            r"filters\[0\]\.options: .* rejected them \(ValueError: teams\.research: "
            r"the budget must be a positive integer\)",
        ),
        (
            {**TEAM_BUDGET, "routes": ["/v1/messages", "/v1/models"]},
            r"filters\[0\]\.routes\[1\]: not a proxy route \(one of /v1/messages, .*\)",
        ),
        ({**TEAM_BUDGET, "routes": []}, r"filters\[0\]\.routes: must not be empty .*"),
        ({**TEAM_BUDGET, "option": {}}, r"filters\[0\]\.option: unknown key.*"),
    ],
    ids=[
        "no-module",
        "no-class",
        "not-a-path",
        "not-a-class",
        "no-hooks",
        "partial",
        "unknown-option",
        "bad-option",
        "bad-route",
        "empty-routes",
        "unknown-key",
    ],
)
def test_a_bad_filter_is_a_config_error_at_its_key(
    tmp_path: Path, entry: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_with(tmp_path, [entry])
    assert re.fullmatch(expected, str(raised.value)), str(raised.value)


def test_errors_name_the_entry_that_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_with(tmp_path, [TEAM_BUDGET, {"use": f"{HERE}:NoHooks"}])
    assert str(raised.value).startswith("filters[1].use: NoHooks is not a filter")


def test_check_config_exits_2_naming_the_filter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOCK_KEY", ENV["MOCK_KEY"])
    path = tmp_path / "junction.yaml"
    cfg = base_config(8090, filters=[{"use": "examples.extensions.team_budget:Nope"}])
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check-config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "junction: config error: filters[0].use: cannot import "
        "'examples.extensions.team_budget:Nope' (no 'Nope' in examples.extensions.team_budget)"
    ]


def test_check_config_shows_the_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOCK_KEY", ENV["MOCK_KEY"])
    path = tmp_path / "junction.yaml"
    path.write_text(yaml.safe_dump(base_config(8090, filters=[TEAM_BUDGET])))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "use: examples.extensions.team_budget:TeamBudget" in out
    assert "research: 8192" in out


# -- the documentation ----------------------------------------------------------------------------


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text("utf-8"), re.M | re.S)


def test_the_docs_show_the_example_file_verbatim() -> None:
    source = EXAMPLE.read_text("utf-8")
    assert source in doc_blocks("python")


def test_the_docs_filter_config_loads(tmp_path: Path) -> None:
    snippets = [yaml.safe_load(block) for block in doc_blocks("yaml")]
    with_filters = [s for s in snippets if isinstance(s, dict) and "filters" in s]
    assert with_filters, "docs/extending.md has no filters: snippet"
    for snippet in with_filters:
        entries = [e for e in snippet["filters"] if e["use"].startswith("examples.extensions.")]
        assert entries
        load_with(tmp_path, entries)
