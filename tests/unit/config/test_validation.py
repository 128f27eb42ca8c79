"""Every problem is one `path: message` line, and all of them are reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from proxy.config import JunctionConfig, ProviderConfig
from tests.unit.config.helpers import MINIMAL, SECRET, load_text, problems_of

TWO_PROVIDERS = """\
providers:
  - name: anthropic
    dialect: anthropic
    base_url: https://api.anthropic.com
    models: [claude-sonnet-4-5, claude-haiku-4-5]
  - name: openai
    dialect: openai
    base_url: https://api.openai.com
router:
  default: '{default}'
"""


def test_unknown_key_at_top_level(tmp_path: Path) -> None:
    assert problems_of(tmp_path, MINIMAL + "listener: {}\n") == [
        "listener: unknown key (did you mean 'listen'?)"
    ]


def test_unknown_key_nested_and_in_a_list_item(tmp_path: Path) -> None:
    text = MINIMAL.replace("    models:", "    apikey: x\n    models:") + "listen: {prot: 1}\n"
    problems = problems_of(tmp_path, text)
    assert "listen.prot: unknown key (did you mean 'port'?)" in problems
    assert "providers[0].apikey: unknown key (did you mean 'api_key'?)" in problems


def test_unknown_key_far_from_any_name_has_no_suggestion(tmp_path: Path) -> None:
    assert problems_of(tmp_path, MINIMAL + "server: {zzz: 1}\n") == ["server.zzz: unknown key"]


def test_bad_enum_value_lists_the_choices(tmp_path: Path) -> None:
    text = MINIMAL.replace("dialect: anthropic", "dialect: antropic")
    assert problems_of(tmp_path, text + "server: {http: h3}\n") == [
        "server.http: must be one of auto, httptools, h11 (got 'h3')",
        "providers[0].dialect: must be one of anthropic, openai (got 'antropic')",
    ]


def test_all_problems_are_collected(tmp_path: Path) -> None:
    text = MINIMAL + (
        "listen: {port: -1}\n"
        "server: {workers: 0, drain_timeout_s: 0, loop: fast}\n"
        "limits: {max_body_bytes: 0, keepalive_timeout_s: -5}\n"
        "upstream: {connect_timeout_s: soon}\n"
        "log: {level: loud, access_log: maybe}\n"
    )
    assert problems_of(tmp_path, text) == [
        "listen.port: must be at least 0 (got -1)",
        "server.loop: must be one of auto, uvloop, asyncio (got 'fast')",
        "server.workers: must be at least 1 (got 0)",
        "server.drain_timeout_s: must be greater than 0 (got 0)",
        "limits.max_body_bytes: must be greater than 0 (got 0)",
        "limits.keepalive_timeout_s: must be greater than 0 (got -5)",
        "upstream.connect_timeout_s: must be a number (got 'soon')",
        "log.level: must be one of debug, info, warning, error (got 'loud')",
        "log.access_log: must be true or false (got 'maybe')",
    ]


def test_wrong_shapes(tmp_path: Path) -> None:
    text = MINIMAL.replace("models: [claude-sonnet-4-5, claude-haiku-4-5]", "models: x")
    problems = problems_of(tmp_path, text + "listen: [1, 2]\n")
    assert "listen: must be a mapping (got a list)" in problems
    assert "providers[0].models: must be a list (got 'x')" in problems


@pytest.mark.parametrize(
    ("default", "expected"),
    [
        ("anthropic", "router.default: must be 'provider,model' (got 'anthropic')"),
        (
            ",claude-sonnet-4-5",
            "router.default: must be 'provider,model' (got ',claude-sonnet-4-5')",
        ),
        (
            "vertex,gemini",
            "router.default: unknown provider 'vertex' (providers: anthropic, openai)",
        ),
        (
            "anthropic,gpt-4.1",
            "router.default: provider 'anthropic' has no model 'gpt-4.1' "
            "(models: claude-sonnet-4-5, claude-haiku-4-5)",
        ),
    ],
)
def test_bad_router_default(tmp_path: Path, default: str, expected: str) -> None:
    assert problems_of(tmp_path, TWO_PROVIDERS.format(default=default)) == [expected]


def test_router_default_any_model_when_provider_lists_none(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, TWO_PROVIDERS.format(default="openai,whatever-model"))
    assert cfg.router.default_route.model == "whatever-model"


def test_missing_router(tmp_path: Path) -> None:
    text = MINIMAL.replace("router:\n  default: anthropic,claude-sonnet-4-5\n", "")
    assert problems_of(tmp_path, text) == ["router: required"]


def test_duplicate_provider_name_points_at_the_second(tmp_path: Path) -> None:
    text = TWO_PROVIDERS.format(default="anthropic,claude-sonnet-4-5").replace(
        "name: openai", "name: anthropic"
    )
    assert problems_of(tmp_path, text) == [
        "providers[1].name: duplicate provider name 'anthropic' (also providers[0])"
    ]


def test_bad_provider_name(tmp_path: Path) -> None:
    text = MINIMAL.replace("name: anthropic", "name: 'my provider'")
    assert problems_of(tmp_path, text)[0] == (
        "providers[0].name: must use only letters, digits, '_', '.' and '-' (got 'my provider')"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://api.anthropic.com", "must start with http:// or https://"),
        ("api.anthropic.com", "must start with http:// or https://"),
        ("https://", "must name a host"),
        ("https://host:99999", "not a valid URL"),
        ("https://host:0", "port must be 1-65535"),
        ("https://host/?x=1", "must not have a query or fragment"),
        ("https://user:pw@host", "must not carry credentials"),
    ],
)
def test_bad_base_url(tmp_path: Path, url: str, message: str) -> None:
    text = MINIMAL.replace("https://api.anthropic.com", f"'{url}'")
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1
    assert problems[0].startswith(f"providers[0].base_url: {message}")
    assert "pw" not in problems[0]


def test_at_least_one_provider(tmp_path: Path) -> None:
    text = "providers: []\nrouter: {default: 'a,b'}\n"
    assert problems_of(tmp_path, text) == ["providers: at least one provider is required"]


def test_tls_files_must_exist(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("cert")
    text = MINIMAL + "listen: {tls: {cert_file: cert.pem, key_file: missing.key}}\n"
    assert problems_of(tmp_path, text) == [
        f"listen.tls.key_file: file not found: {tmp_path / 'missing.key'}"
    ]
    assert problems_of(tmp_path, MINIMAL + "listen: {tls: {cert_file: cert.pem}}\n") == [
        "listen.tls.key_file: required"
    ]


def test_ca_file_must_exist(tmp_path: Path) -> None:
    text = MINIMAL.replace("    models:", "    ca_file: /nonexistent/ca.pem\n    models:")
    assert problems_of(tmp_path, text) == [
        "providers[0].ca_file: file not found: /nonexistent/ca.pem"
    ]


def test_api_key_is_secret_and_never_echoed(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL)
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.providers[0])
    bad = {"ANTHROPIC_API_KEY": "sk-bad\r\nX-Injected: 1"}
    problems = problems_of(tmp_path, MINIMAL, env=bad)
    assert problems == [
        "providers[0].api_key: must be printable ASCII without spaces or control characters"
    ]
    number_key = MINIMAL.replace("${ANTHROPIC_API_KEY}", "123456789")
    assert problems_of(tmp_path, number_key) == ["providers[0].api_key: must be a string"]


def test_api_key_whitespace_trimmed_and_empty_means_none(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL, env={"ANTHROPIC_API_KEY": " sk-x\n"})
    assert cfg.providers[0].api_key is not None
    assert cfg.providers[0].api_key.get_secret_value() == "sk-x"
    text = MINIMAL.replace("${ANTHROPIC_API_KEY}", "${ANTHROPIC_API_KEY:-}")
    assert load_text(tmp_path, text, env={}).providers[0].api_key is None


def test_models_are_frozen_and_hashable(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL)
    with pytest.raises(ValidationError):
        cfg.listen.port = 1
    assert hash(cfg) == hash(load_text(tmp_path, MINIMAL))
    assert cfg.providers[0].models == ("claude-sonnet-4-5", "claude-haiku-4-5")


def test_direct_construction_validates_too() -> None:
    provider = ProviderConfig(name="p", dialect="openai", base_url="http://h:1/")
    cfg = JunctionConfig(providers=(provider,), router={"default": "p,m"})  # type: ignore[arg-type]
    assert cfg.provider("p").base_url == "http://h:1"
    with pytest.raises(ValidationError, match=r"router\.default: unknown provider 'q'"):
        JunctionConfig(providers=(provider,), router={"default": "q,m"})  # type: ignore[arg-type]


def test_pydantic_error_text_never_echoes_a_key() -> None:
    with pytest.raises(ValidationError) as info:
        ProviderConfig(name="p", dialect="openai", base_url="http://h", api_key="sk-leak\nx")  # type: ignore[arg-type]
    assert "sk-leak" not in str(info.value)


def test_read_batching_thresholds_need_a_gap(tmp_path: Path) -> None:
    text = MINIMAL + "upstream: {read_batching: {start_above: 0.6, stop_below: 0.6}}\n"
    assert problems_of(tmp_path, text) == [
        "upstream.read_batching.stop_below: must be below start_above"
    ]
    text = MINIMAL + "upstream: {read_batching: {window_s: 0, start_above: 1.5}}\n"
    assert problems_of(tmp_path, text) == [
        "upstream.read_batching.window_s: must be greater than 0 (got 0)",
        "upstream.read_batching.start_above: must be at most 1 (got 1.5)",
    ]
