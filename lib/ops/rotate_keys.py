"""Master key rotation: the engine behind ``aitradex keys rotate`` (DESIGN.md section 7).

A rotation has three steps, and this module provides the first two:

1. add a new master key version, keeping the old ones (they are still needed to decrypt rows not yet
   rotated). Locally, :func:`add_local_master_key` appends it to ``<state_dir>/secrets.json``; running
   servers need no restart: their vault reads the keys again on the first ciphertext of a version it
   does not hold (``lib.services.key_health.master_key_source``), and diagnostics' ``key_versions``
   says ``down`` while a stored version is configured nowhere. Where ``AITRADEX_MASTER_KEYS`` comes from
   the environment (any deployed system), the operator appends ``,<n+1>:<base64 key>`` to the variable
   (:func:`lib.crypto.generate_master_key` makes a key) and restarts every process before rotating: a
   running process's environment cannot change;
2. :func:`rotate_all` re-encrypts every ``user_trading_accounts`` row still on an older version;
3. once a run reports ``rotated == 0``, ``failed == []`` and ``remaining == 0``, the old versions
   can be removed from the configuration (by hand, for now).

:func:`rotate_all` works in batches, each its own transaction as ``service_role`` that claims its rows
with ``FOR UPDATE SKIP LOCKED``. So it is safe beside live writers and beside another rotation (neither
waits for the other, and no row is rotated twice), and resumable: a crash loses at most the current
batch's uncommitted work, and because each row's two ciphertexts and ``key_version`` change in one
UPDATE, every row is always wholly on its old version or wholly on the new one. Running it again simply
picks up the rows still on an old version.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lib.config import parse_master_keys
from lib.crypto import (
    API_KEY_FIELD,
    API_SECRET_FIELD,
    KeyVault,
    format_master_keys,
    generate_master_key,
)
from lib.db.session import Caller, Database
from lib.errors import ConfigError, DecryptionError
from lib.local_state import read_local_secret, write_local_secret
from lib.stores import account_keys

MASTER_KEYS_VAR = "AITRADEX_MASTER_KEYS"

# The audit trigger records the caller's user agent: this names the rotation in audit_log.
ROTATION_CALLER = Caller(
    role="service_role", claims={"role": "service_role"}, headers={"user-agent": "aitradex-keys-rotate"}
)


@dataclass
class RotationReport:
    """What a rotation run did.

    ``rotated``: rows re-encrypted under the newest version by this run. ``already_current``: rows that
    were on the newest version when the run started. ``failed``: ids of accounts whose ciphertexts did
    not decrypt (corrupted, or encrypted with a key no longer configured); they are left untouched and
    never stop the others. ``remaining``: rows still on an older version at the end that are not in
    ``failed``: locked by a concurrent writer, or written with an old key during the run; run again.
    """

    rotated: int = 0
    already_current: int = 0
    failed: list[str] = field(default_factory=list)
    remaining: int = 0


def add_local_master_key(state_dir: Path, *, env: Mapping[str, str] | None = None) -> int:
    """Append a new master key version to the local secrets file; returns the new version.

    The existing versions are kept: rows encrypted with them must stay readable until
    :func:`rotate_all` has finished. Refuses (ConfigError) when ``AITRADEX_MASTER_KEYS`` is set in
    ``env`` (default: ``os.environ``), because the environment takes precedence over the file and the
    new key would silently never be used; the operator then adds the version to the variable instead.
    Also refuses when the file has no master keys yet (a rebuild generates version 1).
    """
    env = os.environ if env is None else env
    if env.get(MASTER_KEYS_VAR):
        raise ConfigError(
            f"{MASTER_KEYS_VAR} is set in the environment, which takes precedence over the local secrets "
            "file: append the new version to the environment variable instead"
        )
    current = read_local_secret(state_dir, MASTER_KEYS_VAR)
    if current is None:
        raise ConfigError(f"no {MASTER_KEYS_VAR} in {state_dir}; run the rebuild first to generate version 1")
    keys = parse_master_keys(current)
    new_version = max(keys) + 1
    keys[new_version] = base64.b64decode(generate_master_key())
    write_local_secret(state_dir, MASTER_KEYS_VAR, format_master_keys(keys))
    return new_version


async def rotate_all(
    db: Database,
    vault: KeyVault,
    *,
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
    user_ids: Collection[str] | None = None,
) -> RotationReport:
    """Re-encrypt every trading account on an older key version under ``vault.current_version``.

    ``progress(done, total)`` is called after each committed batch; ``total`` is the number of rows to
    rotate counted at the start (it grows if rows on old versions appear meanwhile), ``done`` counts
    rotated and failed rows. ``user_ids`` limits the run to those users' accounts (None: every account).

    Raises ConfigError, before changing anything, if some row uses a version newer than the vault's
    newest: this process's ``AITRADEX_MASTER_KEYS`` is then stale (another process already writes with
    a newer key), and the operator should rotate with the complete key list instead.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    current = vault.current_version
    counts = await account_keys.key_version_counts(db, ROTATION_CALLER, current=current, user_ids=user_ids)
    if counts.newest is not None and counts.newest > current:
        raise ConfigError(
            f"some accounts use master key version {counts.newest}, newer than the newest configured "
            f"({current}): update {MASTER_KEYS_VAR} before rotating"
        )

    report = RotationReport(already_current=counts.up_to_date)
    total = counts.pending
    while True:
        async with db.write(ROTATION_CALLER) as conn:
            # Rows that failed are skipped, or the loop would fetch them forever.
            rows = await account_keys.lock_behind(
                conn, current=current, skip=report.failed, user_ids=user_ids, limit=batch_size
            )
            if not rows:
                break
            ids: list[str] = []
            keys: list[str] = []
            secrets_: list[str] = []
            for row in rows:
                try:
                    api_key = vault.decrypt(row.api_key_encrypted, user_id=row.user_id, field=API_KEY_FIELD)
                    api_secret = vault.decrypt(
                        row.api_secret_encrypted, user_id=row.user_id, field=API_SECRET_FIELD
                    )
                except DecryptionError:
                    # The row keeps its old ciphertexts (both, so it stays consistent) and is reported.
                    report.failed.append(str(row.id))
                    continue
                ids.append(str(row.id))
                keys.append(vault.encrypt(api_key, user_id=row.user_id, field=API_KEY_FIELD))
                secrets_.append(vault.encrypt(api_secret, user_id=row.user_id, field=API_SECRET_FIELD))
            if ids:
                await account_keys.replace_keys(conn, version=current, ids=ids, keys=keys, secrets=secrets_)
        # Counted only once the batch has committed.
        report.rotated += len(ids)
        if progress is not None:
            done = report.rotated + len(report.failed)
            progress(done, max(total, done))

    report.remaining = await account_keys.count_behind(
        db, ROTATION_CALLER, current=current, skip=report.failed, user_ids=user_ids
    )
    return report
