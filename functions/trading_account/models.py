"""Request and response models of ``trading-account``.

API keys arrive as ``SecretStr``: their ``repr``/``str`` show stars, so neither a model dump in a log
line nor a traceback shows them, and the adapter never echoes submitted values in validation errors.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr

from lib.core.vocabulary import Environment
from lib.exchange.ports import WalletBalance
from lib.http.spec import Request, Response, StatusRequest, StatusResponse
from lib.stores.accounts import AccountRecord

# Bybit's HMAC API keys are 18 letters and digits and their secrets 36; the bounds leave room for
# other lengths without accepting a paste of anything at all.
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]+")
API_KEY_LENGTH = (10, 64)
API_SECRET_LENGTH = (10, 128)


def _strip(value: Any) -> Any:
    # Keys are usually pasted, often with a trailing newline or spaces that are never part of a key.
    return value.strip() if isinstance(value, str) else value


def _alphanumeric(value: SecretStr) -> SecretStr:
    # A custom check because pydantic cannot apply `pattern` to a SecretStr; the message names the
    # rule, never the value.
    if not _ALPHANUMERIC.fullmatch(value.get_secret_value()):
        raise ValueError("must contain only letters and digits")
    return value


def _secret_field(lengths: tuple[int, int], description: str) -> Any:
    low, high = lengths
    return Field(
        min_length=low,
        max_length=high,
        description=description,
        json_schema_extra={"pattern": "^[A-Za-z0-9]+$"},
    )


ApiKey = Annotated[
    SecretStr,
    BeforeValidator(_strip),
    _secret_field(API_KEY_LENGTH, "The Bybit API key (letters and digits)"),
    AfterValidator(_alphanumeric),
]
ApiSecret = Annotated[
    SecretStr,
    BeforeValidator(_strip),
    _secret_field(API_SECRET_LENGTH, "The Bybit API secret (letters and digits); never shown again"),
    AfterValidator(_alphanumeric),
]


class ConnectAccount(Request):
    """Check the keys against the exchange (a signed wallet-balance call), then store them encrypted.

    Connecting an environment that is already connected replaces its keys. Replacing them with
    another API key marks the account's open orders and positions ``untracked`` (they belong to the old
    key's exchange account; ``untracked_orders`` counts them). Connecting a key whose orders were left
    untracked tracks them again (``relinked_orders``).
    """

    action: Literal["connect"]
    environment: Environment
    api_key: ApiKey
    api_secret: ApiSecret


class GetAccountStatus(Request):
    """The caller's connected accounts, masked (``status`` alone is the function's liveness check)."""

    action: Literal["account_status"]


class DisconnectAccount(Request):
    """Delete the caller's account (and its keys) for one environment.

    Refused (409, with the count) while the account has open orders or positions, unless
    ``confirm_open_orders`` is true: they are then marked ``untracked`` until the same exchange account
    (same environment, same API key) is connected again.
    """

    action: Literal["disconnect"]
    environment: Environment
    confirm_open_orders: bool = Field(
        default=False,
        description="Disconnect even with open orders or positions: they stop being tracked until the "
        "same API key is connected again",
    )


TradingAccountRequest = Annotated[
    ConnectAccount | GetAccountStatus | DisconnectAccount | StatusRequest, Field(discriminator="action")
]


class Connected(Response):
    """The account as stored, the balance seen, and whether its orders would reach a live market."""

    account: AccountRecord = Field(
        description="The account as stored, masked: the key's last 4 characters only"
    )
    balance: WalletBalance = Field(description="What the keys saw in the unified wallet (decimal strings)")
    live_trading_enabled: bool = Field(description="The system-wide switch (app_settings)")
    places_live_orders: bool = Field(
        description="True only for a mainnet account while live trading is enabled"
    )
    relinked_orders: int = Field(
        default=0,
        description="Orders left untracked by disconnecting this exchange account, now tracked again",
    )
    untracked_orders: int = Field(
        default=0,
        description="Open orders of the replaced, different API key: untracked until it is connected again",
    )


class AccountStatus(Response):
    """The caller's accounts, masked, one per connected environment."""

    user_id: str
    accounts: list[AccountRecord]
    live_trading_enabled: bool


class Disconnected(Response):
    """The account that was deleted, and how many open orders and positions stopped being tracked."""

    environment: Environment
    account_id: str
    untracked_orders: int = Field(
        default=0, description="Open orders and positions marked untracked (only with confirm_open_orders)"
    )
    disconnected: Literal[True] = True


TradingAccountResponse = Connected | AccountStatus | Disconnected | StatusResponse
