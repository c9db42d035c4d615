"""Users' exchange accounts: check keys against the exchange, store them encrypted, list, disconnect.

Who does what, and as which role (``user_trading_accounts`` in the users-and-trading migration):

- checking keys is a signed, read-only wallet-balance call through the ``TradingExchange`` interface;
- storing them is a write the user may not do directly (the ciphertext columns are granted to nobody
  but ``service_role``), so it runs as ``service_role``; the caller's user id travels in the claims and
  its request headers ride along, so the audit trail names the user, their IP and user agent;
- listing and disconnecting run as the user: row-level security and the column grants decide, and
  listing never selects a ciphertext column (the user role could not, and should not try);
- ``app_settings`` is service only, so ``live_trading_enabled`` is read as ``service_role``.

Plain keys exist only in memory, inside :class:`~lib.exchange.trading.Credentials` (masked ``repr``),
for the length of one call. No message, detail, log line or return value here carries one. That
includes the exchange's own ``retMsg``: Bybit echoes the signed "origin string", which contains the API
key, in its bad-signature message, so exchange errors are rebuilt from their retCode alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from lib.crypto import API_KEY_FIELD, API_SECRET_FIELD, KeyVault, key_hint
from lib.db.session import Caller, Database
from lib.errors import (
    ConfigError,
    Conflict,
    ExchangeRejected,
    ExchangeUnavailable,
    InvalidExchangeCredentials,
    IpBanned,
    NotFound,
    RateLimited,
)
from lib.exchange.bybit import AUTH_RET_CODES
from lib.exchange.ports import Credentials, TradingExchange, WalletBalance
from lib.stores import accounts as accounts_store
from lib.stores import settings as settings_store
from lib.stores.accounts import AccountRecord, StoredAccount

EXCHANGE = "bybit"  # the only exchange the table allows

# Why the exchange refused the keys, by Bybit retCode: what the user should check.
_REJECTION_REASONS: dict[int, str] = {
    10003: "the exchange does not know this API key (check the key and the environment)",
    10004: "the signature did not match: the API secret does not belong to this API key",
    10005: "this API key lacks the permissions needed (enable read access to the unified account)",
    10007: "the exchange could not authenticate this API key",
    10010: "this server's IP address is not in the API key's IP whitelist",
    33004: "this API key has expired",
}


@dataclass(frozen=True, slots=True)
class SealedKeys:
    """An account's keys as stored: two AES-256-GCM tokens, the master key version and the key hint."""

    api_key_encrypted: str
    api_secret_encrypted: str
    key_version: int
    key_hint: str

    def __repr__(self) -> str:
        return f"SealedKeys(key_version={self.key_version}, key_hint='****')"


@dataclass(frozen=True, slots=True)
class ConnectedAccount:
    """The outcome of a connect: the stored account, the balance the keys saw, the live-trading switch."""

    account: AccountRecord
    balance: WalletBalance
    live_trading_enabled: bool
    #: Orders left untracked by an earlier disconnect of this exchange account, now tracked again.
    relinked_orders: int = 0
    #: Open orders of the different key this connect replaced, now untracked.
    untracked_orders: int = 0

    @property
    def places_live_orders(self) -> bool:
        """Whether orders for this account would reach a live market right now."""
        return places_live_orders(self.account.environment, self.live_trading_enabled)


def places_live_orders(environment: str, live_trading_enabled: bool) -> bool:
    """Orders reach a live market only on mainnet, and only while ``live_trading_enabled`` is on."""
    return environment == "mainnet" and live_trading_enabled


async def verify_credentials(exchange: TradingExchange, creds: Credentials) -> WalletBalance:
    """The wallet balance ``creds`` see: a signed call, so success proves the keys work.

    Raises :class:`InvalidExchangeCredentials` (400) when the exchange refuses the keys,
    ``ExchangeUnavailable``/``RateLimited``/``IpBanned`` (503) when it cannot answer now, and
    ``ExchangeRejected`` (502) for any other refusal. Each is rebuilt without the exchange's message.
    """
    try:
        return await exchange.wallet_balance(creds)
    except ExchangeRejected as exc:
        code = exc.ret_code
        if code in AUTH_RET_CODES:
            raise InvalidExchangeCredentials(
                "the exchange refused these API credentials",
                details={"ret_code": code, "reason": _REJECTION_REASONS.get(code, "authentication failed")},
            ) from None
        raise ExchangeRejected(
            "the exchange refused the balance check for these API credentials",
            ret_code=code,
            details={"environment": creds.environment},
        ) from None
    except RateLimited:
        raise RateLimited("the exchange rate limit was hit: try again shortly") from None
    except IpBanned:
        raise IpBanned("the exchange is refusing this server's IP for now: try again later") from None
    except ExchangeUnavailable:
        raise ExchangeUnavailable(
            "the exchange could not be reached to check these API credentials: try again shortly",
            details={"environment": creds.environment},
        ) from None
    except ConfigError:
        # The server does not know where this environment lives (the paper exchange is not running):
        # the caller asked for nothing wrong, and a later attempt may work.
        raise ExchangeUnavailable(
            f"the {creds.environment} exchange is not available on this server",
            details={"environment": creds.environment},
        ) from None


def seal_credentials(vault: KeyVault, user_id: str, creds: Credentials) -> SealedKeys:
    """Encrypt the key and the secret for ``user_id``, each bound to its own column."""
    return SealedKeys(
        api_key_encrypted=vault.encrypt(creds.api_key, user_id=user_id, field=API_KEY_FIELD),
        api_secret_encrypted=vault.encrypt(creds.api_secret, user_id=user_id, field=API_SECRET_FIELD),
        key_version=vault.current_version,
        key_hint=key_hint(creds.api_key),
    )


def account_credentials(
    vault: KeyVault, user_id: UUID | str, environment: str, api_key_encrypted: str, api_secret_encrypted: str
) -> Credentials:
    """An account's plain keys, decrypted for ``user_id`` and each key's own field."""
    return Credentials(
        environment=environment,
        api_key=vault.decrypt(api_key_encrypted, user_id=str(user_id), field=API_KEY_FIELD),
        api_secret=vault.decrypt(api_secret_encrypted, user_id=str(user_id), field=API_SECRET_FIELD),
    )


def _service_on_behalf_of(caller: Caller, user_id: str) -> Caller:
    """``service_role`` for a write the user asked for: the audit log records them as the actor."""
    return Caller(
        role="service_role", claims={"role": "service_role", "sub": user_id}, headers=dict(caller.headers)
    )


async def store_account(
    db: Database,
    caller: Caller,
    user_id: str,
    environment: str,
    sealed: SealedKeys,
) -> StoredAccount:
    """Insert the account, or replace the keys of the user's existing one for ``environment``; orders
    left untracked by disconnecting the same exchange account (same key hint) are re-linked to it, and
    the open orders of a replaced, different key are marked untracked."""
    return await accounts_store.upsert_account(
        db,
        _service_on_behalf_of(caller, user_id),
        user_id=user_id,
        exchange=EXCHANGE,
        environment=environment,
        api_key_encrypted=sealed.api_key_encrypted,
        api_secret_encrypted=sealed.api_secret_encrypted,
        key_version=sealed.key_version,
        key_hint=sealed.key_hint,
    )


async def live_trading_enabled(db: Database) -> bool:
    """The ``live_trading_enabled`` switch; off unless the setting is exactly ``true``."""
    return await settings_store.live_trading_enabled(db)


async def connect_account(
    db: Database,
    vault: KeyVault,
    exchange: TradingExchange,
    caller: Caller,
    user_id: str,
    creds: Credentials,
) -> ConnectedAccount:
    """Check ``creds`` against the exchange, then store them encrypted for ``user_id``.

    Nothing is stored unless the exchange accepted the keys; reconnecting an environment replaces
    its keys. Mainnet is allowed: the check only reads a balance. Orders left untracked by this API key
    (an earlier disconnect) are tracked again. Replacing the environment's key with another one marks
    its open orders and positions untracked, each with a ``trade_logs`` event (they belong to the old
    key's exchange account; the answer counts them), until that key is connected again.
    """
    balance = await verify_credentials(exchange, creds)
    stored = await store_account(
        db, caller, user_id, creds.environment, seal_credentials(vault, user_id, creds)
    )
    return ConnectedAccount(
        stored.record,
        balance,
        await live_trading_enabled(db),
        relinked_orders=stored.relinked,
        untracked_orders=stored.untracked,
    )


def _open_orders_conflict(environment: str, open_orders: int) -> Conflict:
    return Conflict(
        f"{open_orders} order(s) or position(s) are still open on this {environment} account: close them "
        "first, or send confirm_open_orders: true to disconnect anyway (they are then no longer tracked "
        "until the same API key is connected again)",
        details={"environment": environment, "open_orders": open_orders},
    )


async def list_accounts(db: Database, caller: Caller, user_id: str) -> list[AccountRecord]:
    """The caller's accounts, masked, read as the caller (RLS shows nobody else's)."""
    return await accounts_store.list_accounts(db, caller, user_id)


@dataclass(frozen=True, slots=True)
class Disconnection:
    """A deleted account, and how many of its open orders and positions were marked ``untracked``."""

    account_id: str
    untracked_orders: int


async def disconnect_account(
    db: Database, caller: Caller, user_id: str, environment: str, *, confirm_open_orders: bool = False
) -> Disconnection:
    """Delete the caller's account for ``environment`` as the caller. NotFound if none.

    The rule (README "Execution"): while the account has open orders or positions, the disconnect is
    refused (Conflict, with their count) unless ``confirm_open_orders``. Confirmed, they are marked
    ``untracked``, each with a ``trade_logs`` event, and no longer count as open positions; connecting
    the same exchange account again (same environment and key hint) re-links them.
    """
    deletion = await accounts_store.delete_account(
        db,
        caller,
        user_id=user_id,
        exchange=EXCHANGE,
        environment=environment,
        confirm_open_orders=confirm_open_orders,
    )
    if deletion.refused:
        raise _open_orders_conflict(environment, deletion.open_orders)
    if deletion.account_id is None:
        raise NotFound(f"no {environment} trading account is connected", details={"environment": environment})
    return Disconnection(deletion.account_id, deletion.untracked)
