"""What one fill does to a position or a spot wallet: the arithmetic, nothing else.

Linear (one-way): a fill in the position's direction (or from flat) grows it at a volume-weighted
average price; a fill against it closes up to its size, realising ``closed * (exit - entry)`` for a long
(the opposite for a short), and any excess opens a position the other way at the fill price. Fees are
paid in the settle coin and count in realised P&L, as Bybit's ``cumRealisedPnl`` does. Spot: the base
coin moves one way, its value (and the fee) in the settle coin the other.
"""

from __future__ import annotations

from decimal import Decimal

from lib.paper_exchange.instruments import SETTLE_COIN
from lib.paper_exchange.models import BUY, Order, Position


def apply_linear_fill(
    position: Position, order: Order, qty: Decimal, price: Decimal, fee: Decimal, now_ms: int
) -> Decimal:
    """Move ``position`` by a fill of ``order``; returns what the wallet gains (realised P&L minus fee).

    A take-profit / stop-loss attached to the order is set on the position if it is still open.
    """
    signed = position.signed_size
    realised = Decimal(0)
    if signed == 0 or (signed > 0) == (order.side == BUY):
        held = abs(signed)
        if held == 0:
            position.created_time_ms = now_ms
            position.cur_realised_pnl = Decimal(0)
        position.avg_price = (held * position.avg_price + qty * price) / (held + qty)
        position.size = held + qty
        position.side = order.side
    else:
        closing = min(qty, abs(signed))
        realised = closing * (price - position.avg_price) * (1 if signed > 0 else -1)
        remaining, flipped = abs(signed) - closing, qty - closing
        if remaining > 0:
            position.size = remaining
        else:
            _clear_stops(position)
            position.side, position.size, position.avg_price = "", Decimal(0), Decimal(0)
            if flipped > 0:
                position.side, position.size, position.avg_price = order.side, flipped, price
                position.created_time_ms = now_ms
    if position.size > 0 and order.take_profit is not None:
        position.take_profit, position.tp_trigger_by = order.take_profit, order.tp_trigger_by
    if position.size > 0 and order.stop_loss is not None:
        position.stop_loss, position.sl_trigger_by = order.stop_loss, order.sl_trigger_by
    position.cum_realised_pnl += realised - fee
    position.cur_realised_pnl += realised - fee
    position.updated_time_ms = now_ms
    return realised - fee


def _clear_stops(position: Position) -> None:
    position.take_profit = position.stop_loss = None
    position.tp_trigger_by = position.sl_trigger_by = ""


def apply_spot_fill(
    wallet: dict[str, Decimal], base_coin: str, side: str, qty: Decimal, price: Decimal, fee: Decimal
) -> None:
    """Move ``qty`` of ``base_coin`` against its value in the settle coin; the fee is paid in settle coin."""
    sign = 1 if side == BUY else -1
    wallet[base_coin] = wallet.get(base_coin, Decimal(0)) + sign * qty
    wallet[SETTLE_COIN] = wallet.get(SETTLE_COIN, Decimal(0)) - sign * qty * price - fee
