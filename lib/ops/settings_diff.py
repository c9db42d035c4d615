"""Live ``app_settings`` against the versioned file ``supabase/seed/app_settings.json``: what differs.

Pure: both sides are passed in. Values are compared as JSON values: ``80`` and ``80.0`` are the same
number (PostgreSQL's ``jsonb`` says so too), but ``false`` is not ``0`` and ``"80"`` is not ``80``.
Descriptions are documentation, kept in the file; only values count as a difference. Operator state
(``trading_halted``: :data:`lib.stores.settings.OPERATOR_STATE_KEYS`) is not configuration: a halted
system is not drift, so those keys are left out of the comparison.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lib.stores.settings import OPERATOR_STATE_KEYS, StoredSetting


@dataclass(frozen=True, slots=True)
class SettingsDiff:
    """``added``: keys live has and the file lacks; ``removed``: the file's keys live lacks; ``changed``:
    ``{key: (file value, live value)}``.
    """

    added: dict[str, Any] = field(default_factory=dict)
    removed: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        """One line per difference, by key: ``+`` live only, ``-`` file only, ``~`` file -> live."""
        out = [(key, f"+ {key}: {_text(value)} (live only)") for key, value in self.added.items()]
        out += [(key, f"- {key}: {_text(value)} (file only)") for key, value in self.removed.items()]
        out += [
            (key, f"~ {key}: file {_text(old)} -> live {_text(new)}")
            for key, (old, new) in self.changed.items()
        ]
        return [line for _, line in sorted(out)]


def compare(live: Iterable[StoredSetting], file_rows: Iterable[Mapping[str, Any]]) -> SettingsDiff:
    """How the live settings differ from the file's rows (``{"key", "value", "description"}``)."""
    live_values = {row.key: row.value for row in live if row.key not in OPERATOR_STATE_KEYS}
    file_values = {
        str(row["key"]): row["value"] for row in file_rows if row["key"] not in OPERATOR_STATE_KEYS
    }
    return SettingsDiff(
        added={k: v for k, v in sorted(live_values.items()) if k not in file_values},
        removed={k: v for k, v in sorted(file_values.items()) if k not in live_values},
        changed={
            k: (file_values[k], v)
            for k, v in sorted(live_values.items())
            if k in file_values and not same_value(file_values[k], v)
        },
    )


def same_value(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, booleans apart from numbers, containers element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
