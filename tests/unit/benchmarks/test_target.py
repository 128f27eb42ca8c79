import pytest

from benchmarks import loadgen
from benchmarks.target import TargetError, build_request, loopback_target, parse_header


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("http://127.0.0.1:8080/v1/messages", "127.0.0.1", 8080),
        ("http://127.9.8.7:1/", "127.9.8.7", 1),
        ("http://localhost:3456/x", "127.0.0.1", 3456),
        ("http://[::1]:9000/", "::1", 9000),
        ("http://127.0.0.1/", "127.0.0.1", 80),
    ],
)
def test_loopback_urls_are_accepted(url: str, host: str, port: int) -> None:
    target = loopback_target(url)
    assert (target.host, target.port) == (host, port)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8080/",
        "http://0.0.0.0:8080/",
        "http://192.168.1.5/",
        "http://example.com/",
        "http://127.0.0.1.example.com/",
        "http://[::ffff:8.8.8.8]/",
        "https://127.0.0.1/",
        "ftp://127.0.0.1/",
        "http:///nohost",
        "http://127.0.0.1:99999/",
    ],
)
def test_anything_else_is_refused(url: str) -> None:
    with pytest.raises(TargetError):
        loopback_target(url)


def test_the_command_line_refuses_a_remote_host_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert loadgen.main(["--url", "http://8.8.8.8/v1/messages", "--closed-loop"]) == 2
    assert "non-loopback" in capsys.readouterr().err


def test_request_bytes_are_built_once_with_framing_owned_by_the_generator() -> None:
    target = loopback_target("http://127.0.0.1:8080/v1/messages?beta=true")
    raw = build_request(
        "POST",
        target,
        [("x-api-key", "k"), ("Content-Length", "999"), ("Connection", "close")],
        b'{"a":1}',
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert body == b'{"a":1}'
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/messages?beta=true HTTP/1.1"
    assert lines[1:] == [b"Host: 127.0.0.1:8080", b"x-api-key: k", b"Content-Length: 7"]


def test_header_and_method_validation() -> None:
    assert parse_header("anthropic-version:  2023-06-01 ") == ("anthropic-version", "2023-06-01")
    for bad in ("no-colon", ": empty-name", "x: a\r\nInjected: 1"):
        with pytest.raises(TargetError):
            parse_header(bad)
    with pytest.raises(TargetError):
        build_request("GET /x", loopback_target("http://127.0.0.1/"), [], b"")
