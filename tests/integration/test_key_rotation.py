"""Master key rotation on a real PostgreSQL, as service_role: batches, failures, crashes, concurrent locks.

Every run is scoped to the users a test created (``user_ids=``), because the test database is shared
with other tests whose accounts hold placeholder ciphertexts. Those users are deleted after each test
(``make_user`` below): their keys are under throwaway master key versions that the stack does not hold,
so diagnostics would rightly report them (``key_versions`` says ``down``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lib.config import SECRETS_FILE, Settings, parse_master_keys
from lib.crypto import API_KEY_FIELD, API_SECRET_FIELD, KeyVault, key_hint, version_of
from lib.db.session import Caller, Database
from lib.errors import ConfigError
from lib.local_state import read_local_secret
from lib.ops.rotate_keys import add_local_master_key, rotate_all
from lib.services.auth.users import LocalUser, create_local_user

KEY_1 = os.urandom(32)
KEY_2 = os.urandom(32)
KEY_3 = os.urandom(32)
V1 = KeyVault({1: KEY_1})
V1_V2 = KeyVault({1: KEY_1, 2: KEY_2})
V2_ONLY = KeyVault({2: KEY_2})


@pytest.fixture
def make_user(owner_conn: psycopg.Connection, settings: Settings) -> Iterator[Callable[[], LocalUser]]:
    """Fresh local users, as the session's factory makes them, deleted again after the test."""
    made: list[str] = []

    def factory() -> LocalUser:
        user = create_local_user(
            owner_conn, f"user-{uuid.uuid4().hex[:12]}@test.local", settings.jwt_secret.reveal()
        )
        made.append(user.id)
        return user

    yield factory
    if made:
        with owner_conn.transaction():
            owner_conn.execute("delete from auth.users where id = any(%s::uuid[])", (made,))


async def _insert_account(db: Database, vault: KeyVault, user_id: str, api_key: str, api_secret: str) -> str:
    async with db.write(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "insert into user_trading_accounts "
                "(user_id, environment, api_key_encrypted, api_secret_encrypted, key_version, key_hint) "
                "values (%s, 'paper', %s, %s, %s, %s) returning id::text as id",
                (
                    user_id,
                    vault.encrypt(api_key, user_id=user_id, field=API_KEY_FIELD),
                    vault.encrypt(api_secret, user_id=user_id, field=API_SECRET_FIELD),
                    vault.current_version,
                    key_hint(api_key),
                ),
            )
        ).fetchone()
    assert row is not None
    return str(row["id"])


async def _accounts(db: Database, ids: list[str]) -> dict[str, dict[str, Any]]:
    async with db.read(Caller.service()) as conn:
        rows = await (
            await conn.execute(
                "select id::text as id, user_id::text as user_id, api_key_encrypted, api_secret_encrypted, "
                "key_version from user_trading_accounts where id = any(%s::uuid[])",
                (ids,),
            )
        ).fetchall()
    return {row["id"]: row for row in rows}


async def _make_accounts(
    db: Database, make_user: Callable[[], LocalUser], count: int, vault: KeyVault = V1
) -> dict[str, tuple[str, str, str]]:
    """``count`` accounts, one per fresh user: {account id: (user id, api key, api secret)}."""
    made = {}
    for _ in range(count):
        user = make_user()
        api_key, api_secret = f"KEY{uuid.uuid4().hex[:14]}", f"SECRET{uuid.uuid4().hex}"
        made[await _insert_account(db, vault, user.id, api_key, api_secret)] = (user.id, api_key, api_secret)
    return made


def _users(made: dict[str, tuple[str, str, str]]) -> list[str]:
    return [user_id for user_id, _, _ in made.values()]


async def test_rotation_re_encrypts_every_old_account_under_the_newest_version_keeping_the_keys(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    made = await _make_accounts(db, make_user, 3)
    before = await _accounts(db, list(made))
    calls: list[tuple[int, int]] = []

    report = await rotate_all(
        db, V1_V2, batch_size=2, progress=lambda d, t: calls.append((d, t)), user_ids=_users(made)
    )

    assert (report.rotated, report.already_current, report.failed, report.remaining) == (3, 0, [], 0)
    assert calls == [(2, 3), (3, 3)]
    after = await _accounts(db, list(made))
    for account_id, (user_id, api_key, api_secret) in made.items():
        row = after[account_id]
        assert row["key_version"] == 2
        assert version_of(row["api_key_encrypted"]) == version_of(row["api_secret_encrypted"]) == 2
        assert row["api_key_encrypted"] != before[account_id]["api_key_encrypted"]
        assert row["api_secret_encrypted"] != before[account_id]["api_secret_encrypted"]
        # Readable without version 1 at all: version 1 could now be retired.
        assert V2_ONLY.decrypt(row["api_key_encrypted"], user_id=user_id, field=API_KEY_FIELD) == api_key
        assert (
            V2_ONLY.decrypt(row["api_secret_encrypted"], user_id=user_id, field=API_SECRET_FIELD)
            == api_secret
        )


async def test_a_second_rotation_rotates_nothing_and_changes_no_ciphertext(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    made = await _make_accounts(db, make_user, 2)
    first = await rotate_all(db, V1_V2, user_ids=_users(made))
    after_first = await _accounts(db, list(made))

    second = await rotate_all(db, V1_V2, user_ids=_users(made))

    assert first.rotated == 2
    assert (second.rotated, second.already_current, second.failed, second.remaining) == (0, 2, [], 0)
    assert await _accounts(db, list(made)) == after_first


async def test_a_corrupted_account_is_reported_and_left_untouched_while_the_others_rotate(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    made = await _make_accounts(db, make_user, 3)
    corrupted = sorted(made)[1]  # the middle one, so rows on both sides of it must still rotate
    async with db.write(Caller.service()) as conn:
        token = (await _accounts(db, [corrupted]))[corrupted]["api_secret_encrypted"]
        # Flip one character of the payload: the base64 stays well-formed, the GCM tag no longer matches.
        flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
        await conn.execute(
            "update user_trading_accounts set api_secret_encrypted = %s where id = %s", (flipped, corrupted)
        )
    before = (await _accounts(db, [corrupted]))[corrupted]

    report = await rotate_all(db, V1_V2, batch_size=1, user_ids=_users(made))

    assert report.failed == [corrupted]
    assert (report.rotated, report.remaining) == (2, 0)
    after = await _accounts(db, list(made))
    assert after[corrupted] == before
    assert sorted(row["key_version"] for row in after.values()) == [1, 2, 2]
    # The failed row does not make later runs loop or re-report anything else.
    again = await rotate_all(db, V1_V2, user_ids=_users(made))
    assert (again.rotated, again.already_current, again.failed) == (0, 2, [corrupted])


async def test_a_crash_between_batches_leaves_each_row_wholly_on_one_version_and_a_rerun_finishes(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    made = await _make_accounts(db, make_user, 5)

    def crash(done: int, total: int) -> None:
        raise RuntimeError("killed after the first batch")

    with pytest.raises(RuntimeError, match="killed"):
        await rotate_all(db, V1_V2, batch_size=2, progress=crash, user_ids=_users(made))

    midway = await _accounts(db, list(made))
    assert sorted(row["key_version"] for row in midway.values()) == [1, 1, 1, 2, 2]
    for account_id, (user_id, api_key, api_secret) in made.items():
        row = midway[account_id]
        # The column and both tokens always agree, and the row reads back with the keys of its version.
        assert (
            version_of(row["api_key_encrypted"])
            == version_of(row["api_secret_encrypted"])
            == row["key_version"]
        )
        assert V1_V2.decrypt(row["api_key_encrypted"], user_id=user_id, field=API_KEY_FIELD) == api_key
        assert (
            V1_V2.decrypt(row["api_secret_encrypted"], user_id=user_id, field=API_SECRET_FIELD) == api_secret
        )

    resumed = await rotate_all(db, V1_V2, batch_size=2, user_ids=_users(made))

    assert (resumed.rotated, resumed.already_current, resumed.failed) == (3, 2, [])
    assert {row["key_version"] for row in (await _accounts(db, list(made))).values()} == {2}


async def test_an_account_locked_by_a_concurrent_writer_is_skipped_without_waiting_and_rotated_later(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    made = await _make_accounts(db, make_user, 3)
    locked = sorted(made)[0]

    async with db.write(Caller.service()) as writer:
        await writer.execute("select id from user_trading_accounts where id = %s for update", (locked,))
        # A bound, not a pause: if SKIP LOCKED were missing the rotation would block on the writer forever.
        async with asyncio.timeout(10):
            during = await rotate_all(db, V1_V2, user_ids=_users(made))

    assert (during.rotated, during.failed, during.remaining) == (2, [], 1)
    assert (await _accounts(db, [locked]))[locked]["key_version"] == 1
    after = await rotate_all(db, V1_V2, user_ids=_users(made))
    assert (after.rotated, after.already_current, after.remaining) == (1, 2, 0)


async def test_a_vault_older_than_the_data_refuses_to_rotate_and_changes_nothing(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    old = await _make_accounts(db, make_user, 1)
    newer = await _make_accounts(db, make_user, 1, vault=KeyVault({1: KEY_1, 2: KEY_2, 3: KEY_3}))
    ids = [*old, *newer]
    before = await _accounts(db, ids)

    with pytest.raises(ConfigError, match="version 3"):
        await rotate_all(db, V1_V2, user_ids=_users(old) + _users(newer))

    assert await _accounts(db, ids) == before


async def test_each_rotated_account_is_audited_as_the_rotation_with_ciphertexts_redacted(
    db: Database, make_user: Callable[[], LocalUser]
) -> None:
    made = await _make_accounts(db, make_user, 1)
    (account_id,) = made

    await rotate_all(db, V1_V2, user_ids=_users(made))

    async with db.read(Caller.service()) as conn:
        entries = await (
            await conn.execute(
                "select actor_role, user_agent, old_values, new_values from audit_log "
                "where table_name = 'user_trading_accounts' and record_id = %s and action = 'UPDATE'",
                (account_id,),
            )
        ).fetchall()
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["actor_role"], entry["user_agent"]) == ("service_role", "aitradex-keys-rotate")
    assert (entry["old_values"]["key_version"], entry["new_values"]["key_version"]) == (1, 2)
    assert (
        entry["new_values"]["api_key_encrypted"]
        == entry["new_values"]["api_secret_encrypted"]
        == "[redacted]"
    )


def _write_secrets(state_dir: Path, secrets: dict[str, str]) -> None:
    (state_dir / SECRETS_FILE).write_text(json.dumps(secrets))


def test_adding_a_local_master_key_keeps_version_1_and_adds_version_2(tmp_path: Path) -> None:
    original = base64.b64encode(KEY_1).decode()
    _write_secrets(tmp_path, {"AITRADEX_MASTER_KEYS": f"1:{original}", "JWT_SECRET": "kept-as-is" * 4})

    new_version = add_local_master_key(tmp_path, env={})

    assert new_version == 2
    keys = parse_master_keys(read_local_secret(tmp_path, "AITRADEX_MASTER_KEYS") or "")
    assert sorted(keys) == [1, 2]
    assert keys[1] == KEY_1
    assert len(keys[2]) == 32
    assert keys[2] != KEY_1
    assert read_local_secret(tmp_path, "JWT_SECRET") == "kept-as-is" * 4
    assert KeyVault(keys).current_version == 2
    assert add_local_master_key(tmp_path, env={}) == 3


def test_adding_a_local_master_key_is_refused_when_the_environment_overrides_the_file(tmp_path: Path) -> None:
    _write_secrets(tmp_path, {"AITRADEX_MASTER_KEYS": f"1:{base64.b64encode(KEY_1).decode()}"})
    before = (tmp_path / SECRETS_FILE).read_text()

    with pytest.raises(ConfigError, match="environment"):
        add_local_master_key(tmp_path, env={"AITRADEX_MASTER_KEYS": "1:whatever"})

    assert (tmp_path / SECRETS_FILE).read_text() == before


def test_adding_a_local_master_key_without_a_first_one_is_refused(tmp_path: Path) -> None:
    _write_secrets(tmp_path, {"JWT_SECRET": "x" * 40})

    with pytest.raises(ConfigError, match="rebuild"):
        add_local_master_key(tmp_path, env={})

    assert read_local_secret(tmp_path, "AITRADEX_MASTER_KEYS") is None
