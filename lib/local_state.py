"""The local stack's state folder (``.aitradex/``, git-ignored): generated secrets and runtime facts.

Secrets are generated here on the first local run only, with owner-only permissions, and never
overwritten: regenerating the JWT secret or a master key would orphan tokens and encrypted keys.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lib.config import DEFAULT_STATE_DIR, SECRETS_FILE

STACK_FILE = "stack.json"


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically with mode 0600, so a crash never leaves half a secrets file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def _new_signing_key() -> str:
    """A fresh P-256 private key in PKCS#8 PEM: what GoTrue's asymmetric signing keys are (ES256)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode("ascii")


def ensure_local_secrets(state_dir: Path) -> list[str]:
    """Create any missing local secret; returns the names it generated (empty when all existed)."""
    path = state_dir / SECRETS_FILE
    current: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    generators = {
        "JWT_SECRET": lambda: secrets.token_urlsafe(48),
        "AITRADEX_MASTER_KEYS": lambda: "1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "AITRADEX_AUTHENTICATOR_PASSWORD": lambda: secrets.token_urlsafe(24),
        "POSTGRES_SUPERUSER_PASSWORD": lambda: secrets.token_urlsafe(24),
        # The local auth server signs user tokens with it (ES256); its public half is the local JWKS.
        "AUTH_JWT_SIGNING_KEY": _new_signing_key,
    }
    created = [name for name in generators if not current.get(name)]
    if created:
        for name in created:
            current[name] = generators[name]()
        _write_private(path, current)
    return created


def read_local_secret(state_dir: Path, name: str) -> str | None:
    """One value from the local secrets file, or None."""
    path = state_dir / SECRETS_FILE
    if not path.exists():
        return None
    value = json.loads(path.read_text()).get(name)
    return value if isinstance(value, str) and value else None


def write_local_secret(state_dir: Path, name: str, value: str) -> None:
    """Set one value in the local secrets file (used by key rotation to add a master key)."""
    path = state_dir / SECRETS_FILE
    current: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    current[name] = value
    _write_private(path, current)


def read_stack(state_dir: Path) -> dict[str, Any]:
    """Runtime facts of the local stack (ports, URLs), or {} when it was never brought up."""
    path = state_dir / STACK_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def update_stack(state_dir: Path, **facts: Any) -> dict[str, Any]:
    """Merge ``facts`` into the stack file and return the result."""
    current = read_stack(state_dir)
    current.update(facts)
    _write_private(state_dir / STACK_FILE, current)
    return current


def read_services(state_dir: Path, db_name: str) -> dict[str, Any]:
    """Facts about the processes serving database ``db_name`` (URLs, pid, code hash), or {}."""
    services = read_stack(state_dir).get("services", {})
    entry = services.get(db_name, {})
    return dict(entry) if isinstance(entry, dict) else {}


def recorded_paper_url(state_dir: Path, db_name: str) -> str | None:
    """The paper exchange the local stack runs for database ``db_name``, if it records one."""
    url = read_services(state_dir, db_name).get("paper_exchange_url")
    return str(url) if url else None


def write_services(state_dir: Path, db_name: str, facts: dict[str, Any] | None) -> None:
    """Record (or, with None, forget) the processes serving ``db_name``."""
    current = read_stack(state_dir)
    services = dict(current.get("services", {}))
    if facts is None:
        services.pop(db_name, None)
    else:
        services[db_name] = facts
    current["services"] = services
    _write_private(state_dir / STACK_FILE, current)


#: What a state folder holds (besides temporary files); ``aitradex clean-state`` deletes only a folder
#: that holds at least one of them, so a mistyped AITRADEX_STATE_DIR can never wipe anything else.
STATE_ENTRIES = (SECRETS_FILE, STACK_FILE, "pgdata", "logs", "paper-exchange")


def state_dir_from(env: Mapping[str, str]) -> Path:
    """The state folder ``env`` names (``AITRADEX_STATE_DIR``, default ``.aitradex/``), absolute.

    The same rule as :func:`lib.config.load_settings`, for the commands that must work without any
    secret: ``down``, ``db stop`` and ``clean-state``.
    """
    return Path(env.get("AITRADEX_STATE_DIR") or DEFAULT_STATE_DIR).resolve()


def db_name_from(env: Mapping[str, str]) -> str:
    """The database name ``env`` names (``AITRADEX_DB_NAME``, default ``aitradex``), as settings read it."""
    return env.get("AITRADEX_DB_NAME") or "aitradex"


def is_state_folder(path: Path) -> bool:
    """Whether ``path`` is a folder that holds something a local stack wrote."""
    return path.is_dir() and any((path / name).exists() for name in STATE_ENTRIES)


def all_services(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Every database's recorded processes in ``state_dir`` ({db_name: facts})."""
    services = read_stack(state_dir).get("services", {})
    if not isinstance(services, dict):
        return {}
    return {name: dict(facts) for name, facts in services.items() if isinstance(facts, dict)}
