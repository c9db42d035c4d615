"""Trading filters the paper exchange invents for each replayed symbol, and their Bybit JSON.

The bundled pairs have no published Bybit filters (they are 2018 BTC-quoted pairs), so they are derived,
deterministically, from the symbol's median close ``p`` over the whole data file:

- ``tickSize`` = 10^(floor(log10 p) - 4): prices carry five significant digits (ETHBTC at 0.1 ticks 0.00001);
- ``qtyStep`` (spot: ``basePrecision``) = the smallest power of ten whose notional at ``p`` is at least
  0.001, and ``minOrderQty`` = 10 steps (so a notional of at least 0.01);
- ``maxOrderQty`` = ``maxMktOrderQty`` = the largest power of ten whose notional at ``p`` is at most
  1,000,000;
- ``minNotionalValue`` (linear) = ``minOrderAmt`` (spot) = 5, ``maxOrderAmt`` (spot) = 1,000,000;
- leverage from 1 to 25 in steps of 0.01; new positions start at 10x.

Simplification, on purpose: prices are quoted in BTC, but one unit of quote is treated as one unit of the
settle coin (``USDT``). Linear contracts settle in USDT, a notional of ``qty * price`` is that many USDT,
and spot trades debit and credit USDT for the quote side. This keeps the numbers of a real USDT account
(10,000 balance, 5 USDT minimum order) while replaying real price paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lib.paper_exchange.numbers import fmt

SETTLE_COIN = "USDT"
CATEGORIES = ("linear", "spot")
MIN_NOTIONAL = Decimal(5)
MAX_NOTIONAL = Decimal(1_000_000)
STEP_NOTIONAL = Decimal("0.001")
MIN_QTY_STEPS = 10
MIN_LEVERAGE = Decimal(1)
MAX_LEVERAGE = Decimal(25)
LEVERAGE_STEP = Decimal("0.01")
DEFAULT_LEVERAGE = Decimal(10)
_QUOTES = ("USDT", "USDC", "BTC", "ETH", "BNB", "EUR")


@dataclass(frozen=True, slots=True)
class Instrument:
    """One symbol's filters; the same numbers serve its spot pair and its linear contract."""

    symbol: str
    base_coin: str
    quote_coin: str
    tick_size: Decimal
    qty_step: Decimal
    min_order_qty: Decimal
    max_order_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    launch_time_ms: int

    @property
    def price_scale(self) -> int:
        """Number of decimals of the tick size."""
        exponent = self.tick_size.normalize().as_tuple().exponent
        return max(0, -exponent) if isinstance(exponent, int) else 0


def split_symbol(symbol: str) -> tuple[str, str]:
    """``(base, quote)`` of a pair name such as ETHBTC."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol[:-3], symbol[-3:]


def _power_of_ten(exponent: int) -> Decimal:
    return Decimal(1).scaleb(exponent)


def derive_instrument(symbol: str, reference_price: Decimal, launch_time_ms: int) -> Instrument:
    """The filters of ``symbol`` from its reference (median) price; see the module docstring."""
    if reference_price <= 0:
        raise ValueError(f"{symbol}: reference price must be positive, got {reference_price}")
    magnitude = reference_price.adjusted()  # floor(log10(price))
    tick = _power_of_ten(magnitude - 4)
    wanted = STEP_NOTIONAL / reference_price
    step = _power_of_ten(wanted.adjusted())
    if step < wanted:
        step = step.scaleb(1)
    max_qty = _power_of_ten((MAX_NOTIONAL / reference_price).adjusted())
    base, quote = split_symbol(symbol)
    return Instrument(
        symbol=symbol,
        base_coin=base,
        quote_coin=quote,
        tick_size=tick,
        qty_step=step,
        min_order_qty=step * MIN_QTY_STEPS,
        max_order_qty=max(max_qty, step * MIN_QTY_STEPS),
        min_notional=MIN_NOTIONAL,
        max_notional=MAX_NOTIONAL,
        launch_time_ms=launch_time_ms,
    )


def linear_info(inst: Instrument) -> dict[str, Any]:
    """One element of ``/v5/market/instruments-info?category=linear``."""
    return {
        "symbol": inst.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": inst.base_coin,
        "quoteCoin": inst.quote_coin,
        "settleCoin": SETTLE_COIN,
        "launchTime": str(inst.launch_time_ms),
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(inst.price_scale),
        "leverageFilter": {
            "minLeverage": fmt(MIN_LEVERAGE),
            "maxLeverage": f"{MAX_LEVERAGE:.2f}",
            "leverageStep": fmt(LEVERAGE_STEP),
        },
        "priceFilter": {
            "minPrice": fmt(inst.tick_size),
            "maxPrice": fmt(inst.tick_size.scaleb(9) - inst.tick_size),
            "tickSize": fmt(inst.tick_size),
        },
        "lotSizeFilter": {
            "maxOrderQty": fmt(inst.max_order_qty),
            "minOrderQty": fmt(inst.min_order_qty),
            "qtyStep": fmt(inst.qty_step),
            "postOnlyMaxOrderQty": fmt(inst.max_order_qty),
            "maxMktOrderQty": fmt(inst.max_order_qty),
            "minNotionalValue": fmt(inst.min_notional),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "copyTrading": "none",
        "upperFundingRate": "0.00375",
        "lowerFundingRate": "-0.00375",
        "isPreListing": False,
        "preListingInfo": None,
    }


def spot_info(inst: Instrument) -> dict[str, Any]:
    """One element of ``/v5/market/instruments-info?category=spot``."""
    return {
        "symbol": inst.symbol,
        "baseCoin": inst.base_coin,
        "quoteCoin": inst.quote_coin,
        "innovation": "0",
        "status": "Trading",
        "marginTrading": "none",
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": fmt(inst.qty_step),
            "quotePrecision": "0.00000001",
            "minOrderQty": fmt(inst.min_order_qty),
            "maxOrderQty": fmt(inst.max_order_qty),
            "minOrderAmt": fmt(inst.min_notional),
            "maxOrderAmt": fmt(inst.max_notional),
        },
        "priceFilter": {"tickSize": fmt(inst.tick_size)},
        "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"},
    }


def instrument_info(category: str, inst: Instrument) -> dict[str, Any]:
    """The instruments-info element of ``inst`` in ``category`` (``linear`` or ``spot``)."""
    return linear_info(inst) if category == "linear" else spot_info(inst)
