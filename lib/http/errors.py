"""The one place that turns a request that does not fit its function into sentences a person reads.

pydantic's messages are written for programmers and some repeat the input ("Input tag 'x' found
using 'action' does not match..."). Callers get instead one sentence per problem that names the field
and says what is allowed, built here from the error's type and its limits only. The submitted value
is never used, so it cannot come back (it could be a key). An unknown field's name is repeated only
when it is a plain identifier of at most 64 characters (``levrage``: a typo worth pointing at);
any other key shows as ``?``. Either way the answer lists the fields the action takes.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from lib.errors import InvalidRequest
from lib.http.spec import FunctionSpec

# Enough to fix a request; a body with 5,000 unknown fields does not get 5,000 sentences back.
MAX_ERRORS = 10
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_BODY_SHAPE = frozenset({"union_tag_invalid", "union_tag_not_found", "model_type", "dict_type"})
_DATETIME = "must be a date-time in ISO 8601 with a time zone, for example 2026-01-31T12:00:00Z"
_PHRASES: dict[str, str] = {
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_parsing_size": "must be an integer of a sensible size",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "decimal_type": "must be a decimal number",
    "decimal_parsing": "must be a decimal number",
    "decimal_max_digits": "may have at most {max_digits} digits",
    "decimal_max_places": "may have at most {decimal_places} decimal places",
    "decimal_whole_digits": "may have at most {whole_digits} digits before the decimal point",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "string_unicode": "must be valid text",
    "string_too_short": "must be at least {min_length} character(s) long",
    "string_too_long": "must be at most {max_length} character(s) long",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "literal_error": "must be one of: {expected}",
    "enum": "must be one of: {expected}",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "timezone_aware": "must include a time zone, for example 2026-01-31T12:00:00Z",
    "uuid_type": "must be a UUID",
    "uuid_parsing": "must be a UUID",
    "uuid_version": "must be a UUID",
}


def body_shape(spec: FunctionSpec) -> str:
    """What every body of ``spec`` must look like, in one sentence."""
    sentence = f"body must be a JSON object with an 'action' field, one of: {', '.join(spec.actions)}"
    if spec.default_action:
        sentence += f" (without it: {spec.default_action})"
    return sentence


def _name(part: str | int, fields: frozenset[str]) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return part if part in fields or _PLAIN_NAME.fullmatch(part) else "?"


def _fields(spec: FunctionSpec) -> frozenset[str]:
    return frozenset(name for model in spec.models.values() for name in model.model_fields)


def _phrase(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        # Our own validators' sentences (they name the rule, never the value).
        return str(ctx["error"])
    if kind in ("too_short", "too_long"):
        count = ctx.get("min_length" if kind == "too_short" else "max_length")
        bound = "at least" if kind == "too_short" else "at most"
        if ctx.get("field_type") in ("List", "Tuple", "Set"):
            return f"must have {bound} {count} item{'' if count == 1 else 's'}"
        return f"must be {bound} {count} character(s) long"
    if kind.startswith(("datetime_", "date_", "time_")):
        return _DATETIME
    template = _PHRASES.get(kind)
    if template is None:
        return "is not valid"
    try:
        return template.format(**{k: str(v) for k, v in ctx.items()})
    except (KeyError, IndexError):
        return template.split(" {")[0]


def _describe(err: ErrorDetails, spec: FunctionSpec, action: str | None) -> dict[str, Any]:
    loc: list[str | int] = list(err["loc"])
    if spec.tagged and loc and loc[0] in spec.models:
        action = str(loc.pop(0))  # the union's tag: which action's model refused
    if not loc and err["type"] in _BODY_SHAPE:
        return {"field": None, "loc": [], "msg": body_shape(spec), "type": "invalid_action"}
    if loc == ["action"] and err["type"] == "literal_error":
        return {"field": "action", "loc": ["action"], "msg": body_shape(spec), "type": "invalid_action"}
    names = [_name(part, _fields(spec)) for part in loc]
    field = next((n for n in names if not n.startswith("[") and n != "?"), None)
    if err["type"] == "extra_forbidden":
        model = spec.models.get(action or "")
        where = f"'{action}'" if action and spec.tagged else "this request"
        allowed = ", ".join(model.model_fields) if model is not None else ", ".join(sorted(_fields(spec)))
        unknown = f"'{names[-1]}' is not a field" if names and names[-1] != "?" else "unknown field"
        return {
            "field": names[-1] if names and names[-1] != "?" else None,
            "loc": names,
            "msg": f"{unknown}: {where} takes only {allowed}",
            "type": err["type"],
        }
    if not loc:
        msg = _phrase(err)
        if err["type"] not in ("value_error", "assertion_error"):
            msg = f"the request {msg}"
    else:
        msg = f"'{''.join(n if n.startswith('[') else '.' + n for n in names).lstrip('.')}' {_phrase(err)}"
    return {"field": field, "loc": names, "msg": msg, "type": err["type"]}


def invalid_request(exc: ValidationError, spec: FunctionSpec, action: str | None) -> InvalidRequest:
    """The 422 for a body ``spec``'s models refused: one sentence per problem, the first as message.

    ``action``: the body's action if it is one of ``spec``'s (None otherwise), for naming the model.
    """
    distinct: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    for err in exc.errors(include_url=False, include_input=False, include_context=True):
        described = _describe(err, spec, action)
        key = (*map(str, described["loc"]), described["msg"])
        if key not in seen:  # 5,000 unknown fields are one problem, said once
            seen.add(key)
            distinct.append(described)
    message = distinct[0]["msg"] if distinct else "the request does not match the schema"
    details: dict[str, Any] = {"errors": distinct[:MAX_ERRORS]}
    if len(distinct) > MAX_ERRORS:
        details["more"] = len(distinct) - MAX_ERRORS
    if len(distinct) > 1:
        message += f" (and {len(distinct) - 1} more, see details)"
    return InvalidRequest(message, details=details)
