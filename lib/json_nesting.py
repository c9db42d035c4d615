"""How deeply a JSON text nests, measured on the raw bytes before any parser recurses into it.

Python's ``json`` parser recurses once per nesting level, so ``b"[" * 100_000`` ends in a
``RecursionError``. The functions server and the paper exchange both refuse a body nested deeper than
their limit by measuring it here first. Brackets inside string literals (escapes included) do not count.
"""

from __future__ import annotations

import re

# A JSON string literal, escapes included (the unrolled form: linear time, no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")


def nesting_depth(raw: bytes, limit: int) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (0 for a scalar); counting stops just past
    ``limit``, so the answer is at most ``limit + 1`` however deep the text goes."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest
