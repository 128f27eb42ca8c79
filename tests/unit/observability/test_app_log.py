"""Application log lines: JSON or text, with the request id when the record has one."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from proxy.config.model import LogConfig
from proxy.observability.app_log import configure_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_request_id(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging(LogConfig(format="json", level="debug"), out)
    log = logging.getLogger("junction.test")
    log.warning("router.custom raised %s", "KeyError", extra={"request_id": b"req-7"})
    log.debug("no request")
    first, second = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "warning" and first["logger"] == "junction.test"
    assert first["message"] == "router.custom raised KeyError"
    assert first["request_id"] == "req-7" and isinstance(first["pid"], int)
    assert "request_id" not in second and second["level"] == "debug"


def test_text_lines_end_with_the_request_id(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging(LogConfig(format="text"), out)
    logging.getLogger("junction").info("reloaded", extra={"request_id": "req-8"})
    logging.getLogger("junction").debug("below the level")
    (line,) = out.getvalue().splitlines()
    assert " INFO reloaded request_id=req-8" in line and "junction[" in line
