"""Fixtures of the hardening suite: a live Junction and the mock provider on loopback (the
integration harness), plus helpers that assert nothing was left behind."""

from __future__ import annotations

from tests.integration.proxy.conftest import http1_codec, junction, junction_factory, lt, mock

__all__ = ["http1_codec", "junction", "junction_factory", "lt", "mock"]
