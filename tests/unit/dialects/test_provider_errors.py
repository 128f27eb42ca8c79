"""Provider error bodies -> (kind, message), for both dialects and for garbage."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.dialects.translate.provider_errors import (
    KNOWN_KINDS,
    MAX_EXCERPT_CHARS,
    MAX_MESSAGE_CHARS,
    read_provider_error,
)
from proxy.filters.api import Dialect

A, OA = Dialect.ANTHROPIC, Dialect.OPENAI


def openai_error(message: str, etype: str | None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": etype, "param": None, "code": code}})


def anthropic_error(etype: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}})


@pytest.mark.parametrize(
    ("status", "etype", "message"),
    [
        (529, "overloaded_error", "Overloaded"),
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
        (400, "invalid_request_error", "messages: text content blocks must be non-empty"),
        (401, "authentication_error", "invalid x-api-key"),
        (402, "billing_error", "Your credit balance is too low"),
        (403, "permission_error", "no access"),
        (404, "not_found_error", "model: claude-x"),
        (413, "request_too_large", "too big"),
        (500, "api_error", "Internal server error"),
        (504, "timeout_error", "timed out"),
    ],
)
def test_anthropic_error_types_are_kinds(status: int, etype: str, message: str) -> None:
    assert read_provider_error(A, status, anthropic_error(etype, message)) == (etype, message)


def test_anthropic_unknown_type_falls_back_to_status() -> None:
    assert read_provider_error(A, 503, anthropic_error("brand_new_error", "m")) == (
        "overloaded_error",
        "m",
    )


@pytest.mark.parametrize(
    ("status", "etype", "code", "kind"),
    [
        (429, "requests", "rate_limit_exceeded", "rate_limit_error"),
        (429, "insufficient_quota", "insufficient_quota", "billing_error"),
        (401, "invalid_request_error", "invalid_api_key", "authentication_error"),
        (404, "invalid_request_error", "model_not_found", "not_found_error"),
        (400, "invalid_request_error", "context_length_exceeded", "invalid_request_error"),
        (503, "server_error", None, "overloaded_error"),
        (500, "server_error", None, "api_error"),
        (502, "server_error", None, "api_error"),
        (504, "server_error", None, "timeout_error"),
        (403, "permission_error", None, "permission_error"),
        (401, "authentication_error", None, "authentication_error"),
        (404, "invalid_request_error", None, "not_found_error"),
        (400, "invalid_request_error", None, "invalid_request_error"),
        (422, None, None, "invalid_request_error"),
        (503, "server_error", "overloaded", "overloaded_error"),
        (429, "rate_limit_error", None, "rate_limit_error"),
    ],
)
def test_openai_types_and_codes(
    status: int, etype: str | None, code: str | None, kind: str
) -> None:
    assert read_provider_error(OA, status, openai_error("the message", etype, code)) == (
        kind,
        "the message",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "model is loading"}', "model is loading"),
        (
            b'{"object":"error","message":"bad prompt","type":"BadRequestError","code":400}',
            "bad prompt",
        ),
        (b'{"detail": "Not authenticated"}', "Not authenticated"),
    ],
)
def test_compatible_server_shapes(body: bytes, message: str) -> None:
    assert read_provider_error(OA, 400, body) == ("invalid_request_error", message)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (502, b"", ("api_error", "provider returned HTTP 502")),
        (
            503,
            b"<html><body>\r\n<h1>503 Service Unavailable</h1>\n</body></html>",
            (
                "overloaded_error",
                "provider returned HTTP 503: "
                "<html><body> <h1>503 Service Unavailable</h1> </body></html>",
            ),
        ),
        (
            429,
            b"slow down\x00\x1b[31m",
            ("rate_limit_error", "provider returned HTTP 429: slow down [31m"),
        ),
        (
            500,
            b"\xff\xfe garbage",
            ("api_error", "provider returned HTTP 500: \ufffd\ufffd garbage"),
        ),
        (400, b"[1, 2]", ("invalid_request_error", "provider returned HTTP 400: [1, 2]")),
        (500, b"{}", ("api_error", "provider returned HTTP 500")),
        (200, b"{}", ("api_error", "provider returned HTTP 200")),
        (418, b"   ", ("invalid_request_error", "provider returned HTTP 418")),
    ],
)
def test_garbage_bodies(status: int, body: bytes, expected: tuple[str, str]) -> None:
    assert read_provider_error(OA, status, body) == expected


def test_excerpts_and_messages_are_bounded() -> None:
    _, message = read_provider_error(OA, 500, b"x" * 100_000)
    assert message == "provider returned HTTP 500: " + "x" * MAX_EXCERPT_CHARS
    _, message = read_provider_error(OA, 400, openai_error("y" * 5000, "invalid_request_error"))
    assert message == "y" * MAX_MESSAGE_CHARS
    # a valid JSON error larger than the parse bound is excerpted, not parsed
    big = openai_error("z" * 100_000, "invalid_request_error")
    assert read_provider_error(OA, 400, big)[1].startswith('provider returned HTTP 400: {"error"')


@given(st.sampled_from([A, OA]), st.integers(100, 599), st.binary(max_size=300))
def test_never_raises_on_arbitrary_bytes(dialect: Dialect, status: int, body: bytes) -> None:
    kind, message = read_provider_error(dialect, status, body)
    assert kind in KNOWN_KINDS
    assert message
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in message)
