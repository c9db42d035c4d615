"""Reading a JSON request body safely: bounded nesting, checked before the parser sees it.

Python's ``json`` parser recurses once per nesting level, so ``'[' * 100000`` ends in a
``RecursionError`` (an HTTP 500) instead of a clean refusal. :func:`nesting_depth` measures the depth
with a flat scan (brackets inside strings do not count), and :func:`load_json_object` refuses a body
deeper than ``max_depth`` before parsing it. Bybit's bodies are flat objects: a depth of a few levels
is all any real request needs.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE = ord('"')
_BACKSLASH = ord("\\")


class BodyError(ValueError):
    """The body is not a JSON object this service accepts; the message says why, without echoing it."""


def nesting_depth(raw: bytes, *, stop_above: int | None = None) -> int:
    """The deepest bracket nesting in ``raw`` (0 for a scalar), ignoring brackets inside strings.

    With ``stop_above``, the scan stops as soon as the depth exceeds it (and returns that depth).
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        elif byte in _CLOSE:
            depth -= 1
    return deepest


def load_json_object(raw: bytes, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """``raw`` parsed as a JSON object (empty bytes: ``{}``), or :class:`BodyError`.

    Refused: nesting deeper than ``max_depth``, text that is not JSON (including invalid UTF-8 and
    integers longer than Python's digit limit), and any JSON value that is not an object.
    """
    if not raw:
        return {}
    # Fewer brackets than the limit cannot nest deeper than it: most bodies skip the scan.
    few = raw.count(b"[") + raw.count(b"{") <= max_depth
    if not few and nesting_depth(raw, stop_above=max_depth) > max_depth:
        raise BodyError(f"the body is nested deeper than {max_depth} levels")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BodyError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BodyError("the body must be a JSON object")
    return body
