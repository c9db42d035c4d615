"""``aitradex settings get|set|diff|export``: ``app_settings`` under version control (issue 13 item 5).

The live settings are in the database; their versioned backup is ``supabase/seed/app_settings.json``.
These commands read and change the live ones, compare them with the file, and write the file:

- every read and write runs as ``service_role`` through the application's own pool (``authenticator``),
  so the table's grants and its audit trigger apply as they do to any writer;
- ``set`` validates the key and the value first (:mod:`lib.ops.settings_rules`), then locks the row,
  writes, and commits in one transaction; the trigger records an ``audit_log`` row with the old and the
  new row, its user agent naming the command and the operator's login (:func:`operator_caller`);
- the file is written sorted by key, one setting per line (so a change is a one-line diff), with the
  descriptions, atomically.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.db.session import Caller, Database
from lib.errors import ConfigError, NotFound
from lib.ops.rebuild import load_seed
from lib.ops.settings_diff import SettingsDiff, compare, same_value
from lib.ops.settings_rules import validate
from lib.stores import settings as settings_store
from lib.stores.settings import StoredSetting

SETTINGS_AGENT = "aitradex-settings-set"

#: Read once, when the stack's scheduler starts (``stack_runner.attach_scheduler`` builds its jobs from
#: them); every other setting is read at each run. A change to these needs the stack restarted.
READ_AT_START = (settings_store.ENVIRONMENT, "scanner.timeframes", "scanner.algorithms")


@dataclass(frozen=True, slots=True)
class Change:
    """What ``set`` did: ``old`` is None when the key was absent; ``changed`` is False for the same value."""

    key: str
    old: Any
    new: Any
    changed: bool


def operator_caller(login: str | None = None) -> Caller:
    """``service_role``, with a user agent that names the command and the operator's login in the audit
    log (``aitradex-settings-set (operator alice)``).
    """
    if login is None:
        try:
            login = getpass.getuser()
        except (OSError, KeyError):
            login = "unknown"
    return Caller(
        role="service_role",
        claims={"role": "service_role"},
        headers={"user-agent": f"{SETTINGS_AGENT} (operator {login})"},
    )


async def live_settings(db: Database) -> list[StoredSetting]:
    """Every live setting, ordered by key."""
    async with db.read(Caller.service()) as conn:
        return await settings_store.all_settings(conn)


def values_of(rows: Iterable[StoredSetting]) -> dict[str, Any]:
    """``{key: value}``, ordered by key."""
    return {row.key: row.value for row in sorted(rows, key=lambda row: row.key)}


async def get_setting(db: Database, key: str | None) -> Any:
    """Every live value (``{key: value}``), or the value of ``key`` (NotFound when it is absent)."""
    values = values_of(await live_settings(db))
    if key is None:
        return values
    if key not in values:
        raise NotFound(f"no setting {key!r} in app_settings")
    return values[key]


async def set_setting(
    db: Database, key: str, value: Any, file_path: Path, *, caller: Caller | None = None
) -> Change:
    """Validate, then write ``key`` = ``value`` with its audit row; nothing is written on a refusal.

    The file at ``file_path`` says which keys exist and their JSON types, and gives a missing key its
    description. Raises InvalidRequest for an unknown key or an invalid value.
    """
    file_rows = {str(row["key"]): row for row in read_file(file_path)}
    validate(key, value, {k: row["value"] for k, row in file_rows.items()})
    async with db.write(caller or operator_caller()) as conn:
        current = await settings_store.lock_setting(conn, key)
        old = None if current is None else current.value
        if current is not None and same_value(old, value):
            return Change(key, old, value, changed=False)
        description = str(file_rows[key].get("description", ""))
        await settings_store.write_setting(conn, key, value, description)
    return Change(key, old, value, changed=True)


async def diff_with_file(db: Database, file_path: Path) -> SettingsDiff:
    """How the live settings differ from the file."""
    return compare(await live_settings(db), read_file(file_path))


def read_file(path: Path) -> list[dict[str, Any]]:
    """The rows of a settings file; ConfigError when it cannot be read or is not one."""
    try:
        rows = load_seed(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON") from None
    if not all(isinstance(row.get("key"), str) and "value" in row for row in rows):
        raise ConfigError(f"every entry of {path} needs a string key and a value")
    return rows


def file_text(rows: Iterable[StoredSetting]) -> str:
    """The versioned file's text: a JSON list sorted by key, one ``{key, value, description}`` a line."""
    lines = [
        json.dumps({"key": row.key, "value": row.value, "description": row.description}, ensure_ascii=False)
        for row in sorted(rows, key=lambda row: row.key)
    ]
    return "[\n" + ",\n".join(f"  {line}" for line in lines) + "\n]\n"


async def export_file(db: Database, path: Path) -> int:
    """Write the live settings to ``path`` (:func:`file_text`), atomically; returns how many."""
    rows = await live_settings(db)
    write_text_atomically(path, file_text(rows))
    return len(rows)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def needs_restart(change: Change) -> bool:
    """Whether the running stack only sees ``change`` after a restart (:data:`READ_AT_START`)."""
    return change.changed and change.key in READ_AT_START


def format_value(value: Any) -> str:
    """A value as the commands print it: JSON, keys sorted."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def change_line(change: Change) -> str:
    """``key: old -> new`` (or ``key: unchanged (value)``)."""
    if not change.changed:
        return f"{change.key}: unchanged ({format_value(change.new)})"
    old = "(absent)" if change.old is None else format_value(change.old)
    return f"{change.key}: {old} -> {format_value(change.new)}"


def as_json(value: Any) -> str:
    """The output of ``get``: indented JSON."""
    return json.dumps(value, indent=2, sort_keys=isinstance(value, Mapping), ensure_ascii=False)
