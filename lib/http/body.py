"""Reading a request's JSON within bounds: size, nesting depth, number length, and clean strings.

Python's ``json`` module recurses once per nesting level and turns every integer literal into an
``int``, so a body of ``[`` repeated 100,000 times raises ``RecursionError`` and a 5,000-digit number
raises ``ValueError`` (the interpreter's digit limit): both would be a 500. Here, every such body is a
:class:`MalformedBody` (400) before anything else sees it:

- nesting is measured on the raw bytes (string contents skipped) and refused beyond ``MAX_DEPTH``;
- a number literal longer than ``MAX_NUMBER_CHARS`` is refused, and so are ``NaN`` and ``Infinity``
  (not JSON) and floats that overflow to infinity;
- a string (key or value) holding a NUL character or an unpaired surrogate is refused: neither can be
  stored in PostgreSQL text or encoded as UTF-8, so they would fail deeper down as a 500.

No message repeats what was sent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request

from lib.errors import MalformedBody, PayloadTooLarge
from lib.json_nesting import nesting_depth

MAX_BODY_BYTES = 256 * 1024
# No request model nests deeper than 4; 64 leaves room for any reasonable client and no more.
MAX_DEPTH = 64
# The longest number a request model accepts has 30 digits; 100 characters covers any spelling of it.
MAX_NUMBER_CHARS = 100

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedBody(f"a number in the body is longer than {MAX_NUMBER_CHARS} characters")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedBody(f"a number in the body is longer than {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise MalformedBody("a number in the body is too large")
    return value


def _constant(_name: str) -> Any:
    raise MalformedBody("NaN and Infinity are not JSON numbers")


def _strings(value: Any) -> Iterable[str]:
    """Every key and string value in a parsed body (depth already bounded, so recursion is safe)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def check_strings(values: Iterable[str]) -> None:
    """Raise MalformedBody if any string holds a NUL character or an unpaired surrogate."""
    if any(_UNSTORABLE.search(text) for text in values):
        raise MalformedBody("text in the request may not contain NUL characters or unpaired surrogates")


def parse_json(raw: bytes) -> Any:
    """The JSON value in ``raw`` (``None`` for an empty body), or MalformedBody if it breaks a bound."""
    if not raw.strip():
        return None
    if nesting_depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise MalformedBody(f"the body is nested more than {MAX_DEPTH} levels deep")
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedBody("request body is not valid JSON") from None
    except RecursionError:  # unreachable with the depth bound; kept so no body can ever be a 500
        raise MalformedBody(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    check_strings(_strings(value))
    return value


async def read_body(request: Request, shape: str) -> dict[str, Any]:
    """The JSON object sent (query parameters for GET and HEAD), within every bound above.

    ``shape``: the sentence a body that is not a JSON object is refused with (it names the actions).
    Raises PayloadTooLarge past ``MAX_BODY_BYTES``, MalformedBody for anything else wrong, and lets
    starlette's ClientDisconnect through when the client leaves before its body arrived.
    """
    if request.method in ("GET", "HEAD"):
        params = dict(request.query_params)
        check_strings([*params, *params.values()])
        return params
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise MalformedBody(shape)
    return body
