"""Reading a JSON request body safely: bounded nesting, checked before the parser sees it.

Python's ``json`` parser recurses once per nesting level, so ``'[' * 100000`` ends in a
``RecursionError`` (an HTTP 500) instead of a clean refusal. :func:`load_json_object` measures the
depth first (:func:`lib.json_nesting.nesting_depth`, brackets inside strings do not count) and refuses
a body deeper than ``max_depth`` before parsing it. Bybit's bodies are flat objects: a depth of a few
levels is all any real request needs.
"""

from __future__ import annotations

import json
from typing import Any

from lib.json_nesting import nesting_depth

MAX_DEPTH = 32


class BodyError(ValueError):
    """The body is not a JSON object this service accepts; the message says why, without echoing it."""


def load_json_object(raw: bytes, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """``raw`` parsed as a JSON object (empty bytes: ``{}``), or :class:`BodyError`.

    Refused: nesting deeper than ``max_depth``, text that is not JSON (including invalid UTF-8 and
    integers longer than Python's digit limit), and any JSON value that is not an object.
    """
    if not raw:
        return {}
    # Fewer brackets than the limit cannot nest deeper than it: most bodies skip the scan.
    few = raw.count(b"[") + raw.count(b"{") <= max_depth
    if not few and nesting_depth(raw, max_depth) > max_depth:
        raise BodyError(f"the body is nested deeper than {max_depth} levels")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BodyError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BodyError("the body must be a JSON object")
    return body
