"""Connecting an account, the pure parts: checking keys against a fake exchange, sealing, the request model.

The fake is a plain dataclass implementing ``TradingExchange``: it answers a balance, or raises the error
it was given, and records the credentials it was called with.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import TypeAdapter, ValidationError

from functions.trading_account.models import ConnectAccount, Connected, TradingAccountRequest
from lib.crypto import API_KEY_FIELD, API_SECRET_FIELD, KeyVault
from lib.errors import (
    AitradexError,
    ConfigError,
    DecryptionError,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    IpBanned,
    RateLimited,
)
from lib.exchange.ports import Credentials, TradingExchange, WalletBalance
from lib.services.accounts import (
    InvalidExchangeCredentials,
    places_live_orders,
    seal_credentials,
    verify_credentials,
)
from lib.stores.accounts import AccountRecord

API_KEY = "Kx7Qp2Lm9Zr4Tv8Wn3"  # shaped like a Bybit key: 18 letters and digits
API_SECRET = "s3cR3tABCDEFghijklMNOPqrstUVWXyz0123"  # 36
USER = str(uuid.uuid4())
CREDS = Credentials(environment="testnet", api_key=API_KEY, api_secret=API_SECRET)
BALANCE = WalletBalance(
    total_equity=Decimal("1234.5"), total_available=Decimal("1000"), coins={"USDT": Decimal("1234.5")}
)
# Bybit's bad-signature message echoes the signed origin string, which contains the API key.
ORIGIN_STRING_MESSAGE = f"error sign! origin_string[1700000000000{API_KEY}5000accountType=UNIFIED]"


@dataclass
class FakeExchange:
    """Answers ``balance``, or raises ``error``; remembers every call's credentials."""

    balance: WalletBalance = BALANCE
    error: Exception | None = None
    calls: list[Credentials] = field(default_factory=list)

    async def wallet_balance(self, creds: Credentials) -> WalletBalance:
        self.calls.append(creds)
        if self.error is not None:
            raise self.error
        return self.balance


def exposed_text(error: AitradexError) -> str:
    """Everything an error could show a caller or a log: message, details, str and chained causes."""
    parts = [str(error), repr(error.to_dict())]
    cause = error.__cause__ or error.__context__
    if cause is not None and not error.__suppress_context__:
        # A chained exchange error would reach tracebacks, with its Bybit message in its details.
        parts.append(repr(cause.to_dict()) if isinstance(cause, AitradexError) else repr(cause))
    return "\n".join(parts)


async def test_working_keys_return_the_balance_the_exchange_saw_with_those_exact_keys() -> None:
    exchange = FakeExchange()
    as_protocol: TradingExchange = exchange  # the fake satisfies the interface (checked by type checkers)

    balance = await verify_credentials(as_protocol, CREDS)

    assert balance == BALANCE
    assert exchange.calls == [CREDS]


@pytest.mark.parametrize(("ret_code", "reason_word"), [(10003, "key"), (10004, "secret"), (33004, "expired")])
async def test_refused_keys_become_a_400_invalid_exchange_credentials_without_the_exchanges_message(
    ret_code: int, reason_word: str
) -> None:
    rejection = ExchangeRejected(
        "the exchange refused the API key", ret_code=ret_code, ret_msg=ORIGIN_STRING_MESSAGE
    )

    with pytest.raises(InvalidExchangeCredentials) as caught:
        await verify_credentials(FakeExchange(error=rejection), CREDS)

    error = caught.value
    assert (error.http_status, error.code) == (400, "invalid_exchange_credentials")
    assert error.details["ret_code"] == ret_code
    assert reason_word in error.details["reason"]
    text = exposed_text(error)
    assert API_KEY not in text
    assert API_SECRET not in text
    assert "origin_string" not in text


async def test_another_refusal_is_a_502_that_keeps_the_code_and_drops_the_message() -> None:
    rejection = ExchangeRejected("refused", ret_code=10001, ret_msg=ORIGIN_STRING_MESSAGE)

    with pytest.raises(ExchangeRejected) as caught:
        await verify_credentials(FakeExchange(error=rejection), CREDS)

    assert not isinstance(caught.value, InvalidExchangeCredentials)
    assert caught.value.http_status == 502
    assert caught.value.ret_code == 10001
    assert API_KEY not in exposed_text(caught.value)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ExchangeUnavailable(f"timeout talking to {API_KEY}"), ExchangeUnavailable),
        (RateLimited("slow down", ret_code=10006, ret_msg=ORIGIN_STRING_MESSAGE), RateLimited),
        (IpBanned("banned"), IpBanned),
        (ConfigError("the paper exchange URL is not known"), ExchangeUnavailable),
    ],
)
async def test_an_exchange_that_cannot_answer_now_is_a_retryable_looking_503(
    raised: Exception, expected: type[ExchangeError]
) -> None:
    with pytest.raises(expected) as caught:
        await verify_credentials(FakeExchange(error=raised), CREDS)

    assert caught.value.http_status == 503
    assert API_KEY not in exposed_text(caught.value)


def test_sealed_keys_decrypt_only_for_their_user_and_column() -> None:
    vault = KeyVault({1: os.urandom(32), 2: os.urandom(32)})

    sealed = seal_credentials(vault, USER, CREDS)

    assert sealed.key_version == 2
    assert sealed.key_hint == API_KEY[-4:]
    assert vault.decrypt(sealed.api_key_encrypted, user_id=USER, field=API_KEY_FIELD) == API_KEY
    assert vault.decrypt(sealed.api_secret_encrypted, user_id=USER, field=API_SECRET_FIELD) == API_SECRET
    with pytest.raises(DecryptionError):
        vault.decrypt(sealed.api_key_encrypted, user_id=str(uuid.uuid4()), field=API_KEY_FIELD)
    with pytest.raises(DecryptionError):
        vault.decrypt(sealed.api_secret_encrypted, user_id=USER, field=API_KEY_FIELD)
    for token in (sealed.api_key_encrypted, sealed.api_secret_encrypted, repr(sealed)):
        assert API_KEY not in token
        assert API_SECRET not in token


@pytest.mark.parametrize(
    ("environment", "switch", "live"),
    [("mainnet", True, True), ("mainnet", False, False), ("testnet", True, False), ("paper", True, False)],
)
def test_only_a_mainnet_account_with_the_switch_on_places_live_orders(
    environment: str, switch: bool, live: bool
) -> None:
    assert places_live_orders(environment, switch) is live


REQUEST = TypeAdapter(TradingAccountRequest)


def connect(**changes: object) -> dict[str, object]:
    return {
        "action": "connect",
        "environment": "mainnet",
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        **changes,
    }


def test_a_connect_request_hides_the_keys_in_its_repr_and_strips_pasted_whitespace() -> None:
    request = REQUEST.validate_python(connect(api_key=f"  {API_KEY}\n"))

    assert isinstance(request, ConnectAccount)
    assert request.api_key.get_secret_value() == API_KEY
    assert request.api_secret.get_secret_value() == API_SECRET
    assert API_KEY not in repr(request)
    assert API_SECRET not in repr(request)
    assert API_SECRET not in request.model_dump_json()


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("api_key", "short1"),
        ("api_key", "K" * 65),
        ("api_key", "Kx7Qp2Lm9Z r4Tv8Wn3"),
        ("api_secret", "s3cR3t-ABCDEFghijkl"),
        ("api_secret", "s" * 129),
        ("environment", "moon"),
    ],
)
def test_malformed_connect_fields_are_refused_and_named(field_name: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        REQUEST.validate_python(connect(**{field_name: value}))

    errors = caught.value.errors(include_input=False, include_url=False, include_context=False)
    assert [e["loc"][-1] for e in errors] == [field_name]
    assert value not in repr(errors)


def test_a_connect_request_cannot_name_a_user() -> None:
    with pytest.raises(ValidationError):
        REQUEST.validate_python(connect(user_id=USER))


# -- one account record, answered as it is stored ------------------------------------------------------


def test_the_connect_answer_serializes_the_stored_record_and_balance_themselves() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    record = AccountRecord(
        id=str(uuid.uuid4()),
        exchange="bybit",
        environment="testnet",
        key_hint="Wn3x",
        key_version=2,
        is_active=True,
        last_used_at=None,
        created_at=at,
        updated_at=at,
    )
    answer = Connected(account=record, balance=BALANCE, live_trading_enabled=False, places_live_orders=False)
    dumped = answer.model_dump(mode="json")
    assert list(dumped["account"]) == [f.name for f in dataclasses.fields(AccountRecord)]
    assert dumped["account"]["key_hint"] == "Wn3x"
    assert datetime.fromisoformat(dumped["account"]["created_at"]) == at
    assert dumped["balance"]["total_equity"] == str(BALANCE.total_equity)
    assert set(dumped["balance"]) == {f.name for f in dataclasses.fields(BALANCE)}
