"""``aitradex secrets export|import``, run as a user would, in state folders of the tests' own.

The passphrase comes from ``AITRADEX_BACKUP_PASSPHRASE``. Every run's output is checked for every secret
value and the passphrase: nothing secret may ever be printed.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from lib.config import REPO_ROOT, SECRETS_FILE, Settings, load_settings
from lib.crypto import API_KEY_FIELD, API_SECRET_FIELD, KeyVault, key_hint
from lib.db.session import Caller, Database
from lib.services.auth.users import create_local_user
from tests.integration.cli_helpers import assert_one_line_failure, clean_env, run_cli

PASSPHRASE = "a long enough test passphrase"
SECRETS = {
    "JWT_SECRET": "jwt-" + uuid.uuid4().hex + uuid.uuid4().hex,
    "AITRADEX_MASTER_KEYS": "1:" + base64.b64encode(os.urandom(32)).decode(),
    "AITRADEX_AUTHENTICATOR_PASSWORD": "auth-" + uuid.uuid4().hex,
    "POSTGRES_SUPERUSER_PASSWORD": "pg-" + uuid.uuid4().hex,
    "AUTH_SIGNING_KEY": "signing-" + uuid.uuid4().hex,  # any other name in the file travels too
}


def _state(path: Path, values: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if values is not None:
        (path / SECRETS_FILE).write_text(json.dumps(values))
        (path / SECRETS_FILE).chmod(0o600)
    return path


def _env(state_dir: Path, passphrase: str | None = PASSPHRASE) -> dict[str, str]:
    extra = {"AITRADEX_BACKUP_PASSPHRASE": passphrase} if passphrase is not None else {}
    return clean_env(state_dir, **extra)


def _secrets(
    env: dict[str, str], *args: str, values: dict[str, str] = SECRETS
) -> tuple[subprocess.CompletedProcess[str], float]:
    result, elapsed = run_cli(env, "secrets", *args)
    printed = result.stdout + result.stderr
    for value in [*values.values(), PASSPHRASE]:
        assert value not in printed, "a secret was printed"
    return result, elapsed


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_export_then_import_into_an_empty_state_folder_restores_every_secret(tmp_path: Path) -> None:
    source = _state(tmp_path / "old", SECRETS)
    backup = tmp_path / "secrets.backup"

    exported, _ = _secrets(_env(source), "export", "--out", str(backup))

    assert exported.returncode == 0, exported.stderr
    assert ", ".join(sorted(SECRETS)) in exported.stdout  # the names, never the values
    assert _mode(backup) == 0o600
    assert not any(value.encode() in backup.read_bytes() for value in SECRETS.values())

    target = _state(tmp_path / "new")  # the new machine: nothing there yet
    imported, _ = _secrets(_env(target), "import", "--in", str(backup))

    assert imported.returncode == 0, imported.stderr
    assert json.loads((target / SECRETS_FILE).read_text()) == SECRETS
    assert _mode(target / SECRETS_FILE) == 0o600
    assert f"added: {', '.join(sorted(SECRETS))}" in imported.stdout


def test_a_wrong_passphrase_fails_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    backup = tmp_path / "secrets.backup"
    assert (
        _secrets(_env(_state(tmp_path / "old", SECRETS)), "export", "--out", str(backup))[0].returncode == 0
    )
    target = _state(tmp_path / "new")

    result, elapsed = _secrets(_env(target, "not the passphrase at all"), "import", "--in", str(backup))

    line = assert_one_line_failure(result, elapsed)
    assert line == "error: the secrets backup did not decrypt: wrong passphrase, or the file was changed"
    assert not (target / SECRETS_FILE).exists()


def test_a_tampered_backup_fails_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    backup = tmp_path / "secrets.backup"
    assert (
        _secrets(_env(_state(tmp_path / "old", SECRETS)), "export", "--out", str(backup))[0].returncode == 0
    )
    envelope = json.loads(backup.read_text())
    envelope["created_at"] = "2020-01-01T00:00:00Z"
    backup.write_text(json.dumps(envelope))
    local = {"JWT_SECRET": SECRETS["JWT_SECRET"]}
    target = _state(tmp_path / "new", local)
    before = (target / SECRETS_FILE).read_bytes()

    result, elapsed = _secrets(_env(target), "import", "--in", str(backup))

    assert "wrong passphrase, or the file was changed" in assert_one_line_failure(result, elapsed)
    assert (target / SECRETS_FILE).read_bytes() == before


def test_export_refuses_to_replace_an_existing_file_without_force(tmp_path: Path) -> None:
    source = _state(tmp_path / "old", SECRETS)
    backup = tmp_path / "secrets.backup"
    backup.write_text("an older backup")

    refused, elapsed = _secrets(_env(source), "export", "--out", str(backup))

    assert "exists; --force replaces it" in assert_one_line_failure(refused, elapsed)
    assert backup.read_text() == "an older backup"

    forced, _ = _secrets(_env(source), "export", "--out", str(backup), "--force")

    assert forced.returncode == 0, forced.stderr
    assert json.loads(backup.read_text())["format"] == "aitradex-secrets-backup"
    assert _mode(backup) == 0o600


def test_import_refuses_to_replace_different_local_secrets_without_force_and_names_them(
    tmp_path: Path,
) -> None:
    backup = tmp_path / "secrets.backup"
    assert (
        _secrets(_env(_state(tmp_path / "old", SECRETS)), "export", "--out", str(backup))[0].returncode == 0
    )
    # A rebuild ran first on the new machine: its own JWT secret and passwords, one local-only name.
    local = {
        **SECRETS,
        "JWT_SECRET": "another-" + uuid.uuid4().hex * 2,
        "POSTGRES_SUPERUSER_PASSWORD": "another-" + uuid.uuid4().hex,
        "ANON_KEY": "local-only-" + uuid.uuid4().hex,
    }
    target = _state(tmp_path / "new", local)
    before = (target / SECRETS_FILE).read_bytes()

    refused, elapsed = _secrets(_env(target), "import", "--in", str(backup), values={**SECRETS, **local})

    line = assert_one_line_failure(refused, elapsed)
    assert "differ from the backup in JWT_SECRET, POSTGRES_SUPERUSER_PASSWORD; nothing was written" in line
    assert (target / SECRETS_FILE).read_bytes() == before

    forced, _ = _secrets(_env(target), "import", "--in", str(backup), "--force", values={**SECRETS, **local})

    assert forced.returncode == 0, forced.stderr
    assert json.loads((target / SECRETS_FILE).read_text()) == {**SECRETS, "ANON_KEY": local["ANON_KEY"]}
    assert "replaced: JWT_SECRET, POSTGRES_SUPERUSER_PASSWORD" in forced.stdout
    assert "kept (not in the backup): ANON_KEY" in forced.stdout


def test_importing_the_same_secrets_again_writes_nothing(tmp_path: Path) -> None:
    backup = tmp_path / "secrets.backup"
    source = _state(tmp_path / "old", SECRETS)
    assert _secrets(_env(source), "export", "--out", str(backup))[0].returncode == 0
    before = (source / SECRETS_FILE).stat().st_mtime_ns

    result, _ = _secrets(_env(source), "import", "--in", str(backup))

    assert result.returncode == 0, result.stderr
    assert "nothing written" in result.stdout
    assert (source / SECRETS_FILE).stat().st_mtime_ns == before


def test_a_short_passphrase_or_none_at_all_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    source = _state(tmp_path / "old", SECRETS)
    backup = tmp_path / "secrets.backup"

    short, elapsed = _secrets(_env(source, "short"), "export", "--out", str(backup))

    assert "at least 12 characters" in assert_one_line_failure(short, elapsed)
    assert not backup.exists()

    # No variable and no terminal (stdin is not one): refused, never a prompt nobody can answer.
    none = subprocess.run(
        [sys.executable, "-m", "lib.cli", "secrets", "export", "--out", str(backup)],
        env=_env(source, None),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=REPO_ROOT,
    )

    assert none.returncode == 1
    assert "set AITRADEX_BACKUP_PASSPHRASE or run the command in a terminal" in none.stderr
    assert not backup.exists()


def test_export_with_no_local_secrets_says_so(tmp_path: Path) -> None:
    result, elapsed = _secrets(_env(_state(tmp_path / "empty")), "export", "--out", str(tmp_path / "b"))

    assert "no local secrets" in assert_one_line_failure(result, elapsed)
    assert not (tmp_path / "b").exists()


async def test_the_stacks_secrets_survive_export_wipe_import_and_still_decrypt_a_stored_key(
    settings: Settings, db: Database, owner_conn: psycopg.Connection, tmp_path: Path
) -> None:
    user = create_local_user(
        owner_conn, f"user-{uuid.uuid4().hex[:12]}@test.local", settings.jwt_secret.reveal()
    )
    api_key = "stored-" + uuid.uuid4().hex
    vault = KeyVault(settings.master_keys)
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "insert into user_trading_accounts "
            "(user_id, environment, api_key_encrypted, api_secret_encrypted, key_version, key_hint) "
            "values (%s, 'paper', %s, %s, %s, %s)",
            (
                user.id,
                vault.encrypt(api_key, user_id=user.id, field=API_KEY_FIELD),
                vault.encrypt("unused", user_id=user.id, field=API_SECRET_FIELD),
                vault.current_version,
                key_hint(api_key),
            ),
        )
    stack_secrets = json.loads((settings.state_dir / SECRETS_FILE).read_text())
    backup = tmp_path / "stack.backup"
    # A copy of the stack's folder, so the wipe below never touches the session's own secrets.
    source = _state(tmp_path / "machine", stack_secrets)

    exported, _ = _secrets(_env(source), "export", "--out", str(backup), values=stack_secrets)
    assert exported.returncode == 0, exported.stderr
    (source / SECRETS_FILE).unlink()  # the disk is lost
    imported, _ = _secrets(_env(source), "import", "--in", str(backup), values=stack_secrets)

    assert imported.returncode == 0, imported.stderr
    restored = load_settings({"AITRADEX_STATE_DIR": str(source), "AITRADEX_DB_NAME": "aitradex_test"})
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "select api_key_encrypted from user_trading_accounts where user_id = %s", (user.id,)
            )
        ).fetchone()
    assert row is not None
    assert KeyVault(restored.master_keys).decrypt(
        row["api_key_encrypted"], user_id=user.id, field=API_KEY_FIELD
    ) == (api_key)
