"""``exchange_leverage_memo``: the leverage each account was last set to per symbol. Service only (RLS).

One row per (account, symbol), upserted when the executor has set leverage on the exchange (or the
exchange said it already was: 110043). ``key_fingerprint`` names the keys it was set with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from lib.db.session import Caller, Database

_SERVICE = Caller.service()

_READ = (
    "select account_id, leverage, key_fingerprint from exchange_leverage_memo "
    "where symbol = %s and account_id = any(%s::uuid[])"
)

_UPSERT = """
insert into exchange_leverage_memo as m (account_id, symbol, leverage, key_fingerprint, set_at)
values (%(account_id)s, %(symbol)s, %(leverage)s, %(fingerprint)s, %(at)s)
on conflict (account_id, symbol) do update set
  leverage = excluded.leverage, key_fingerprint = excluded.key_fingerprint, set_at = excluded.set_at
"""

_FORGET = "delete from exchange_leverage_memo where account_id = %s and symbol = %s"


@dataclass(frozen=True, slots=True)
class MemoEntry:
    """What the memo knows of one account's symbol: the leverage, and the keys it was set with."""

    leverage: int
    key_fingerprint: str


async def read(db: Database, account_ids: Sequence[UUID], symbol: str) -> dict[UUID, MemoEntry]:
    """The memo of ``symbol`` for each of ``account_ids`` that has one (one statement)."""
    if not account_ids:
        return {}
    async with db.read(_SERVICE) as conn:
        rows = await (await conn.execute(_READ, (symbol, list(account_ids)))).fetchall()
    return {
        UUID(str(r["account_id"])): MemoEntry(int(r["leverage"]), str(r["key_fingerprint"])) for r in rows
    }


async def remember(
    db: Database, account_id: UUID, symbol: str, leverage: int, fingerprint: str, *, at: datetime
) -> None:
    """Record that ``account_id``'s ``symbol`` is at ``leverage`` on the exchange."""
    params = {
        "account_id": account_id,
        "symbol": symbol,
        "leverage": leverage,
        "fingerprint": fingerprint,
        "at": at,
    }
    async with db.write(_SERVICE) as conn:
        await conn.execute(_UPSERT, params)


async def forget(db: Database, account_id: UUID, symbol: str) -> None:
    """Drop the memo of one account's symbol (its leverage is no longer known)."""
    async with db.write(_SERVICE) as conn:
        await conn.execute(_FORGET, (account_id, symbol))
