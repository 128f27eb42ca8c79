"""Admin API pieces without a server: the bearer token check and config masking."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from proxy.admin.api import AdminApi, config_doc
from proxy.config.loader import load_config
from proxy.config.observability import TracingConfig


def test_the_token_is_a_bearer_token() -> None:
    api = AdminApi(token=b"s3cret-token")
    assert api.authorized([(b"authorization", b"Bearer s3cret-token")])
    assert api.authorized([(b"authorization", b"bearer s3cret-token ")])
    assert not api.authorized([])
    assert not api.authorized([(b"authorization", b"Basic s3cret-token")])
    assert not api.authorized([(b"authorization", b"Bearer s3cret-tokeN")])
    assert AdminApi().authorized([])  # no token configured: open (localhost by default)


def test_config_masks_keys_and_every_referenced_variable(tmp_path: Path) -> None:
    path = tmp_path / "junction.yaml"
    data = {
        "providers": [
            {
                "name": "openai",
                "dialect": "openai",
                "base_url": "${OPENAI_BASE}",
                "api_key": "${OPENAI_KEY}",
            }
        ],
        "router": {"default": "openai,gpt-4.1"},
        "auth": {
            "keys": [
                {"name": "ci", "key": "sk-client-plain-in-file"},
                {"name": "team", "key": "${TEAM_SECRET}"},
            ]
        },
    }
    path.write_text(yaml.safe_dump(data))
    env = {
        "OPENAI_BASE": "http://127.0.0.1:8080",
        "OPENAI_KEY": "sk-openai-0123456789abcd",
        "TEAM_SECRET": "sk-team-secret-value",
        "UNRELATED": "127.0.0.1",
    }
    cfg = load_config(path, env=env)
    doc = config_doc(cfg, path, env)
    text = str(doc)
    for secret in ("sk-openai-0123456789", "sk-team-secret-value", "sk-client-plain-in-file"):
        assert secret not in text
    provider = doc["providers"][0]
    assert provider["api_key"] == "****abcd"  # the tail only, as `junction config` shows
    assert provider["base_url"] == "****"  # ${VAR}-resolved: masked whatever it holds
    assert doc["auth"]["keys"][0]["key"] == "****"
    assert doc["listen"]["host"] == "127.0.0.1"  # an unreferenced variable's value is not


def test_the_otlp_endpoint_is_a_plain_http_url() -> None:
    assert TracingConfig(otlp_endpoint="http://127.0.0.1:4318/v1/traces").otlp_endpoint
    for bad in ("ftp://collector/v1/traces", "collector:4318", "https://user:pw@collector/v1"):
        with pytest.raises(ValidationError):
            TracingConfig(otlp_endpoint=bad)
