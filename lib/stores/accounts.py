"""``user_trading_accounts``: users' exchange accounts with their encrypted keys.

Who may do what is the migration's (users-and-trading): the owner reads the non-secret columns
(:data:`PUBLIC_COLUMNS`, exactly the fields of :class:`AccountRecord`) and may delete; the ciphertexts
are written and read only as ``service_role``. Besides the account's own reads and writes, this module
answers which account an order goes to (:func:`eligible_targets`, :func:`user_target`: an account
joined with its owner's preferences). The ciphertexts' key versions (rotation, key health) are
:mod:`lib.stores.account_keys`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from psycopg import sql

from lib.core.preferences import DEFAULT_PREFERENCES
from lib.core.vocabulary import Environment
from lib.db.session import Caller, Connection, Database
from lib.errors import DatabaseError
from lib.stores import orders as orders_store
from lib.stores.orders import OPEN_POSITION_SQL
from lib.stores.settings import LIVE_TRADING_ENABLED_SQL

_SERVICE = Caller.service()


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """One trading account, masked: everything but the keys."""

    id: str
    exchange: str
    environment: Environment
    key_hint: str
    key_version: int
    is_active: bool
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime


#: The columns a user may read, one per :class:`AccountRecord` field (the migration grants exactly
#: these, and no ciphertext); the id as text, as the record holds it.
PUBLIC_COLUMNS = sql.SQL(", ").join(
    sql.SQL("id::text as id") if f.name == "id" else sql.Identifier(f.name) for f in fields(AccountRecord)
)


@dataclass(frozen=True, slots=True)
class StoredAccount:
    """What a connect stored: the account, how many open orders of the API key it replaced were marked
    ``untracked``, and how many untracked orders of this key were re-linked to it."""

    record: AccountRecord
    relinked: int = 0
    untracked: int = 0


async def upsert_account(
    db: Database,
    caller: Caller,
    *,
    user_id: str,
    exchange: str,
    environment: str,
    api_key_encrypted: str,
    api_secret_encrypted: str,
    key_version: int,
    key_hint: str,
) -> StoredAccount:
    """Insert the account, or replace the keys of the user's existing one for ``environment`` (and
    activate it). ``caller`` must be allowed to write ciphertexts (``service_role``).

    Replacing the API key with another one (another key hint) marks the account's open orders and
    positions ``untracked`` (the untracked-orders migration's trigger). In the same transaction, the
    user's orders left ``untracked`` by the same exchange account (this environment, this key hint) are
    re-linked to it (:func:`lib.stores.orders.relink_untracked`).
    """
    query = sql.SQL(
        "insert into user_trading_accounts (user_id, exchange, environment, api_key_encrypted, "
        "api_secret_encrypted, key_version, key_hint, is_active) values (%s, %s, %s, %s, %s, %s, %s, true) "
        "on conflict (user_id, exchange, environment) do update set "
        "api_key_encrypted = excluded.api_key_encrypted, "
        "api_secret_encrypted = excluded.api_secret_encrypted, "
        "key_version = excluded.key_version, key_hint = excluded.key_hint, is_active = true "
        "returning {columns}"
    ).format(columns=PUBLIC_COLUMNS)
    params = (user_id, exchange, environment, api_key_encrypted, api_secret_encrypted, key_version, key_hint)
    async with db.write(caller) as conn:
        await _count_untracked(conn, confirmed=False)
        row = await (await conn.execute(query, params)).fetchone()
        assert row is not None, "insert ... returning always returns the row"
        untracked = await orders_store.untracked_now(conn)
        relinked = await orders_store.relink_untracked(
            conn, user_id=user_id, environment=environment, key_hint=key_hint, account_id=row["id"]
        )
    return StoredAccount(AccountRecord(**row), relinked=relinked, untracked=untracked)


async def _count_untracked(conn: Connection, *, confirmed: bool) -> None:
    """Tell the untracked-orders trigger whether the caller confirmed leaving open orders untracked (a
    delete needs it), and start its count of untracked rows at zero."""
    await conn.execute(
        "select set_config('aitradex.confirm_open_orders', %s, true), "
        "set_config('aitradex.untracked_orders', '0', true)",
        ("on" if confirmed else "off",),
    )


async def list_accounts(db: Database, caller: Caller, user_id: str) -> list[AccountRecord]:
    """The user's accounts, masked, by environment, read as ``caller`` (RLS shows only their own)."""
    query = sql.SQL(
        "select {columns} from user_trading_accounts where user_id = %s order by environment"
    ).format(columns=PUBLIC_COLUMNS)
    async with db.read(caller) as conn:
        rows = await (await conn.execute(query, (user_id,))).fetchall()
    return [AccountRecord(**row) for row in rows]


@dataclass(frozen=True, slots=True)
class Deletion:
    """What deleting an account did: ``account_id`` None when nothing was connected there; ``refused``
    when it still has ``open_orders`` and the caller did not confirm; else ``untracked`` rows."""

    account_id: str | None
    refused: bool = False
    open_orders: int = 0
    untracked: int = 0


async def delete_account(
    db: Database,
    caller: Caller,
    *,
    user_id: str,
    exchange: str,
    environment: str,
    confirm_open_orders: bool,
) -> Deletion:
    """Delete the user's account for ``environment`` as ``caller``.

    The database refuses while the account has open orders or positions, unless
    ``confirm_open_orders``; then they are marked ``untracked`` (the untracked-orders migration's trigger
    does both, whoever deletes, so no order leaves tracking unseen).
    """
    try:
        async with db.write(caller) as conn:
            await _count_untracked(conn, confirmed=confirm_open_orders)
            row = await (
                await conn.execute(
                    "delete from user_trading_accounts where user_id = %s and exchange = %s "
                    "and environment = %s returning id::text as id",
                    (user_id, exchange, environment),
                )
            ).fetchone()
            if row is None:
                return Deletion(account_id=None)
            untracked = await orders_store.untracked_now(conn)
        return Deletion(account_id=str(row["id"]), untracked=untracked)
    except DatabaseError as exc:
        if exc.details.get("sqlstate") != orders_store.OPEN_ORDERS_SQLSTATE:
            raise
    async with db.read(caller) as conn:
        open_orders = await orders_store.count_open_on_account(
            conn, user_id=user_id, exchange=exchange, environment=environment
        )
    return Deletion(account_id=None, refused=True, open_orders=open_orders)


async def touch_last_used(db: Database, account_ids: Sequence[UUID], at: datetime) -> None:
    """Note that orders were sent for these accounts at ``at``."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(
            "update user_trading_accounts set last_used_at = %s where id = any(%s)", (at, list(account_ids))
        )


# -- where an order goes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One user an order goes to: their account, with what sizing and the open-position rules need."""

    user_id: UUID
    account_id: UUID
    environment: str
    api_key_encrypted: str
    api_secret_encrypted: str
    risk_per_trade_pct: Decimal
    max_position_usd: Decimal
    leverage: int
    max_open_positions: int


_TARGETS_SQL = sql.SQL("""
with settings as (
  select coalesce({live_trading}, false) as live
)
select distinct on (p.user_id)
  p.user_id, a.id as account_id, a.environment, a.api_key_encrypted, a.api_secret_encrypted,
  p.risk_per_trade_pct, p.max_position_usd, p.leverage, p.max_open_positions
from trading_preferences p
join user_trading_accounts a on a.user_id = p.user_id and a.is_active
cross join settings s
where p.auto_trade_enabled
  and %(algorithm)s = any(p.algorithms)
  and %(timeframe)s = any(p.timeframes)
  and p.min_score <= %(score)s
  and (cardinality(p.symbol_allowlist) = 0 or %(symbol)s = any(p.symbol_allowlist))
  and not (%(symbol)s = any(p.symbol_blocklist))
  and (a.environment <> 'mainnet' or s.live)
  and not exists (
    select 1 from execution_orders o where o.user_id = p.user_id and o.signal_id = %(signal_id)s
  )
  and not exists (
    select 1 from execution_orders o
    where o.user_id = p.user_id and o.symbol = %(symbol)s and {open_position}
  )
  and (
    select count(*) from execution_orders o where o.user_id = p.user_id and {open_position}
  ) < p.max_open_positions
-- one account per user: the most recently connected one this deployment may trade
order by p.user_id, a.updated_at desc
""").format(open_position=OPEN_POSITION_SQL, live_trading=LIVE_TRADING_ENABLED_SQL)

_USER_TARGET_SQL = sql.SQL("""
with settings as (
  select coalesce({live_trading}, false) as live
)
select a.user_id, a.id as account_id, a.environment, a.api_key_encrypted, a.api_secret_encrypted,
       coalesce(p.risk_per_trade_pct, %(risk_per_trade_pct)s) as risk_per_trade_pct,
       coalesce(p.max_position_usd, %(max_position_usd)s) as max_position_usd,
       coalesce(p.leverage, %(leverage)s::integer) as leverage,
       coalesce(p.max_open_positions, %(max_open_positions)s::integer) as max_open_positions,
       coalesce(p.daily_loss_limit_pct, %(daily_loss_limit_pct)s) as daily_loss_limit_pct
from user_trading_accounts a
left join trading_preferences p on p.user_id = a.user_id
cross join settings s
where a.user_id = %(user_id)s and a.is_active and (a.environment <> 'mainnet' or s.live)
order by a.updated_at desc
limit 1
""").format(live_trading=LIVE_TRADING_ENABLED_SQL)


async def eligible_targets(
    db: Database, *, signal_id: UUID, symbol: str, algorithm: str, timeframe: str, score: Decimal
) -> list[Target]:
    """The users a signal goes to, one account each (the most recently connected one).

    Auto-trade on; the signal's algorithm and timeframe among theirs; its score at least their minimum;
    the symbol allowed and not blocked; an active account the deployment may trade (mainnet only while
    live trading is enabled); no order for this signal yet; no open position in the symbol; fewer open
    positions than their maximum.
    """
    params = {
        "algorithm": algorithm,
        "timeframe": timeframe,
        "score": score,
        "symbol": symbol,
        "signal_id": signal_id,
    }
    async with db.read(_SERVICE) as conn:
        rows = await (await conn.execute(_TARGETS_SQL, params)).fetchall()
    return [Target(**row) for row in rows]


async def user_target(db: Database, user_id: UUID) -> tuple[Target, Decimal] | None:
    """The user's most recently connected tradable account with their preferences (the defaults if never
    saved), and their daily loss limit %; None if they have no account the deployment may trade."""
    defaults = DEFAULT_PREFERENCES
    params = {
        "user_id": user_id,
        "risk_per_trade_pct": defaults.risk_per_trade_pct,
        "max_position_usd": defaults.max_position_usd,
        "leverage": defaults.leverage,
        "max_open_positions": defaults.max_open_positions,
        "daily_loss_limit_pct": defaults.daily_loss_limit_pct,
    }
    async with db.read(_SERVICE) as conn:
        row = await (await conn.execute(_USER_TARGET_SQL, params)).fetchone()
    if row is None:
        return None
    limit = Decimal(row.pop("daily_loss_limit_pct"))
    return Target(**row), limit
