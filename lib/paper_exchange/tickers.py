"""``/v5/market/tickers`` from the replay window: the last 24 hours of candles before the replay time.

``lastPrice`` is the replay price; the order book is synthetic, one tick either side of it
(``bid1Size``/``ask1Size`` a nominal 1,000 steps). Mark and index price equal the last price; funding and
open interest are zero: the replay has only trades.

The 24-hour statistics read the candles' texts (:class:`lib.paper_exchange.candle_text.CandleText`):
the high and low are found on the float arrays, volume and turnover are exact prefix-sum differences, so
a ticker costs a few numpy calls instead of a ``Decimal`` loop over 288 candles; the texts are the ones
that loop gave.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np

from lib.paper_exchange.instruments import Instrument
from lib.paper_exchange.market import MarketData
from lib.paper_exchange.numbers import ceil_to, dec, floor_to, fmt

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_PCNT = Decimal("0.000001")


def ticker(market: MarketData, inst: Instrument, category: str, now_ms: int) -> dict[str, Any] | None:
    """The ticker of ``inst`` at ``now_ms`` in Bybit's shape for ``category``; None before its first trade."""
    last = market.price(inst.symbol, now_ms)
    if last is None:
        return None
    series = market.series(inst.symbol)
    window = market.completed_between(inst.symbol, now_ms - DAY_MS, now_ms)
    forming = market.forming_index(inst.symbol, now_ms)
    text = market.text(inst.symbol, max(window.stop, 0 if forming is None else forming + 1))
    last_text = fmt(last)
    high_text = low_text = last_text
    if len(window) and not text.ordered:  # a NaN price: Decimal's comparisons, as always
        high_text = fmt(max([dec(series.high[i]) for i in window] + [last]))
        low_text = fmt(min([dec(series.low[i]) for i in window] + [last]))
    elif len(window):
        # The window's extreme against the last price, found on the floats (same order as the decimals).
        top = window.start + int(np.argmax(series.high[window.start : window.stop]))
        bottom = window.start + int(np.argmin(series.low[window.start : window.stop]))
        if dec(series.high[top]) > last:
            high_text = text.high[top]
        if dec(series.low[bottom]) < last:
            low_text = text.low[bottom]
    (volume,), (turnover,) = text.sum_texts(np.array([window.start]), np.array([window.stop]))
    first = window.start if len(window) else forming
    prev_24h = dec(series.open[first]) if first is not None else last
    change = (last / prev_24h - 1).quantize(_PCNT) if prev_24h else Decimal(0)
    bid = floor_to(last, inst.tick_size)
    bid = bid - inst.tick_size if bid == last else bid
    ask = ceil_to(last, inst.tick_size)
    ask = ask + inst.tick_size if ask == last else ask
    book_size = fmt(inst.qty_step * 1000)
    item: dict[str, Any] = {
        "symbol": inst.symbol,
        "lastPrice": last_text,
        "bid1Price": fmt(bid),
        "bid1Size": book_size,
        "ask1Price": fmt(ask),
        "ask1Size": book_size,
        "prevPrice24h": fmt(prev_24h),
        "price24hPcnt": fmt(change),
        "highPrice24h": high_text,
        "lowPrice24h": low_text,
        "turnover24h": turnover,
        "volume24h": volume,
    }
    if category == "spot":
        item["usdIndexPrice"] = fmt(last)
        return item
    hour = market.completed_between(inst.symbol, now_ms - HOUR_MS, now_ms)
    prev_1h = dec(series.open[hour.start]) if len(hour) else last
    item.update(
        {
            "indexPrice": fmt(last),
            "markPrice": fmt(last),
            "prevPrice1h": fmt(prev_1h),
            "openInterest": "0",
            "openInterestValue": "0",
            "fundingRate": "0",
            "nextFundingTime": "0",
            "predictedDeliveryPrice": "",
            "basisRate": "",
            "deliveryFeeRate": "",
            "deliveryTime": "0",
            "basis": "",
        }
    )
    return item
