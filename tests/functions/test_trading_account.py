"""trading-account through HTTP: keys are checked on the paper exchange, stored encrypted, shown masked."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lib.config import Settings
from lib.crypto import API_KEY_FIELD, API_SECRET_FIELD, KeyVault
from lib.db.session import Caller, Database
from lib.paper_exchange.client import AsyncPaperControls
from lib.paper_exchange.server import PaperAccount, create_paper_account
from lib.services.auth.users import LocalUser
from tests.functions.conftest import bearer

URL = "/functions/v1/trading-account"


@pytest.fixture
def paper_account(paper_exchange_url: str) -> PaperAccount:
    return create_paper_account(paper_exchange_url, "2500")


def connect_body(account: PaperAccount, environment: str = "paper") -> dict[str, str]:
    return {
        "action": "connect",
        "environment": environment,
        "api_key": account.api_key,
        "api_secret": account.api_secret,
    }


async def call(http: httpx.AsyncClient, user: LocalUser, body: dict[str, Any]) -> httpx.Response:
    return await http.post(URL, json=body, headers=bearer(user.token))


async def stored_row(db: Database, user_id: str) -> dict[str, Any] | None:
    """The user's paper account with its ciphertexts, read as the service role (only it may)."""
    async with db.read(Caller.service()) as conn:
        row: dict[str, Any] | None = await (
            await conn.execute(
                "select id::text as id, api_key_encrypted, api_secret_encrypted, key_version, key_hint "
                "from user_trading_accounts where user_id = %s and environment = 'paper'",
                (user_id,),
            )
        ).fetchone()
    return row


async def live_trading_setting(db: Database) -> bool:
    # Other suites may flip the switch on the shared test database: compare with its current value.
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute("select value from app_settings where key = 'live_trading_enabled'")
        ).fetchone()
    return row is not None and row["value"] is True


async def test_connecting_paper_keys_stores_them_encrypted_and_answers_masked_with_the_balance(
    http: httpx.AsyncClient,
    make_user: Callable[[], LocalUser],
    paper_account: PaperAccount,
    db: Database,
    settings: Settings,
) -> None:
    user = make_user()
    response = await call(http, user, connect_body(paper_account))

    assert response.status_code == 200, response.text
    body = response.json()
    vault = KeyVault(settings.master_keys)
    account = body["account"]
    assert account["environment"] == "paper"
    assert account["key_hint"] == paper_account.api_key[-4:]
    assert account["key_version"] == vault.current_version
    assert account["is_active"] is True
    assert body["balance"]["total_equity"] == "2500"
    assert body["balance"]["coins"] == {"USDT": "2500"}
    assert body["live_trading_enabled"] is await live_trading_setting(db)
    assert body["places_live_orders"] is False  # paper never reaches a live market
    assert paper_account.api_key not in response.text
    assert paper_account.api_secret not in response.text

    row = await stored_row(db, user.id)
    assert row is not None
    assert row["id"] == account["id"]
    assert (
        vault.decrypt(row["api_key_encrypted"], user_id=user.id, field=API_KEY_FIELD) == paper_account.api_key
    )
    assert (
        vault.decrypt(row["api_secret_encrypted"], user_id=user.id, field=API_SECRET_FIELD)
        == paper_account.api_secret
    )


async def test_account_status_shows_the_key_hint_and_never_the_keys(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount
) -> None:
    user = make_user()
    connected = await call(http, user, connect_body(paper_account))
    response = await call(http, user, {"action": "account_status"})

    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == user.id
    assert [a["id"] for a in body["accounts"]] == [connected.json()["account"]["id"]]
    shown = body["accounts"][0]
    assert shown["key_hint"] == paper_account.api_key[-4:]
    assert shown["last_used_at"] is None
    assert not {"api_key", "api_secret", "api_key_encrypted", "api_secret_encrypted"} & shown.keys()
    assert paper_account.api_key not in response.text
    assert paper_account.api_secret not in response.text


async def test_reconnecting_an_environment_replaces_its_keys_in_the_same_account(
    http: httpx.AsyncClient,
    make_user: Callable[[], LocalUser],
    paper_exchange_url: str,
    db: Database,
    settings: Settings,
) -> None:
    user = make_user()
    first, second = create_paper_account(paper_exchange_url), create_paper_account(paper_exchange_url, "700")

    one = await call(http, user, connect_body(first))
    two = await call(http, user, connect_body(second))
    status = await call(http, user, {"action": "account_status"})

    assert (one.status_code, two.status_code) == (200, 200)
    assert two.json()["account"]["id"] == one.json()["account"]["id"]
    assert two.json()["balance"]["total_equity"] == "700"
    assert [a["key_hint"] for a in status.json()["accounts"]] == [second.api_key[-4:]]
    row = await stored_row(db, user.id)
    assert row is not None
    vault = KeyVault(settings.master_keys)
    assert vault.decrypt(row["api_key_encrypted"], user_id=user.id, field=API_KEY_FIELD) == second.api_key


async def test_a_wrong_secret_is_refused_with_a_clear_code_nothing_stored_and_no_key_material_echoed(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount, db: Database
) -> None:
    user = make_user()
    wrong_secret = "Wr0ngSecret" + paper_account.api_secret[11:]
    body = {**connect_body(paper_account), "api_secret": wrong_secret}

    response = await call(http, user, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_exchange_credentials"
    assert error["details"]["ret_code"] == 10004
    for material in (paper_account.api_key, paper_account.api_secret, wrong_secret):
        assert material not in response.text
    assert await stored_row(db, user.id) is None


async def test_an_unknown_api_key_is_refused_as_invalid_credentials(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount
) -> None:
    user = make_user()
    body = {**connect_body(paper_account), "api_key": "NoSuchKey0123456789"}

    response = await call(http, user, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_exchange_credentials"
    assert response.json()["error"]["details"]["ret_code"] == 10003
    assert "NoSuchKey0123456789" not in response.text
    assert paper_account.api_secret not in response.text


async def test_a_failed_reconnect_keeps_the_working_keys(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount
) -> None:
    user = make_user()
    await call(http, user, connect_body(paper_account))
    refused = await call(http, user, {**connect_body(paper_account), "api_secret": "x" * 36})
    status = await call(http, user, {"action": "account_status"})

    assert refused.status_code == 400
    assert [a["key_hint"] for a in status.json()["accounts"]] == [paper_account.api_key[-4:]]


@pytest.mark.parametrize(
    ("fault", "code"),
    [("http_5xx_probability", "exchange_unavailable"), ("rate_limit_probability", "rate_limited")],
)
async def test_an_exchange_that_cannot_answer_is_a_503_and_nothing_is_stored(
    http: httpx.AsyncClient,
    make_user: Callable[[], LocalUser],
    paper_account: PaperAccount,
    paper_exchange_url: str,
    db: Database,
    fault: str,
    code: str,
) -> None:
    user = make_user()
    paper = AsyncPaperControls(paper_exchange_url)
    # Faults on signed endpoints only, and always reset: the paper exchange is shared by the session.
    await paper.set_faults({"order": {fault: 1.0}})
    try:
        response = await call(http, user, connect_body(paper_account))
    finally:
        await paper.clear_faults()

    assert response.status_code == 503
    assert response.json()["error"]["code"] == code
    assert paper_account.api_key not in response.text
    assert await stored_row(db, user.id) is None


async def test_an_unknown_environment_is_a_422_naming_the_field(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount
) -> None:
    user = make_user()
    response = await call(http, user, connect_body(paper_account, environment="moon"))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert any("environment" in e["loc"] for e in error["details"]["errors"])
    assert paper_account.api_secret not in response.text


@pytest.mark.parametrize("missing", ["environment", "api_key", "api_secret"])
async def test_a_connect_missing_a_field_is_a_422_naming_it(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount, missing: str
) -> None:
    user = make_user()
    body = {k: v for k, v in connect_body(paper_account).items() if k != missing}

    response = await call(http, user, body)

    assert response.status_code == 422
    assert any(missing in e["loc"] for e in response.json()["error"]["details"]["errors"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("api_key", "abc123"),
        ("api_key", "has spaces in it ok"),
        ("api_secret", "s" * 129),
        ("api_secret", 42),
    ],
)
async def test_malformed_keys_are_a_422_that_does_not_echo_them(
    http: httpx.AsyncClient,
    make_user: Callable[[], LocalUser],
    paper_account: PaperAccount,
    field: str,
    value: Any,
) -> None:
    user = make_user()
    response = await call(http, user, {**connect_body(paper_account), field: value})

    assert response.status_code == 422
    assert any(field in e["loc"] for e in response.json()["error"]["details"]["errors"])
    assert str(value) not in response.text
    assert paper_account.api_secret not in response.text


async def test_a_connect_naming_another_user_is_refused(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount, db: Database
) -> None:
    a, b = make_user(), make_user()
    response = await call(http, b, {**connect_body(paper_account), "user_id": a.id})

    assert response.status_code == 422
    assert await stored_row(db, a.id) is None


async def test_disconnecting_deletes_the_account_and_status_then_shows_nothing(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount, db: Database
) -> None:
    user = make_user()
    connected = await call(http, user, connect_body(paper_account))
    response = await call(http, user, {"action": "disconnect", "environment": "paper"})
    status = await call(http, user, {"action": "account_status"})

    assert response.status_code == 200
    assert response.json() == {
        "environment": "paper",
        "account_id": connected.json()["account"]["id"],
        "untracked_orders": 0,
        "disconnected": True,
    }
    assert status.json()["accounts"] == []
    assert await stored_row(db, user.id) is None


async def test_disconnecting_an_environment_with_no_account_is_a_404(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    response = await call(http, user, {"action": "disconnect", "environment": "testnet"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_a_user_never_sees_nor_disconnects_another_users_account(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount, db: Database
) -> None:
    a, b = make_user(), make_user()
    await call(http, a, connect_body(paper_account))

    b_status = await call(http, b, {"action": "account_status"})
    b_disconnect = await call(http, b, {"action": "disconnect", "environment": "paper"})
    b_names_a = await call(http, b, {"action": "disconnect", "environment": "paper", "user_id": a.id})
    a_status = await call(http, a, {"action": "account_status"})

    assert b_status.status_code == 200
    assert b_status.json()["user_id"] == b.id
    assert b_status.json()["accounts"] == []
    assert b_disconnect.status_code == 404
    assert b_names_a.status_code == 422  # there is no way to name another user
    assert [acc["environment"] for acc in a_status.json()["accounts"]] == ["paper"]
    assert await stored_row(db, a.id) is not None


async def test_connect_is_recorded_in_the_users_audit_trail_with_the_keys_redacted(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount, db: Database
) -> None:
    user = make_user()
    connected = await call(http, user, connect_body(paper_account))
    account_id = connected.json()["account"]["id"]

    # As the user: the audit rows of their own records are theirs to read.
    async with db.read(Caller.from_claims({"role": "authenticated", "sub": user.id})) as conn:
        rows = await (
            await conn.execute(
                "select actor_id::text as actor_id, actor_role, action, new_values from audit_log "
                "where table_name = 'user_trading_accounts' and record_id = %s",
                (account_id,),
            )
        ).fetchall()

    assert [(r["actor_id"], r["actor_role"], r["action"]) for r in rows] == [
        (user.id, "service_role", "INSERT")
    ]
    assert rows[0]["new_values"]["api_key_encrypted"] == "[redacted]"
    assert rows[0]["new_values"]["api_secret_encrypted"] == "[redacted]"


async def test_anyone_may_ask_whether_the_function_is_alive(http: httpx.AsyncClient, anon_key: str) -> None:
    response = await http.post(URL, json={"action": "status"}, headers=bearer(anon_key))

    assert response.status_code == 200
    assert response.json() == {"function": "trading-account", "status": "ok", "version": "1"}


@pytest.mark.parametrize("action", ["connect", "account_status", "disconnect"])
async def test_anon_and_service_keys_get_403_because_accounts_belong_to_a_user(
    http: httpx.AsyncClient, anon_key: str, service_key: str, paper_account: PaperAccount, action: str
) -> None:
    body: dict[str, Any] = {"action": action}
    if action == "connect":
        body = connect_body(paper_account)
    elif action == "disconnect":
        body["environment"] = "paper"
    for key in (anon_key, service_key):
        response = await http.post(URL, json=body, headers=bearer(key))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"


async def test_no_token_at_all_is_an_invalid_jwt(http: httpx.AsyncClient) -> None:
    response = await http.post(URL, json={"action": "account_status"})

    assert response.status_code == 401
    assert response.json() == {"msg": "Invalid JWT"}


async def test_disconnecting_with_an_open_order_is_a_409_with_the_count_until_confirmed(
    http: httpx.AsyncClient, make_user: Callable[[], LocalUser], paper_account: PaperAccount, db: Database
) -> None:
    user = make_user()
    connected = await call(http, user, connect_body(paper_account))
    account_id = connected.json()["account"]["id"]
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "insert into execution_orders (user_id, account_id, symbol, side, qty, order_link_id, status, "
            "environment) values (%s, %s, 'ETHUSDT', 'Buy', 1, %s, 'placed', 'paper')",
            (user.id, account_id, f"t-{uuid.uuid4().hex[:16]}"),
        )

    refused = await call(http, user, {"action": "disconnect", "environment": "paper"})
    confirmed = await call(
        http, user, {"action": "disconnect", "environment": "paper", "confirm_open_orders": True}
    )

    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "conflict"
    assert error["details"] == {"environment": "paper", "open_orders": 1}
    assert "1 order(s) or position(s) are still open" in error["message"]
    assert "confirm_open_orders" in error["message"]
    assert confirmed.status_code == 200
    assert confirmed.json() == {
        "environment": "paper",
        "account_id": account_id,
        "untracked_orders": 1,
        "disconnected": True,
    }
    again = await call(http, user, connect_body(paper_account))
    assert again.status_code == 200
    assert (again.json()["relinked_orders"], again.json()["untracked_orders"]) == (1, 0)
