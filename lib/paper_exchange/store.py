"""The state file: the book and the replay clock as JSON, written atomically after every change.

Accounts (with their API secrets: this is a local paper exchange, the file lives in the git-ignored
``.aitradex/`` folder and is created readable by its owner only), orders, positions, the orderLinkIds
seen and the replay time. A write goes to a temporary file in the same folder, is flushed to disk, then
``os.replace``d over the old file, so a crash leaves either the old state or the new one, never half.
Decimals are stored as strings, so nothing is rounded on the way.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from lib.errors import ConfigError
from lib.paper_exchange.models import Account, BookState, Order, Position

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class SavedState:
    """What a state file holds."""

    book: BookState
    replay_ms: int


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def _optional_dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _order_to_json(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "order_link_id": order.order_link_id,
        "account_id": order.account_id,
        "category": order.category,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "qty": _text(order.qty),
        "price": _text(order.price),
        "time_in_force": order.time_in_force,
        "reduce_only": order.reduce_only,
        "close_on_trigger": order.close_on_trigger,
        "take_profit": _text(order.take_profit),
        "stop_loss": _text(order.stop_loss),
        "tp_trigger_by": order.tp_trigger_by,
        "sl_trigger_by": order.sl_trigger_by,
        "market_unit": order.market_unit,
        "last_price_on_created": _text(order.last_price_on_created),
        "created_time_ms": order.created_time_ms,
        "updated_time_ms": order.updated_time_ms,
        "status": order.status,
        "cum_exec_qty": _text(order.cum_exec_qty),
        "cum_exec_value": _text(order.cum_exec_value),
        "cum_exec_fee": _text(order.cum_exec_fee),
        "avg_price": _text(order.avg_price),
        "stop_order_type": order.stop_order_type,
        "create_type": order.create_type,
        "cancel_type": order.cancel_type,
        "reject_reason": order.reject_reason,
    }


_ORDER_DECIMALS = ("qty", "last_price_on_created", "cum_exec_qty", "cum_exec_value", "cum_exec_fee")
_ORDER_OPTIONAL_DECIMALS = ("price", "take_profit", "stop_loss", "avg_price")


def _order_from_json(raw: dict[str, Any]) -> Order:
    values = dict(raw)
    for name in _ORDER_DECIMALS:
        values[name] = _dec(values[name])
    for name in _ORDER_OPTIONAL_DECIMALS:
        values[name] = _optional_dec(values[name])
    return Order(**values)


def _position_to_json(position: Position) -> dict[str, Any]:
    return {
        "symbol": position.symbol,
        "leverage": _text(position.leverage),
        "side": position.side,
        "size": _text(position.size),
        "avg_price": _text(position.avg_price),
        "take_profit": _text(position.take_profit),
        "stop_loss": _text(position.stop_loss),
        "tp_trigger_by": position.tp_trigger_by,
        "sl_trigger_by": position.sl_trigger_by,
        "cum_realised_pnl": _text(position.cum_realised_pnl),
        "cur_realised_pnl": _text(position.cur_realised_pnl),
        "created_time_ms": position.created_time_ms,
        "updated_time_ms": position.updated_time_ms,
    }


def _position_from_json(raw: dict[str, Any]) -> Position:
    values = dict(raw)
    for name in ("leverage", "size", "avg_price", "cum_realised_pnl", "cur_realised_pnl"):
        values[name] = _dec(values[name])
    for name in ("take_profit", "stop_loss"):
        values[name] = _optional_dec(values[name])
    return Position(**values)


def _account_to_json(account: Account) -> dict[str, Any]:
    return {
        "account_id": account.account_id,
        "api_key": account.api_key,
        "api_secret": account.api_secret,
        "created_time_ms": account.created_time_ms,
        "wallet": {coin: str(balance) for coin, balance in account.wallet.items()},
        "leverage": {symbol: str(value) for symbol, value in account.leverage.items()},
        "positions": {symbol: _position_to_json(p) for symbol, p in account.positions.items()},
        "order_ids": list(account.order_ids),
        "order_link_ids": dict(account.order_link_ids),
    }


def _account_from_json(raw: dict[str, Any]) -> Account:
    return Account(
        account_id=raw["account_id"],
        api_key=raw["api_key"],
        api_secret=raw["api_secret"],
        created_time_ms=raw["created_time_ms"],
        wallet={coin: _dec(v) for coin, v in raw["wallet"].items()},
        leverage={symbol: _dec(v) for symbol, v in raw["leverage"].items()},
        positions={symbol: _position_from_json(p) for symbol, p in raw["positions"].items()},
        order_ids=list(raw["order_ids"]),
        order_link_ids=dict(raw["order_link_ids"]),
    )


def to_json(state: SavedState) -> dict[str, Any]:
    """The JSON document of ``state``."""
    return {
        "version": FORMAT_VERSION,
        "replay_ms": state.replay_ms,
        "processed_until_ms": state.book.processed_until_ms,
        "accounts": [_account_to_json(a) for a in state.book.accounts.values()],
        "orders": [_order_to_json(o) for o in state.book.orders.values()],
    }


def from_json(document: dict[str, Any]) -> SavedState:
    """The state in a JSON document written by :func:`to_json`."""
    if document.get("version") != FORMAT_VERSION:
        raise ConfigError(f"paper exchange state file has version {document.get('version')!r}, expected 1")
    accounts = [_account_from_json(raw) for raw in document["accounts"]]
    orders = [_order_from_json(raw) for raw in document["orders"]]
    book = BookState(
        accounts={a.account_id: a for a in accounts},
        orders={o.order_id: o for o in orders},
        processed_until_ms=int(document["processed_until_ms"]),
    )
    return SavedState(book=book, replay_ms=int(document["replay_ms"]))


def save(path: Path, state: SavedState) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, ``os.replace``), owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_json(state), separators=(",", ":"))
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o600)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def set_aside(path: Path, replay_ms: int) -> Path:
    """Rename the state file at ``path`` out of the way (``<name>.<replay_ms>.stale``); its new path."""
    aside = path.with_name(f"{path.name}.{replay_ms}.stale")
    os.replace(path, aside)
    return aside


def load(path: Path) -> SavedState | None:
    """The state saved at ``path``, or ``None`` if there is no file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"paper exchange state file {path} is unreadable: {exc}") from exc
