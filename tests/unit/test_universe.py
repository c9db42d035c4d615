"""The scanner's universe: scanner.universe applied to tickers and instruments."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from lib.errors import ConfigError
from lib.exchange.models import Instrument, Ticker
from lib.services.scanning.universe import UniverseFilter, select_universe


def ticker(symbol: str, turnover: float, last_price: float = 1.0) -> Ticker:
    return Ticker.from_bybit({"symbol": symbol, "lastPrice": str(last_price), "turnover24h": str(turnover)})


def instrument(symbol: str, quote: str = "USDT", status: str = "Trading") -> Instrument:
    return Instrument(
        symbol=symbol,
        category="linear",
        status=status,
        base=symbol.removesuffix(quote),
        quote=quote,
        settle=quote,
        tick_size=Decimal("0.01"),
        min_price=None,
        max_price=None,
        qty_step=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        max_qty=Decimal(1000),
        max_market_qty=None,
        min_notional=Decimal(5),
        max_leverage=None,
    )


TICKERS = [
    ticker("BTCUSDT", 9_000_000),
    ticker("ETHUSDT", 5_000_000),
    ticker("SOLUSDT", 1_000_000),
    ticker("DOGEUSDT", 50_000),
    ticker("BTCPERP", 3_000_000),  # a USDC perpetual
]
INSTRUMENTS = [
    instrument("BTCUSDT"),
    instrument("ETHUSDT"),
    instrument("SOLUSDT"),
    instrument("DOGEUSDT"),
    instrument("BTCPERP", quote="USDC"),
]


def test_everything_passes_the_seeds_open_filter_most_traded_first() -> None:
    chosen = select_universe(TICKERS, INSTRUMENTS, UniverseFilter())

    assert chosen.symbols == ("BTCUSDT", "ETHUSDT", "BTCPERP", "SOLUSDT", "DOGEUSDT")
    assert chosen.considered == 5
    assert chosen.excluded == {}


def test_the_turnover_floor_drops_thinly_traded_symbols() -> None:
    chosen = select_universe(TICKERS, INSTRUMENTS, UniverseFilter(min_turnover_24h=1_000_000))

    assert chosen.symbols == ("BTCUSDT", "ETHUSDT", "BTCPERP", "SOLUSDT")
    assert chosen.excluded == {"low_turnover": 1}


def test_the_quote_filter_uses_the_instruments_quote_coin_not_the_name() -> None:
    chosen = select_universe(TICKERS, INSTRUMENTS, UniverseFilter(quote_coins=frozenset({"USDC"})))

    assert chosen.symbols == ("BTCPERP",)
    assert chosen.excluded == {"quote_coin": 4}


def test_blocklisted_symbols_are_never_chosen_whatever_their_turnover() -> None:
    chosen = select_universe(TICKERS, INSTRUMENTS, UniverseFilter(symbol_blocklist=frozenset({"BTCUSDT"})))

    assert "BTCUSDT" not in chosen.symbols
    assert chosen.excluded == {"blocklisted": 1}


def test_the_cap_keeps_the_most_traded_and_a_request_may_override_it() -> None:
    capped = select_universe(TICKERS, INSTRUMENTS, UniverseFilter(max_symbols=2))
    overridden = select_universe(TICKERS, INSTRUMENTS, UniverseFilter(max_symbols=2), max_symbols=3)

    assert capped.symbols == ("BTCUSDT", "ETHUSDT")
    assert capped.excluded == {"over_cap": 3}
    assert overridden.symbols == ("BTCUSDT", "ETHUSDT", "BTCPERP")


def test_instruments_not_trading_or_unknown_and_tickers_without_price_are_left_out() -> None:
    tickers = [
        *TICKERS,
        ticker("NEWUSDT", 8_000_000),
        ticker("GHOSTUSDT", 7_000_000),
        ticker("ZEROUSDT", 1, 0),
    ]
    instruments = [*INSTRUMENTS, instrument("NEWUSDT", status="PreLaunch"), instrument("ZEROUSDT")]

    chosen = select_universe(tickers, instruments, UniverseFilter())

    assert set(chosen.symbols) == {t.symbol for t in TICKERS}
    assert chosen.excluded == {"not_trading": 1, "no_instrument": 1, "no_price": 1}


def test_equal_turnover_is_ordered_by_name_so_the_universe_is_stable() -> None:
    tickers = [ticker("CCCUSDT", 10), ticker("AAAUSDT", 10), ticker("BBBUSDT", 10)]
    chosen = select_universe(tickers, None, UniverseFilter())
    assert chosen.symbols == ("AAAUSDT", "BBBUSDT", "CCCUSDT")


def test_the_setting_is_parsed_from_app_settings_json() -> None:
    rules = UniverseFilter.from_setting(
        {
            "category": "linear",
            "max_symbols": 50,
            "min_turnover_24h": 1e6,
            "quote_coins": ["usdt"],
            "symbol_blocklist": ["LUNAUSDT"],
        }
    )
    assert rules == UniverseFilter("linear", 50, 1e6, frozenset({"USDT"}), frozenset({"LUNAUSDT"}))
    assert UniverseFilter.from_setting({}) == UniverseFilter()


@pytest.mark.parametrize(
    "setting",
    [
        {"category": "option"},
        {"max_symbols": 0},
        {"max_symbols": 2.5},
        {"max_symbols": True},
        {"min_turnover_24h": -1},
        {"quote_coins": "USDT"},
        {"symbol_blocklist": [1]},
        {"surprise": 1},
    ],
)
def test_a_malformed_setting_is_a_config_error(setting: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        UniverseFilter.from_setting(setting)


def test_a_quote_filter_without_instruments_is_refused_rather_than_ignored() -> None:
    with pytest.raises(ConfigError):
        select_universe(TICKERS, None, UniverseFilter(quote_coins=frozenset({"USDT"})))
