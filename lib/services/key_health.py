"""Master keys at run time: where a running process reads them again, and whether the stored keys can
all be decrypted (the ``key_versions`` health check).

``aitradex keys rotate`` adds a version to the configuration and re-encrypts the stored keys under it
while the servers keep running. A vault wired with :func:`master_key_source` reads the keys again on the
first ciphertext of a version it does not hold (``lib.crypto.KeyVault.decrypt``), so the servers keep
decrypting without a restart. :func:`check_key_versions` says ``down`` when some stored key uses a
version that, even after such a reload, is not configured: every trade, sync and balance check of
those accounts would fail, whatever the rest of the stack says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from lib.config import load_settings
from lib.crypto import KeySource, KeyVault
from lib.db.session import Database
from lib.services.diagnostics import CheckResult
from lib.stores import account_keys

STATE_DIR_VAR = "AITRADEX_STATE_DIR"


def master_key_source(state_dir: Path | None = None, env: Mapping[str, str] | None = None) -> KeySource:
    """A reader of the master keys as configured now, by :func:`lib.config.load_settings` itself: the
    environment's ``AITRADEX_MASTER_KEYS``, else ``<state_dir>/secrets.json``.

    ``env`` is read when called (default: ``os.environ`` at that moment); ``state_dir`` pins the state
    folder the process was started with (default: the one ``env`` names).
    """

    def read() -> Mapping[int, bytes]:
        current = dict(os.environ if env is None else env)
        if state_dir is not None:
            current[STATE_DIR_VAR] = str(state_dir)
        return load_settings(current).master_keys

    return read


async def check_key_versions(db: Database, vault: KeyVault | None = None) -> CheckResult:
    """``down`` when some stored API key uses a master key version ``vault`` does not hold, even after
    reading the keys again; ``healthy`` otherwise (with how many keys still wait for a rotation).

    ``vault`` is the process's own (it then learns of a rotation here, as a decryption would make it);
    without one, the keys are read from where the settings come from (:func:`master_key_source`).
    """
    vault = vault or KeyVault(master_key_source()())
    counts = await account_keys.accounts_by_version(db)
    missing = sorted(v for v in counts if v not in vault.versions)
    if missing:
        vault.reload(wanted=missing[-1])
        missing = [v for v in missing if v not in vault.versions]
    details: dict[str, object] = {
        "accounts_by_version": {str(v): n for v, n in sorted(counts.items())},
        "configured": sorted(vault.versions),
        "current": vault.current_version,
    }
    if missing:
        n = sum(counts[v] for v in missing)
        versions = ", ".join(str(v) for v in missing)
        return CheckResult(
            "key_versions",
            "down",
            0,
            f"{n} stored API key(s) use master key version(s) {versions}, which this server does not hold "
            "(AITRADEX_MASTER_KEYS): they cannot be decrypted, so those accounts cannot trade",
            details={**details, "missing": missing},
        )
    behind = sum(n for v, n in counts.items() if v < vault.current_version)
    message = "every stored API key's master key version is configured"
    if behind:
        message += f"; {behind} still on an older version (`aitradex keys rotate` re-encrypts them)"
    return CheckResult("key_versions", "healthy", 0, message, details={**details, "behind": behind})
