from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import config_from_env, find_config_path, load_config
from proxy.errors import ConfigError
from proxy.protocol.limits import CodecLimits
from proxy.upstream.api import Origin
from tests.unit.config.helpers import ENV, MINIMAL, SECRET, load_text, problems_of, write


def test_defaults_fill_every_section(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL)
    assert (cfg.listen.host, cfg.listen.port, cfg.listen.tls) == ("127.0.0.1", 3456, None)
    assert (cfg.admin.host, cfg.admin.port, cfg.admin.enabled) == ("127.0.0.1", 9901, True)
    assert cfg.server.loop == "auto" and cfg.server.http == "auto"
    assert cfg.server.workers == 1 and cfg.server.drain_timeout_s == 30
    assert cfg.server.max_connections == 10000 and cfg.server.tls_handshake_timeout_s == 10
    assert cfg.limits.max_header_bytes == 65536 and cfg.limits.max_header_count == 100
    assert cfg.limits.max_body_bytes == 32 * 1024 * 1024
    assert cfg.limits.request_header_timeout_s == 10 and cfg.limits.request_body_timeout_s == 60
    assert cfg.limits.keepalive_timeout_s == 75 and cfg.limits.write_buffer_high_bytes == 262144
    assert cfg.limits.h2_max_concurrent_streams == 100
    assert cfg.limits.h2_initial_stream_window == 262144
    assert cfg.limits.h2_initial_connection_window == 1048576
    assert cfg.upstream.connect_timeout_s == 10 and cfg.upstream.max_connections_per_origin == 256
    assert cfg.upstream.max_pending_requests == 1024 and cfg.upstream.idle_timeout_s == 60
    assert cfg.upstream.dns_ttl_s == 30 and cfg.upstream.http1_codec == "auto"
    assert cfg.upstream.response_header_timeout_s == 600
    assert cfg.upstream.stream_idle_timeout_s == 300
    assert (cfg.log.level, cfg.log.access_log) == ("info", True)
    provider = cfg.provider("anthropic")
    assert provider.protocol == "auto" and provider.ca_file is None
    assert provider.api_key is not None and provider.api_key.get_secret_value() == SECRET
    assert cfg.router.default_route == ("anthropic", "claude-sonnet-4-5")


def test_provider_url_parts_and_origin(tmp_path: Path) -> None:
    text = MINIMAL.replace("https://api.anthropic.com", "https://openrouter.ai/api/")
    cfg = load_text(tmp_path, text.replace("    models:", "    protocol: h2\n    models:"))
    p = cfg.provider("anthropic")
    assert p.base_url == "https://openrouter.ai/api"
    assert (p.scheme, p.host, p.port, p.path_prefix) == ("https", "openrouter.ai", 443, "/api")
    assert p.origin == Origin(scheme="https", host="openrouter.ai", port=443, protocol="h2")
    with pytest.raises(KeyError):
        cfg.provider("nope")


def test_ipv6_http_base_url(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL.replace("https://api.anthropic.com", "http://[::1]:8090"))
    p = cfg.providers[0]
    assert (p.scheme, p.host, p.port, p.path_prefix) == ("http", "::1", 8090, "")


def test_helpers_build_the_shared_settings(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path, MINIMAL + "limits: {max_body_bytes: 1000}\nupstream: {max_pending_requests: 7}\n"
    )
    limits = cfg.limits.codec_limits()
    assert limits.max_body_bytes == 1000
    assert limits.h2_max_frame_size == CodecLimits().h2_max_frame_size
    assert cfg.upstream.upstream_settings().max_pending_requests == 7


def test_env_overrides_file_values_nested(tmp_path: Path) -> None:
    env = {
        **ENV,
        "JUNCTION_LISTEN__PORT": "8080",
        "JUNCTION_SERVER__WORKERS": "2",
        "JUNCTION_LOG__ACCESS_LOG": "false",
        "UNRELATED": "x",
    }
    cfg = load_text(tmp_path, MINIMAL + "listen: {host: 0.0.0.0, port: 1000}\n", env)
    assert cfg.listen.port == 8080
    assert cfg.listen.host == "0.0.0.0"  # untouched keys of the same section survive
    assert cfg.server.workers == 2
    assert cfg.log.access_log is False


def test_env_overlay_is_validated_like_the_file(tmp_path: Path) -> None:
    env = {**ENV, "JUNCTION_LISTEN__PORT": "eighty", "JUNCTION_LISTEN__PROT": "1"}
    problems = problems_of(tmp_path, MINIMAL, env)
    assert "listen.port: must be an integer (got 'eighty')" in problems
    assert any(line.startswith("listen.prot: unknown key") for line in problems)


def test_env_json_for_a_list_section(tmp_path: Path) -> None:
    env = {
        "JUNCTION_PROVIDERS": '[{"name": "p", "dialect": "openai", "base_url": "http://h:1"}]',
        "JUNCTION_ROUTER__DEFAULT": "p,m",
    }
    cfg = load_config(None, env=env)
    assert cfg.router.default == "p,m" and cfg.provider("p").port == 1
    with pytest.raises(ConfigError, match=r"^JUNCTION_PROVIDERS: must be JSON"):
        load_config(None, env={"JUNCTION_PROVIDERS": "[not json"})


def test_precedence_overrides_beat_env_beat_file(tmp_path: Path) -> None:
    text = MINIMAL + "listen: {port: 1000}\nserver: {workers: 3}\nadmin: {port: 9000}\n"
    env = {**ENV, "JUNCTION_LISTEN__PORT": "2000", "JUNCTION_SERVER__WORKERS": "4"}
    cfg = load_text(tmp_path, text, env, overrides={"listen.port": 3000})
    assert cfg.listen.port == 3000  # override > env > file
    assert cfg.server.workers == 4  # env > file
    assert cfg.admin.port == 9000  # file > default
    nested = load_text(tmp_path, text, env, overrides={"server": {"workers": 5}})
    assert nested.server.workers == 5 and nested.listen.port == 2000


def test_override_values_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, MINIMAL, overrides={"listen.port": 70000, "server.workers": 0})
    assert info.value.message.splitlines() == [
        "listen.port: must be at most 65535 (got 70000)",
        "server.workers: must be at least 1 (got 0)",
    ]


def test_var_expansion_default_and_escape(tmp_path: Path) -> None:
    text = MINIMAL + (
        "listen: {host: '${HOST:-0.0.0.0}', port: '${PORT}'}\n"
        "admin: {host: '${EMPTY:-127.0.0.2}'}\n"
    )
    text = text.replace("base_url: https://api.anthropic.com", "base_url: 'https://${API_HOST}'")
    text = text.replace("api_key: ${ANTHROPIC_API_KEY}", "api_key: pre$${ANTHROPIC_API_KEY}post")
    env = {"PORT": "4000", "API_HOST": "example.test", "EMPTY": ""}
    cfg = load_text(tmp_path, text, env)
    assert cfg.listen.host == "0.0.0.0"  # unset: default
    assert cfg.admin.host == "127.0.0.2"  # empty: default too, as in the shell
    assert cfg.listen.port == 4000  # expanded string, then coerced
    assert cfg.providers[0].base_url == "https://example.test"
    key = cfg.providers[0].api_key
    assert key is not None and key.get_secret_value() == "pre${ANTHROPIC_API_KEY}post"


def test_missing_variable_names_the_key_path(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, MINIMAL, env={})
    assert problems == [
        "providers[0].api_key: environment variable ANTHROPIC_API_KEY is not set",
    ]


def test_every_missing_variable_is_reported(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, MINIMAL + "listen: {host: '${NO_HOST}', prot: 1}\n", env={})
    assert "listen.host: environment variable NO_HOST is not set" in problems
    assert "providers[0].api_key: environment variable ANTHROPIC_API_KEY is not set" in problems
    assert any(p.startswith("listen.prot: unknown key") for p in problems)


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  host: 127.0.0.1\n  port: [3456\nadmin: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = info.value.message
    assert message.startswith(f"{path}: invalid YAML at line ")
    assert "column" in message and "\n" not in message


def test_yaml_syntax_error_line_number_is_the_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path, "listen:\n  host: a\n  port: 1: 2\n")
    with pytest.raises(ConfigError, match="line 3, column"):
        load_config(path, env={})


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "listen: {port: 1}\nlisten: {port: 2}\n")
    with pytest.raises(ConfigError, match=r"line 10, column 1: duplicate key 'listen'"):
        load_config(path, env=ENV)


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    text = MINIMAL + "x_base: &base {host: 0.0.0.0, port: 1}\n"
    path = write(tmp_path, text.replace("x_base", "admin") + "listen: {<<: *base, port: 2}\n")
    cfg = load_config(path, env=ENV)
    assert (cfg.listen.host, cfg.listen.port) == ("0.0.0.0", 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "top level must be a mapping"),
        ("", "providers: at least one provider is required"),
    ],
)
def test_file_shape_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text), env={})


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.yaml", env={})
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, env={})
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"listen: {host: \xe9}\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad, env={})


def test_relative_tls_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "c.pem").write_text("cert")
    (tmp_path / "certs" / "k.pem").write_text("key")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    tls = "listen: {tls: {cert_file: certs/c.pem, key_file: certs/k.pem}}\n"
    cfg = load_text(tmp_path, MINIMAL + tls)
    assert cfg.listen.tls is not None
    assert cfg.listen.tls.cert_file == str(tmp_path / "certs" / "c.pem")
    assert cfg.listen.tls.key_file == str(tmp_path / "certs" / "k.pem")


def test_find_config_path_prefers_cwd_then_home(tmp_path: Path) -> None:
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home_file = home / ".config" / "junction" / "junction.yaml"
    home_file.parent.mkdir(parents=True)
    assert find_config_path(cwd, home) is None
    home_file.write_text(MINIMAL)
    assert find_config_path(cwd, home) == home_file
    (cwd / "junction.yaml").write_text(MINIMAL)
    assert find_config_path(cwd, home) == cwd / "junction.yaml"


def test_config_from_env_anthropic_first() -> None:
    assert config_from_env({}) is None
    assert config_from_env({"ANTHROPIC_API_KEY": ""}) is None
    both = config_from_env({"ANTHROPIC_API_KEY": "a-key", "OPENAI_API_KEY": "o-key"})
    assert both is not None
    assert [p.name for p in both.providers] == ["anthropic", "openai"]
    anthropic, openai = both.provider("anthropic"), both.provider("openai")
    assert (anthropic.dialect, anthropic.base_url) == ("anthropic", "https://api.anthropic.com")
    assert (openai.dialect, openai.base_url) == ("openai", "https://api.openai.com")
    assert openai.api_key is not None and openai.api_key.get_secret_value() == "o-key"
    assert both.router.default == "anthropic,claude-sonnet-4-5"
    assert anthropic.allows_model("claude-opus-4-1")  # no model list: any model


def test_config_from_env_openai_only_and_env_overlay() -> None:
    cfg = config_from_env({"OPENAI_API_KEY": "o-key", "JUNCTION_LISTEN__PORT": "7000"})
    assert cfg is not None
    assert [p.name for p in cfg.providers] == ["openai"]
    assert cfg.router.default == "openai,gpt-4.1"
    assert cfg.listen.port == 7000


def test_load_without_file_or_keys_says_what_is_missing() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={})
    assert "providers: at least one provider is required" in info.value.message.splitlines()


def test_shipped_examples_are_valid() -> None:
    examples = Path(__file__).resolve().parents[3] / "examples"
    demo = load_config(examples / "demo.yaml", env={})
    assert (demo.listen.host, demo.listen.port) == ("127.0.0.1", 3456)
    assert (demo.admin.host, demo.admin.port) == ("127.0.0.1", 9901)
    assert [(p.name, p.dialect, p.base_url) for p in demo.providers] == [
        ("mock", "anthropic", "http://127.0.0.1:8090"),
        ("mock-openai", "openai", "http://127.0.0.1:8090"),
    ]
    assert demo.provider("mock-openai").models == ("gpt-4.1", "gpt-4.1-mini")
    assert demo.router.default == "mock,claude-sonnet-4-5"
    full = load_config(examples / "junction.example.yaml", env={"ANTHROPIC_API_KEY": "k"})
    assert [p.name for p in full.providers] == ["anthropic", "openai", "openrouter"]
    assert full.provider("openrouter").path_prefix == "/api"
