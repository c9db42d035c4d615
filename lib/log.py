"""Structured logging: one JSON object per line, with the request id, and no secrets.

Use :func:`log_event` for events (``event`` plus fields). Every line carries the request id of the
request being served (a context variable set by the HTTP adapter). Field names that look like
secrets are redacted before formatting, whatever their value, so a careless call cannot leak a key.

A record logged with ``exc_info`` (an unexpected error) carries its traceback as one string field,
``traceback``, still on the line's one line (JSON escapes the newlines). The same rule applies inside
it: wherever a secret-looking name is given a value (``api_secret='...'``, ``"token": "..."``,
``password=...``), the value is redacted, and so are bearer tokens and JWTs, so an exception message
or a repr in the traceback cannot leak a key either.
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

_SENSITIVE_WORDS = r"secret|password|passwd|token|api[_-]?key|authorization|cookie|master[_-]?key"
_SECRET_NAME = re.compile(_SENSITIVE_WORDS, re.I)
REDACTED = "[redacted]"
# In free text: a secret-looking name (maybe quoted, as in a repr or JSON), ``=`` or ``:``, its value.
_SECRET_ASSIGNMENT = re.compile(
    rf"(?P<name>[\w-]*(?:{_SENSITIVE_WORDS})[\w-]*['\"]?)(?P<sep>\s*[:=]\s*)"
    r"(?P<value>'[^'\n]*'|\"[^\"\n]*\"|[^\s,;&)}\]]+)",
    re.I,
)
_BEARER = re.compile(r"(?P<scheme>\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
_EXCEPTION_SUFFIXES = ("Error", "Exception", "Warning")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret-looking key's value replaced, recursively."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_NAME.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def redact_text(text: str) -> str:
    """``text`` with the value of every secret-looking ``name=value`` / ``name: value``, every bearer
    token and every JWT replaced (for tracebacks and other free text)."""
    text = _BEARER.sub(lambda m: m["scheme"] + REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    return _SECRET_ASSIGNMENT.sub(_redacted_assignment, text)


def _redacted_assignment(match: re.Match[str]) -> str:
    # "InvalidTokenError: message" is an exception's type and message, not a token and its value.
    if match["name"].endswith(_EXCEPTION_SUFFIXES) and match["sep"].strip() != "=":
        return match[0]
    return match["name"] + match["sep"] + REDACTED


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
            # Logs only: callers never see a traceback (the HTTP adapter answers with the request id).
            line["error_type"] = record.exc_info[0].__name__
            line["traceback"] = redact_text(self.formatException(record.exc_info))
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


def log_event(
    logger: logging.Logger,
    event: str,
    *,
    level: int = logging.INFO,
    exc_info: BaseException | None = None,
    **fields: Any,
) -> None:
    """Log one event with structured fields (secret-looking fields are redacted).

    ``exc_info``: the unexpected error being logged; its traceback becomes the ``traceback`` field.
    """
    logger.log(level, event, exc_info=exc_info, extra={"event": event, "fields": fields})
