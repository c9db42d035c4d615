"""Structured logging: one JSON object per line, with the request id, and no secrets.

Use :func:`log_event` for events (``event`` plus fields). Every line carries the request id of the
request being served (a context variable set by the HTTP adapter). Field names that look like
secrets are redacted before formatting, whatever their value, so a careless call cannot leak a key.

A record logged with ``exc_info`` (an unexpected error) carries its traceback as one string field,
``traceback``, still on the line's one line (JSON escapes the newlines). The same rule applies inside
it: wherever a secret-looking name is given a value (``api_secret='...'``, ``"token": "..."``,
``password=...``), the value is redacted, and so are bearer tokens and JWTs, so an exception message
or a repr in the traceback cannot leak a key either.

Every line is bounded, whatever a caller sent: a string field keeps its first ``MAX_FIELD_CHARS``
characters, a list or mapping its first ``MAX_ITEMS`` entries, a traceback its first and last lines
(``MAX_TRACEBACK_CHARS`` in all), and a line that is still longer than ``MAX_LINE_CHARS`` is replaced
by its ``ts``, ``level``, ``logger``, ``event`` and ``request_id`` with ``"truncated": true``.
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
MAX_FIELD_CHARS = 512
MAX_ITEMS = 50
MAX_TRACEBACK_CHARS = 6000
MAX_LINE_CHARS = 8192
_TRACEBACK_HEAD = 1000


def _cut(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}...[{len(text) - limit} more characters]"


def bound(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` small enough for a log line: strings, lists and mappings cut, nesting capped."""
    if isinstance(value, str):
        return _cut(value)
    if depth >= 4 and isinstance(value, dict | list | tuple):
        return _cut(str(value))
    if isinstance(value, dict):
        items = list(value.items())
        kept = {_cut(str(k), 64): bound(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            kept["..."] = f"{len(items) - MAX_ITEMS} more entries"
        return kept
    if isinstance(value, list | tuple):
        kept_items = [bound(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            kept_items.append(f"...{len(value) - MAX_ITEMS} more items")
        return kept_items
    return value


def _cut_traceback(text: str) -> str:
    if len(text) <= MAX_TRACEBACK_CHARS:
        return text
    tail = MAX_TRACEBACK_CHARS - _TRACEBACK_HEAD
    cut = len(text) - MAX_TRACEBACK_CHARS
    return f"{text[:_TRACEBACK_HEAD]}\n...[{cut} characters cut]...\n{text[-tail:]}"


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
            "event": _cut(str(getattr(record, "event", None) or record.getMessage())),
        }
        request_id = request_id_var.get()
        if request_id:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(bound(redact(fields)))
        if record.exc_info and record.exc_info[0] is not None:
            # Logs only: callers never see a traceback (the HTTP adapter answers with the request id).
            line["error_type"] = record.exc_info[0].__name__
            line["traceback"] = _cut_traceback(redact_text(self.formatException(record.exc_info)))
        text = json.dumps(line, default=lambda v: _cut(str(v)), separators=(",", ":"))
        if len(text) <= MAX_LINE_CHARS:
            return text
        core = {k: line[k] for k in ("ts", "level", "logger", "event", "request_id") if k in line}
        return json.dumps({**core, "truncated": True}, separators=(",", ":"))


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
