from proxy import headers as h


def test_strip_hop_by_hop_removes_named_but_keeps_protected() -> None:
    hs = [
        (b"connection", b"close, x-api-key, x-foo"),
        (b"x-api-key", b"secret"),
        (b"x-foo", b"1"),
        (b"transfer-encoding", b"chunked"),
        (b"content-type", b"application/json"),
    ]
    out = h.strip_hop_by_hop(hs, protected=[b"x-api-key"])
    assert out == [(b"x-api-key", b"secret"), (b"content-type", b"application/json")]


def test_safe_value_rejects_crlf_and_nul() -> None:
    assert h.is_safe_value(b"claude-sonnet-4-5")
    assert not h.is_safe_value(b"a\r\nX-Evil: 1")
    assert not h.is_safe_value(b"a\x00b")
