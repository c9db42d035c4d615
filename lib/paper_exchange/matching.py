"""How a completed candle fills a resting limit order or triggers a position's take-profit / stop-loss.

Only the candle's open, high and low are known, not the path between them, so the rules are explicit:

- a buy limit fills when the low trades at or below its price, at its price, or at the open if the
  candle opened below it (a gap fills at the better, actual price); sells mirror this;
- a long's stop-loss triggers when the low reaches it, a long's take-profit when the high reaches it
  (shorts mirror). When both are inside one candle the stop-loss is assumed to have come first: the
  conservative choice, since the order of the two touches is unknowable from OHLC;
- a triggered stop fills at its trigger price, or at the open if the candle gapped through it
  (a stop-loss never fills better than it should; a take-profit gets the better gap price);
- every trigger uses the replayed trade price (``tpTriggerBy``/``slTriggerBy`` of ``MarkPrice`` or
  ``IndexPrice`` are accepted and evaluated on the same price: the replay has only one).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lib.paper_exchange.market import Candle
from lib.paper_exchange.models import BUY

STOP_LOSS = "StopLoss"
TAKE_PROFIT = "TakeProfit"


@dataclass(frozen=True, slots=True)
class Trigger:
    """A take-profit or stop-loss that a candle reached, and the price it fills at."""

    kind: str
    price: Decimal


def limit_fill_price(side: str, limit: Decimal, candle: Candle) -> Decimal | None:
    """The price a resting limit order fills at during ``candle``, or ``None`` if it does not fill."""
    if side == BUY:
        return min(limit, candle.open) if candle.low <= limit else None
    return max(limit, candle.open) if candle.high >= limit else None


def tpsl_trigger(
    position_side: str, take_profit: Decimal | None, stop_loss: Decimal | None, candle: Candle
) -> Trigger | None:
    """The take-profit or stop-loss of a position on ``position_side`` that ``candle`` reaches, if any."""
    long = position_side == BUY
    if stop_loss is not None:
        if long and candle.low <= stop_loss:
            return Trigger(STOP_LOSS, min(stop_loss, candle.open))
        if not long and candle.high >= stop_loss:
            return Trigger(STOP_LOSS, max(stop_loss, candle.open))
    if take_profit is not None:
        if long and candle.high >= take_profit:
            return Trigger(TAKE_PROFIT, max(take_profit, candle.open))
        if not long and candle.low <= take_profit:
            return Trigger(TAKE_PROFIT, min(take_profit, candle.open))
    return None
