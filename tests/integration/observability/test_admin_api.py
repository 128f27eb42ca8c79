"""The admin API: bearer token, /admin/config (masked), /admin/routes, /admin/usage, and
POST /admin/reload keeping the running config when the new file is bad."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from tests.integration.proxy.harness import PROVIDER_KEY, Running

from .support import admin, message, post

TOKEN = "admin-token-7f3a9c"
CLIENT_KEY = "sk-junction-client-key-42"


def test_the_token_guards_everything_but_the_probes(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(admin={"token": TOKEN})
    assert admin(run, "/healthz").status_code == 200
    assert admin(run, "/readyz").status_code == 200
    for path in ("/metrics", "/stats", "/admin/config", "/admin/usage", "/admin/upstreams"):
        denied = admin(run, path)
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
        assert admin(run, path, token="wrong-token").status_code == 401
        assert admin(run, path, token=TOKEN).status_code == 200, path


def test_config_is_the_effective_one_with_secrets_masked(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(
        admin={"token": TOKEN},
        auth={"keys": [{"name": "ci", "key": CLIENT_KEY}]},
    )
    r = admin(run, "/admin/config", token=TOKEN)
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    text = r.text
    assert PROVIDER_KEY not in text  # came from ${MOCK_KEY}
    assert CLIENT_KEY not in text and TOKEN not in text
    assert doc["auth"]["keys"][0] == {**doc["auth"]["keys"][0], "name": "ci", "key": "****"}
    assert doc["admin"]["token"] == "****"
    mock = doc["providers"][0]
    assert mock["name"] == "mock" and mock["api_key"].startswith("****")
    assert doc["router"]["default"] == "mock,claude-sonnet-4-5"
    assert doc["metrics"]["enabled"] is True and doc["tracing"]["enabled"] is False


def test_routes_list_targets_and_candidates(junction_factory: Callable[..., Running]) -> None:
    run = junction_factory(
        router={"default": "mock,claude-sonnet-4-5", "aliases": {"fast": "mock,claude-haiku-4-5"}}
    )
    doc = admin(run, "/admin/routes").json()
    assert doc["routes"]["default"]["targets"] == ["mock,claude-sonnet-4-5"]
    assert doc["routes"]["default"]["candidates"] == ["mock/default/claude-sonnet-4-5"]
    assert doc["aliases"]["fast"]["targets"] == ["mock,claude-haiku-4-5"]
    assert doc["routes"]["default"]["strategy"] == "priority"


def test_usage_totals_by_key_model_and_provider(
    junction_factory: Callable[..., Running],
) -> None:
    run = junction_factory(
        auth={"keys": [{"name": "ci", "key": CLIENT_KEY}]},
        router={"default": "mock,claude-sonnet-4-5", "aliases": {"fast": "mock,claude-haiku-4-5"}},
    )
    for model in ("claude-sonnet-4-5", "fast", "fast"):
        assert post(run, message(model=model), **{"x-api-key": CLIENT_KEY}).status_code == 200
    doc = admin(run, "/admin/usage").json()
    assert doc["total"]["requests"] == 3
    assert doc["by_key"]["ci"]["requests"] == 3
    assert doc["by_provider"]["mock"]["requests"] == 3
    sonnet = doc["by_model"]["mock,claude-sonnet-4-5"]
    haiku = doc["by_model"]["mock,claude-haiku-4-5"]
    assert sonnet["requests"] == 1 and haiku["requests"] == 2
    for row in (sonnet, haiku):
        assert row["input_tokens"] > 0 and row["output_tokens"] > 0 and row["cost_usd"] > 0
    # Haiku 4.5 is priced at $1 / $5 per million tokens.
    assert haiku["cost_usd"] == round((haiku["input_tokens"] + haiku["output_tokens"] * 5) / 1e6, 6)
    total_cost = sum(r["cost_usd"] for r in doc["by_model"].values())
    assert abs(doc["total"]["cost_usd"] - total_cost) < 1e-6


def test_reload_with_a_bad_file_keeps_serving(junction_factory: Callable[..., Running]) -> None:
    run = junction_factory()
    cfg = yaml.safe_load(run.config_path.read_text())
    assert admin(run, "/admin/reload").status_code == 405  # GET

    cfg["router"]["default"] = "mock,claude-haiku-4-5"
    run.config_path.write_text(yaml.safe_dump(cfg))
    good = admin(run, "/admin/reload", method="POST")
    assert good.status_code == 200 and good.json()["reloaded"] is True
    r = post(run, message(model="anything"))
    assert r.status_code == 200 and r.headers["x-junction-route"] == "mock,claude-haiku-4-5"

    run.config_path.write_text("router: {default: nowhere,model}\nproviders: []\n")
    bad = admin(run, "/admin/reload", method="POST")
    assert bad.status_code == 422
    outcome = bad.json()
    assert outcome["reloaded"] is False and "providers" in outcome["error"]
    r = post(run, message(model="anything"))  # still the last good config
    assert r.status_code == 200 and r.headers["x-junction-route"] == "mock,claude-haiku-4-5"
    stats = admin(run, "/stats").json()
    assert stats["config"]["reloads_total"] == 1
    assert stats["config"]["reload_failures_total"] == 1
