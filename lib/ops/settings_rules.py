"""Which ``app_settings`` keys ``aitradex settings set`` accepts, and what makes a value valid.

Every key of the versioned file is settable, and nothing else. A value must:

1. keep the JSON type of the file's value: boolean, number, string, array or object
   (``live_trading_enabled`` stays a boolean; ``80`` and ``72.5`` are both numbers);
2. pass the reader that uses it, so the range lives in one place: the scanner's keys and the
   exchange's through ``ScanSettings`` (lib/services/scanning/settings.py), the instruments cache's
   against the bounds of its reader in lib/stores/settings.py. A number the scanner would read as
   another (``300.5`` for ``scanner.kline_limit``, an integer there) is refused rather than stored.

``executor.batch_size`` is seeded but read by no code yet (the executor takes its batch size per
request, 1..500); until a reader owns it, this module does. ``executor.orders_per_second_per_account``
is read by the order-create budget (lib/services/execution/budget.py), and checked against its bounds.

Operator state (``trading_halted``) is refused here: it carries a reason, who and when, and has its
own audited command, ``aitradex trading halt|resume``.

Pure: both the file's rows and the value are passed in. A refusal is InvalidRequest, one sentence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from lib.errors import ConfigError, InvalidRequest
from lib.services.execution.budget import MAX_PER_SECOND
from lib.services.execution.budget import SETTING as CREATES_PER_SECOND
from lib.services.scanning.settings import SETTING_KEYS, ScanSettings
from lib.stores import settings as settings_store

Check = Callable[[str, Any], None]


def _scanner(key: str, value: Any) -> None:
    try:
        parsed = ScanSettings.from_values({key: value})
    except ConfigError as exc:
        raise InvalidRequest(exc.message) from None
    # Each key's field is named after its last part (scanner.kline_limit -> kline_limit).
    read = getattr(parsed, key.split(".", 1)[1], value)
    if isinstance(value, int | float) and read != value:
        raise InvalidRequest(f"{key} would be read as {read!r}: give that value")


def _kind_only(key: str, value: Any) -> None:
    """The type check (rule 1) is all there is: any boolean is a valid ``live_trading_enabled``."""


def _operator_state(key: str, value: Any) -> None:
    raise InvalidRequest(
        f"{key} is operator state: use `aitradex trading halt --reason TEXT` or `aitradex trading resume`"
    )


def _instruments_ttl(key: str, value: Any) -> None:
    if not 1 <= value <= settings_store.MAX_INSTRUMENTS_CACHE_TTL_S:
        raise InvalidRequest(f"{key} must be 1..{settings_store.MAX_INSTRUMENTS_CACHE_TTL_S} seconds")


def _at_most(bound: int) -> Check:
    def check(key: str, value: Any) -> None:
        if not isinstance(value, int) or not 1 <= value <= bound:
            raise InvalidRequest(f"{key} must be an integer, 1..{bound}")

    return check


CHECKS: Mapping[str, Check] = {
    **dict.fromkeys(SETTING_KEYS, _scanner),
    settings_store.LIVE_TRADING_ENABLED: _kind_only,
    **dict.fromkeys(settings_store.OPERATOR_STATE_KEYS, _operator_state),
    settings_store.INSTRUMENTS_CACHE_TTL: _instruments_ttl,
    CREATES_PER_SECOND: _at_most(MAX_PER_SECOND),
    "executor.batch_size": _at_most(500),
}


def parse_value(text: str) -> Any:
    """A command-line VALUE: JSON when it parses as JSON (``80``, ``true``, ``["5", "15"]``), otherwise
    the text itself as a string, so ``testnet`` needs no quotes. ``NaN`` and ``Infinity`` are not JSON.
    """

    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError:
        return text


def validate(key: str, value: Any, file_values: Mapping[str, Any]) -> None:
    """Raise InvalidRequest unless ``key`` is settable and ``value`` valid for it (module docstring)."""
    check = CHECKS.get(key)
    if check is None or key not in file_values:
        raise InvalidRequest(
            f"unknown setting {key!r}; settable: {', '.join(sorted(set(CHECKS) & set(file_values)))}"
        )
    expected, got = _kind(file_values[key]), _kind(value)
    if expected != got:
        raise InvalidRequest(f"{key} must be a JSON {expected}, got {got} {_short(value)}")
    if got == "number" and not math.isfinite(value):
        raise InvalidRequest(f"{key} must be a finite number")
    check(key, value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
