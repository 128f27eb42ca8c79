"""Application logs: stdlib logging, one line per record, JSON or text like the access log.

Records about one request carry its id: a call site passes ``extra={"request_id": ...}`` and
both formats print it, so an application log line can be joined with the access log line
(``request_id`` in both). Messages are the code's own text: none of them formats a prompt or
a key (the secret-hygiene test searches the records for markers).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

import orjson

from proxy.config.model import LogConfig

TEXT_FORMAT = "%(asctime)s junction[%(process)d] %(levelname)s %(message)s"


def _request_id(record: logging.LogRecord) -> str | None:
    value = getattr(record, "request_id", None)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) and value else None


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        rid = _request_id(record)
        if rid is not None:
            doc["request_id"] = rid
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


class TextLogFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self.converter = time.gmtime  # UTC, as the access log

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = _request_id(record)
        return f"{line} request_id={rid}" if rid is not None else line


def configure_logging(cfg: LogConfig, stream: TextIO | None = None) -> None:
    """The root logger writes to ``stream`` (standard error) in ``cfg.format``."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLogFormatter() if cfg.format == "json" else TextLogFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(cfg.level).upper(), logging.INFO))
