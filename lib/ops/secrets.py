"""``aitradex secrets export|import``: the local secrets backed up encrypted, and put back (issue 13 item 3).

The local secrets file (``<state_dir>/secrets.json``: the JWT secret, the master keys, the database
passwords, and whatever else a component keeps there) is what makes a database backup usable: without
the master keys every stored API key is unreadable, and without the passwords the restored database
cannot be logged into. The database backup never contains them, so they are exported on their own,
sealed with a passphrase (:mod:`lib.secrets_backup`).

Rules kept here:

- the passphrase comes from ``AITRADEX_BACKUP_PASSPHRASE`` or the terminal (asked twice on export),
  never from a command-line argument (which ``ps`` would show); a too-short one is refused;
- every file is written to a temporary file with mode 0600 and moved into place, so a crash never
  leaves half a file and no other user can ever read one; an export never replaces an existing file
  without ``force``;
- an import that fails (wrong passphrase, changed file) writes nothing, and one that would replace a
  different local value writes nothing without ``force`` and names the secrets that differ;
- only names are ever reported, never a value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lib.config import SECRETS_FILE
from lib.errors import ConfigError
from lib.secrets_backup import check_passphrase, open_sealed, seal

PASSPHRASE_VAR = "AITRADEX_BACKUP_PASSPHRASE"  # noqa: S105 (the variable's name, not a passphrase)

#: ``ask(prompt)``: reads a line from the terminal without echoing it (``getpass.getpass``).
Ask = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What an export wrote: the names it holds (never values), and names the environment overrides."""

    path: Path
    names: list[str]
    overridden: list[str]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did, by name: added, replaced (only with ``force``), already equal, kept local-only."""

    path: Path
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced)


def passphrase(env: Mapping[str, str], ask: Ask | None, *, confirm: bool) -> str:
    """The backup passphrase: ``AITRADEX_BACKUP_PASSPHRASE``, else asked on the terminal (twice when
    ``confirm``). ``ask`` is None when there is no terminal. Raises ConfigError when there is neither,
    when the two answers differ, or when the passphrase is too short.
    """
    value = env.get(PASSPHRASE_VAR)
    if value:
        check_passphrase(value)
        return value
    if ask is None:
        raise ConfigError(f"no passphrase: set {PASSPHRASE_VAR} or run the command in a terminal")
    value = ask("Backup passphrase: ")
    check_passphrase(value)
    if confirm and ask("The same passphrase again: ") != value:
        raise ConfigError("the two passphrases differ; nothing was written")
    return value


def read_local(state_dir: Path) -> dict[str, str]:
    """Every name and value of the local secrets file ({} when there is none)."""
    path = state_dir / SECRETS_FILE
    if not path.exists():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON") from None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise ConfigError(f"{path} must be a JSON object of strings")
    return values


def export_secrets(
    state_dir: Path, out: Path, secret: str, *, env: Mapping[str, str], force: bool = False
) -> ExportReport:
    """Seal every local secret under ``secret`` (the passphrase) into ``out``.

    Raises ConfigError, writing nothing, when there are no local secrets or ``out`` exists and not
    ``force``. ``overridden`` names the secrets the environment sets too: the file's value is what was
    exported, and the environment's must be kept where it comes from.
    """
    values = read_local(state_dir)
    if not values:
        raise ConfigError(
            f"no local secrets in {state_dir / SECRETS_FILE}: nothing to export "
            "(secrets given in the environment are backed up where they are kept)"
        )
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; --force replaces it")
    _write_private(out, seal(values, secret), replace=force)
    names = sorted(values)
    return ExportReport(out, names, [name for name in names if env.get(name)])


def import_secrets(state_dir: Path, source: Path, secret: str, *, force: bool = False) -> ImportReport:
    """Open ``source`` with ``secret`` and write its secrets into the local secrets file.

    Nothing is written when the file does not open (DecryptionError: wrong passphrase, changed file),
    nor, without ``force``, when a local secret of the same name holds another value (ConfigError naming
    them). Local secrets the backup does not hold are kept.
    """
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source} does not exist") from None
    restored = open_sealed(data, secret)
    current = read_local(state_dir)
    differ = sorted(name for name in restored if name in current and current[name] != restored[name])
    if differ and not force:
        raise ConfigError(
            f"the local secrets differ from the backup in {', '.join(differ)}; nothing was written "
            "(--force replaces them: tokens and keys made with the local values stop working)"
        )
    report = ImportReport(
        path=state_dir / SECRETS_FILE,
        added=sorted(set(restored) - set(current)),
        replaced=differ,
        unchanged=sorted(name for name in restored if current.get(name) == restored[name]),
        kept=sorted(set(current) - set(restored)),
    )
    if report.changed:
        state_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps({**current, **restored}, indent=2, sort_keys=True) + "\n"
        _write_private(report.path, text.encode("utf-8"), replace=True)
    return report


def _write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically; without ``replace``, never over a file.

    The bytes go to a temporary file beside ``path`` (same file system), are flushed to disk, and the
    file is then renamed (``replace``) or hard-linked (otherwise: the link fails if ``path`` appeared
    meanwhile, so a file someone else created is never overwritten) into place.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ConfigError(f"{path} exists; --force replaces it") from None
            except OSError as exc:
                raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
