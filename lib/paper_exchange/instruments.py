"""Trading filters of each replayed symbol, as Bybit sets them for its USDT linear perpetuals, and their JSON.

The paper exchange replays USDT-quoted pairs only (a data folder with another quote coin is refused: its
prices would read as USDT). Bybit publishes filters per symbol; the replayed data does not carry them, so
they are derived, deterministically, from the symbol's median close ``p`` over its whole data file, with
the rules Bybit's own tables follow:

- ``tickSize``: prices carry five significant digits, six from 1,000 USDT up, as Bybit's largest
  contracts do: 10^(floor(log10 p) - 4), or - 5 at p >= 1000 (BTCUSDT at ~62,000 ticks 0.1, ETHUSDT at
  ~3,100 ticks 0.01, DOGEUSDT at 0.12 ticks 0.00001, PEPEUSDT at 0.0000078 ticks 0.0000000001);
- ``qtyStep`` = 0.0001 / ``tickSize``: one step of quantity times one tick of price is worth 0.0001 USDT,
  the product Bybit's tables show for BTCUSDT (0.001 x 0.1), ETHUSDT (0.01 x 0.01) or LINKUSDT
  (0.1 x 0.001). A step is then worth 1 to 10 USDT (10 to 100 from 1,000 USDT up: BTC 0.001 = ~62 USDT);
  ``minOrderQty`` is one step, as on Bybit. A spot pair trades in finer units, as Bybit's do:
  ``basePrecision`` is a thousandth of the step (BTCUSDT 0.000001), its ``minOrderQty`` one step;
- ``maxOrderQty`` = ``maxMktOrderQty`` = the largest power of ten worth at most 1,000,000 USDT;
- ``minNotionalValue`` (linear) = ``minOrderAmt`` (spot) = 5 USDT, ``maxOrderAmt`` (spot) = 1,000,000;
- ``leverageFilter``: from 1 in steps of 0.01 to 100 for BTCUSDT and ETHUSDT, 50 for the other large
  pairs listed in :data:`LEVERAGE_50`, 25 for everything else; new positions start at 10x (or the
  maximum, if lower).

``launchTime`` is the symbol's first candle. The data are spot candles from another exchange, so a
replayed price may carry one more decimal than the tick: orders are checked against the tick, trades
happen at the data's prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lib.errors import ConfigError
from lib.paper_exchange.numbers import fmt

SETTLE_COIN = "USDT"
CATEGORIES = ("linear", "spot")
MIN_NOTIONAL = Decimal(5)
MAX_NOTIONAL = Decimal(1_000_000)
#: One qty step times one tick: the smallest change of an order's value.
STEP_VALUE = Decimal("0.0001")
#: A spot pair's quantity step against its contract's (BTCUSDT: 0.000001 against 0.001).
SPOT_PRECISION = Decimal("0.001")
#: From this price up a contract's tick has six significant digits instead of five.
FINE_TICK_FROM = Decimal(1000)
MIN_LEVERAGE = Decimal(1)
LEVERAGE_STEP = Decimal("0.01")
DEFAULT_LEVERAGE = Decimal(10)
MAX_LEVERAGE_BY_SYMBOL = {"BTCUSDT": Decimal(100), "ETHUSDT": Decimal(100)}
#: Large pairs Bybit lets trade at 50x: the most traded pairs of the bundled data, but for the four
#: smallest or most volatile of them (1000SATS, BONK, JASMY, SUN), which stay at 25x.
LEVERAGE_50 = frozenset(
    {
        "AAVEUSDT",
        "APTUSDT",
        "ARBUSDT",
        "AVAXUSDT",
        "BCHUSDT",
        "CRVUSDT",
        "DOGEUSDT",
        "FETUSDT",
        "FTMUSDT",
        "LINKUSDT",
        "OPUSDT",
        "PENDLEUSDT",
        "PEPEUSDT",
        "RUNEUSDT",
        "SEIUSDT",
        "SOLUSDT",
        "SUIUSDT",
        "TIAUSDT",
        "XRPUSDT",
    }
)
DEFAULT_MAX_LEVERAGE = Decimal(25)


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
    max_leverage: Decimal = DEFAULT_MAX_LEVERAGE

    @property
    def price_scale(self) -> int:
        """Number of decimals of the tick size."""
        exponent = self.tick_size.normalize().as_tuple().exponent
        return max(0, -exponent) if isinstance(exponent, int) else 0

    @property
    def base_precision(self) -> Decimal:
        """The spot pair's quantity step (``basePrecision``): a thousandth of the contract's."""
        return (self.qty_step * SPOT_PRECISION).normalize()

    @property
    def default_leverage(self) -> Decimal:
        """The leverage of a position nobody set one for: 10x, or the maximum if that is lower."""
        return min(DEFAULT_LEVERAGE, self.max_leverage)


def split_symbol(symbol: str) -> tuple[str, str]:
    """``(base, "USDT")`` of a USDT pair such as ETHUSDT; ConfigError for any other quote coin."""
    if symbol.endswith(SETTLE_COIN) and len(symbol) > len(SETTLE_COIN):
        return symbol[: -len(SETTLE_COIN)], SETTLE_COIN
    raise ConfigError(
        f"the paper exchange replays USDT-quoted pairs only, and {symbol!r} is not one: "
        "its prices would be read as USDT"
    )


def _power_of_ten(exponent: int) -> Decimal:
    return Decimal(1).scaleb(exponent)


def max_leverage_of(symbol: str) -> Decimal:
    """The ``leverageFilter.maxLeverage`` of ``symbol`` (see the module docstring)."""
    if symbol in MAX_LEVERAGE_BY_SYMBOL:
        return MAX_LEVERAGE_BY_SYMBOL[symbol]
    return Decimal(50) if symbol in LEVERAGE_50 else DEFAULT_MAX_LEVERAGE


def tick_size_for(reference_price: Decimal) -> Decimal:
    """Five significant digits of ``reference_price``, six from 1,000 up."""
    digits = 5 if reference_price >= FINE_TICK_FROM else 4
    return _power_of_ten(reference_price.adjusted() - digits)


def derive_instrument(symbol: str, reference_price: Decimal, launch_time_ms: int) -> Instrument:
    """The filters of ``symbol`` from its reference (median) price; see the module docstring."""
    if reference_price <= 0:
        raise ValueError(f"{symbol}: reference price must be positive, got {reference_price}")
    base, quote = split_symbol(symbol)
    tick = tick_size_for(reference_price)
    step = (STEP_VALUE / tick).normalize()
    max_qty = _power_of_ten((MAX_NOTIONAL / reference_price).adjusted())
    return Instrument(
        symbol=symbol,
        base_coin=base,
        quote_coin=quote,
        tick_size=tick,
        qty_step=step,
        min_order_qty=step,
        max_order_qty=max(max_qty, step),
        min_notional=MIN_NOTIONAL,
        max_notional=MAX_NOTIONAL,
        launch_time_ms=launch_time_ms,
        max_leverage=max_leverage_of(symbol),
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
            "maxLeverage": f"{inst.max_leverage:.2f}",
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
            "basePrecision": fmt(inst.base_precision),
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
