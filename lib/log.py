"""Structured logging: one JSON object per line, with the request id, and no secrets.

Use :func:`log_event` for events (``event`` plus fields). Every line carries the request id of the
request being served (a context variable set by the HTTP adapter). Field names that look like
secrets are redacted before formatting, whatever their value, so a careless call cannot leak a key.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import IO, Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_SECRET_NAME = re.compile(r"secret|password|passwd|token|api_?key|authorization|cookie|master_?key", re.I)
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret-looking key's value replaced, recursively."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_NAME.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, logger, event/message, request_id, fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(redact(fields))
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and message only: tracebacks go to stderr in development, never to callers.
            line["error_type"] = record.exc_info[0].__name__
        return json.dumps(line, default=str, separators=(",", ":"))


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send every log line of the process through the JSON formatter (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with structured fields (secret-looking fields are redacted)."""
    logger.log(level, event, extra={"event": event, "fields": fields})
