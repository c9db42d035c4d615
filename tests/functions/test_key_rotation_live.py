"""Master keys while the stack runs (issue 9, item 14): a rotation needs no restart, and diagnostics says
``down`` for stored keys no configured version can decrypt.

The rotation test runs a functions server of its own on a copy of the state folder's secrets, so the
version it adds never reaches the session's stack, and rotates only its own user's account (the engine
of ``aitradex keys rotate``, scoped as the rotation tests scope it).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from lib.config import SECRETS_FILE, Settings, load_settings
from lib.crypto import KeyVault
from lib.db.session import Caller, Database
from lib.exchange.access import MarketAccess
from lib.exchange.ports import Credentials
from lib.exchange.trading import PybitExchange
from lib.http.server import create_functions_app, serve_in_thread
from lib.local_state import STACK_FILE, read_stack
from lib.ops.rotate_keys import add_local_master_key, rotate_all
from lib.paper_exchange.server import PaperAccount, create_paper_account
from lib.services.accounts import seal_credentials, store_account
from lib.services.auth.tokens import mint_api_key
from lib.services.auth.users import LocalUser, create_local_user
from lib.services.key_health import check_key_versions, master_key_source
from tests.functions.conftest import bearer


@pytest.fixture
def users(owner_conn: psycopg.Connection, settings: Settings) -> Iterator[list[LocalUser]]:
    """Users made by the test, deleted after it: their keys may be under versions the stack lacks."""
    made: list[LocalUser] = []
    yield made
    if made:
        with owner_conn.transaction():
            owner_conn.execute("delete from auth.users where id = any(%s::uuid[])", ([u.id for u in made],))


def new_user(owner_conn: psycopg.Connection, settings: Settings, users: list[LocalUser]) -> LocalUser:
    user = create_local_user(
        owner_conn, f"user-{uuid.uuid4().hex[:12]}@test.local", settings.jwt_secret.reveal()
    )
    users.append(user)
    return user


@pytest.fixture
def own_state(settings: Settings, tmp_path: Path, test_env: dict[str, str]) -> Settings:
    """Settings of a state folder of the test's own: the same secrets and database, its own key list."""
    shutil.copy(settings.state_dir / SECRETS_FILE, tmp_path / SECRETS_FILE)
    (tmp_path / STACK_FILE).write_text(json.dumps({"pg_port": read_stack(settings.state_dir)["pg_port"]}))
    return load_settings({**test_env, "AITRADEX_STATE_DIR": str(tmp_path)})


@pytest.fixture
def own_server(own_state: Settings, paper_exchange_url: str) -> Iterator[str]:
    everywhere = {env: paper_exchange_url for env in ("mainnet", "testnet", "demo")}
    app = create_functions_app(
        own_state,
        exchange=PybitExchange(paper_url=paper_exchange_url, endpoints=everywhere),
        market=MarketAccess(paper_url=paper_exchange_url),
    )
    with serve_in_thread(app) as url:
        yield url


def connect_body(account: PaperAccount) -> dict[str, Any]:
    return {
        "action": "connect",
        "environment": "paper",
        "api_key": account.api_key,
        "api_secret": account.api_secret,
    }


def manual_trade() -> dict[str, Any]:
    return {
        "action": "execute_trade",
        "symbol": "ETHUSDT",
        "side": "Buy",
        "amount_usd": "50",
        "client_order_id": uuid.uuid4().hex[:20],
    }


async def test_a_rotation_while_the_server_runs_is_picked_up_without_a_restart_and_trading_goes_on(
    db: Database,
    owner_conn: psycopg.Connection,
    settings: Settings,
    users: list[LocalUser],
    own_state: Settings,
    own_server: str,
    paper_exchange_url: str,
) -> None:
    assert not os.environ.get("AITRADEX_MASTER_KEYS"), "the premise: the keys come from the secrets file"
    user = new_user(owner_conn, settings, users)
    account = create_paper_account(paper_exchange_url, "5000")
    async with httpx.AsyncClient(base_url=own_server, timeout=30) as http:
        connected = await http.post(
            "/functions/v1/trading-account", json=connect_body(account), headers=bearer(user.token)
        )
        assert connected.status_code == 200, connected.text
        assert connected.json()["account"]["key_version"] == 1

        # `aitradex keys rotate`, while the server runs: a new version in the secrets file, and the
        # account re-encrypted under it.
        version = add_local_master_key(own_state.state_dir, env={})
        rotated = await rotate_all(
            db,
            KeyVault(
                load_settings({**os.environ, "AITRADEX_STATE_DIR": str(own_state.state_dir)}).master_keys
            ),
            user_ids=[user.id],
        )
        assert (version, rotated.rotated, rotated.failed) == (2, 1, [])

        traded = await http.post(
            "/functions/v1/aitradex1-trade-executor", json=manual_trade(), headers=bearer(user.token)
        )
        again = await http.post(
            "/functions/v1/trading-account", json=connect_body(account), headers=bearer(user.token)
        )
        service = mint_api_key("service_role", own_state.jwt_secret.reveal())
        health = await http.post(
            "/functions/v1/diagnostics", json={"action": "check"}, headers=bearer(service)
        )

    assert traded.status_code == 200, traded.text
    assert traded.json()["outcome"] in ("placed", "filled")
    # New ciphertexts use the new version at once.
    assert again.status_code == 200, again.text
    assert again.json()["account"]["key_version"] == 2
    checks = {c["name"]: c for c in health.json()["checks"]}
    assert checks["key_versions"]["status"] == "healthy", checks["key_versions"]


async def test_a_stored_key_version_nothing_can_decrypt_makes_diagnostics_say_down(
    http: httpx.AsyncClient,
    service_key: str,
    db: Database,
    owner_conn: psycopg.Connection,
    settings: Settings,
    users: list[LocalUser],
) -> None:
    user = new_user(owner_conn, settings, users)
    lost = KeyVault({77: os.urandom(32)})  # a version nobody configured, or one removed too early
    creds = Credentials(environment="paper", api_key="LostKey0123456789", api_secret="LostSecret0123456789")
    caller = Caller(role="authenticated", claims={"role": "authenticated", "sub": user.id})
    await store_account(db, caller, user.id, "paper", seal_credentials(lost, user.id, creds))

    response = await http.post(
        "/functions/v1/diagnostics", json={"action": "check"}, headers=bearer(service_key)
    )
    process_vault = await check_key_versions(
        db, KeyVault(settings.master_keys, reload=master_key_source(settings.state_dir))
    )

    body = response.json()
    checks = {c["name"]: c for c in body["checks"]}
    assert body["status"] == "down"
    assert checks["key_versions"]["status"] == "down"
    assert checks["key_versions"]["details"]["missing"] == [77]
    assert "77" in checks["key_versions"]["message"]
    assert process_vault.status == "down"
    assert process_vault.details["missing"] == [77]


async def test_key_health_is_healthy_and_counts_keys_awaiting_a_rotation(
    db: Database, owner_conn: psycopg.Connection, settings: Settings, users: list[LocalUser]
) -> None:
    user = new_user(owner_conn, settings, users)
    current = KeyVault(settings.master_keys)
    newer = KeyVault({**settings.master_keys, max(settings.master_keys) + 1: os.urandom(32)})
    creds = Credentials(environment="paper", api_key="SomeKey0123456789", api_secret="SomeSecret0123456789")
    caller = Caller(role="authenticated", claims={"role": "authenticated", "sub": user.id})
    await store_account(db, caller, user.id, "paper", seal_credentials(current, user.id, creds))

    result = await check_key_versions(db, newer)

    assert result.status == "healthy"
    assert result.details["behind"] >= 1
    assert "aitradex keys rotate" in result.message
