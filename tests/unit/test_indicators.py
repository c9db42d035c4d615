"""lib.indicators against TA-Lib on the bundled candles, in 1-D and 2-D, with and without NaN padding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
import talib

from lib import indicators as ind
from lib.errors import InvalidRequest
from lib.research.bundled_data import list_symbols, load_all

FloatArray = npt.NDArray[np.float64]
RTOL = 1e-6


class Bars(NamedTuple):
    """Candle arrays of one symbol (1-D) or of several (2-D, symbols x time)."""

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray


SYMBOLS = list_symbols()


@pytest.fixture(scope="module")
def bundled() -> dict[str, Bars]:
    """The bundled candles of every symbol, 1-D."""
    return {
        symbol: Bars(c.open, c.high, c.low, c.close, c.volume) for symbol, c in sorted(load_all().items())
    }


def _left_padded_panel(series: dict[str, Bars]) -> tuple[Bars, list[int]]:
    """Stack symbols of different lengths into 2-D arrays, left-padded with NaN; also the pad widths."""
    length = max(len(bars.close) for bars in series.values())
    pads = [length - len(bars.close) for bars in series.values()]
    stacked = []
    for field in Bars._fields:
        rows = [
            np.concatenate([np.full(pad, np.nan), getattr(bars, field)])
            for pad, bars in zip(pads, series.values(), strict=True)
        ]
        stacked.append(np.vstack(rows))
    return Bars(*stacked), pads


def _talib_volume_ratio(volume: FloatArray, period: int) -> FloatArray:
    baseline = talib.SMA(volume, period)
    out = np.full_like(volume, np.nan)
    out[1:] = volume[1:] / baseline[:-1]
    return out


def _as_tuple(result: Any) -> tuple[FloatArray, ...]:
    return tuple(result) if isinstance(result, tuple | list) else (result,)


# name -> (ours on Bars of any dimension, TA-Lib's on 1-D Bars). Non-default periods included.
Case = tuple[Callable[[Bars], Any], Callable[[Bars], Any]]
CASES: dict[str, Case] = {
    "sma 20": (lambda b: ind.sma(b.close, 20), lambda b: talib.SMA(b.close, 20)),
    "sma 200": (lambda b: ind.sma(b.close, 200), lambda b: talib.SMA(b.close, 200)),
    "ema 21": (lambda b: ind.ema(b.close, 21), lambda b: talib.EMA(b.close, 21)),
    "ema 50": (lambda b: ind.ema(b.close, 50), lambda b: talib.EMA(b.close, 50)),
    "rsi 14": (lambda b: ind.rsi(b.close), lambda b: talib.RSI(b.close, 14)),
    "rsi 5": (lambda b: ind.rsi(b.close, 5), lambda b: talib.RSI(b.close, 5)),
    "atr 14": (lambda b: ind.atr(b.high, b.low, b.close), lambda b: talib.ATR(b.high, b.low, b.close, 14)),
    "atr 3": (
        lambda b: ind.atr(b.high, b.low, b.close, 3),
        lambda b: talib.ATR(b.high, b.low, b.close, 3),
    ),
    "adx 14": (
        lambda b: ind.adx(b.high, b.low, b.close),
        lambda b: (
            talib.ADX(b.high, b.low, b.close, 14),
            talib.PLUS_DI(b.high, b.low, b.close, 14),
            talib.MINUS_DI(b.high, b.low, b.close, 14),
        ),
    ),
    "adx 7": (
        lambda b: ind.adx(b.high, b.low, b.close, 7),
        lambda b: (
            talib.ADX(b.high, b.low, b.close, 7),
            talib.PLUS_DI(b.high, b.low, b.close, 7),
            talib.MINUS_DI(b.high, b.low, b.close, 7),
        ),
    ),
    "macd 12/26/9": (lambda b: ind.macd(b.close), lambda b: talib.MACD(b.close, 12, 26, 9)),
    "macd 5/35/5": (lambda b: ind.macd(b.close, 5, 35, 5), lambda b: talib.MACD(b.close, 5, 35, 5)),
    "bollinger 20 x 2": (
        lambda b: ind.bollinger(b.close),
        lambda b: talib.BBANDS(b.close, 20, 2.0, 2.0, 0),
    ),
    "bollinger 10 x 1.5": (
        lambda b: ind.bollinger(b.close, 10, 1.5),
        lambda b: talib.BBANDS(b.close, 10, 1.5, 1.5, 0),
    ),
    "obv": (lambda b: ind.obv(b.close, b.volume), lambda b: talib.OBV(b.close, b.volume)),
    "volume ratio 20": (lambda b: ind.volume_ratio(b.volume), lambda b: _talib_volume_ratio(b.volume, 20)),
    "volume ratio 5": (
        lambda b: ind.volume_ratio(b.volume, 5),
        lambda b: _talib_volume_ratio(b.volume, 5),
    ),
}


def assert_matches_reference(actual: FloatArray, expected: FloatArray) -> None:
    """NaN exactly where the reference has NaN, and within RTOL of it everywhere else."""
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg="warm-up NaNs differ")
    valid = ~np.isnan(expected)
    assert valid.any(), "the reference has no values: the comparison would prove nothing"
    np.testing.assert_allclose(actual[valid], expected[valid], rtol=RTOL, atol=0.0)


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize("case", list(CASES))
def test_every_indicator_matches_talib_on_every_bundled_symbol(
    case: str, symbol: str, bundled: dict[str, Bars]
) -> None:
    ours, reference = CASES[case]
    bars = bundled[symbol]
    actual = _as_tuple(ours(bars))
    expected = _as_tuple(reference(bars))
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.ndim == 1
        assert_matches_reference(got, want)


@pytest.mark.parametrize("case", list(CASES))
def test_a_nan_padded_2d_panel_matches_talib_row_by_row(case: str, bundled: dict[str, Bars]) -> None:
    ours, reference = CASES[case]
    panel, pads = _left_padded_panel(bundled)
    assert max(pads) > 0, "the bundled symbols should differ in length, so some rows are padded"
    actual = _as_tuple(ours(panel))
    for row in range(len(SYMBOLS)):
        # TA-Lib's wrapper also starts after leading NaNs, so it takes the padded row as it is.
        expected = _as_tuple(reference(Bars(*(field[row] for field in panel))))
        for got, want in zip(actual, expected, strict=True):
            assert got.shape == panel.close.shape
            assert_matches_reference(got[row], want)


@pytest.mark.parametrize("case", list(CASES))
def test_2d_row_i_equals_the_1d_result_for_symbol_i(case: str, bundled: dict[str, Bars]) -> None:
    ours, _ = CASES[case]
    length = min(len(bars.close) for bars in bundled.values())
    panel = Bars(*(np.vstack([getattr(bundled[s], f)[-length:] for s in SYMBOLS]) for f in Bars._fields))
    together = _as_tuple(ours(panel))
    for row, symbol in enumerate(SYMBOLS):
        alone = _as_tuple(ours(Bars(*(getattr(bundled[symbol], f)[-length:] for f in Bars._fields))))
        for got_2d, got_1d in zip(together, alone, strict=True):
            np.testing.assert_array_equal(got_2d[row], got_1d)


@pytest.mark.parametrize("case", list(CASES))
def test_leading_nan_padding_gives_the_values_of_the_unpadded_series(
    case: str, bundled: dict[str, Bars]
) -> None:
    ours, _ = CASES[case]
    bars = bundled["ETHBTC"]
    pad = 37
    padded = Bars(*(np.concatenate([np.full(pad, np.nan), field]) for field in bars))
    for got_padded, got_plain in zip(_as_tuple(ours(padded)), _as_tuple(ours(bars)), strict=True):
        assert np.isnan(got_padded[:pad]).all()
        np.testing.assert_array_equal(got_padded[pad:], got_plain)


def test_multi_input_indicators_start_where_every_input_has_data(bundled: dict[str, Bars]) -> None:
    bars = bundled["XLMBTC"]
    high, low, close, volume = (field.copy() for field in (bars.high, bars.low, bars.close, bars.volume))
    high[:5] = np.nan
    low[:9] = np.nan
    volume[:4] = np.nan
    atr_line = ind.atr(high, low, close, 14)
    assert int(np.argmax(~np.isnan(atr_line))) == 9 + 14
    assert_matches_reference(atr_line, talib.ATR(high, low, close, 14))
    for got, want in zip(
        ind.adx(high, low, close, 14),
        (talib.ADX(high, low, close, 14), talib.PLUS_DI(high, low, close, 14)),
        strict=False,
    ):
        assert_matches_reference(got, want)
    obv_line = ind.obv(close, volume)
    assert int(np.argmax(~np.isnan(obv_line))) == 4
    assert_matches_reference(obv_line, talib.OBV(close, volume))


def test_first_values_appear_where_talib_lookbacks_say(bundled: dict[str, Bars]) -> None:
    close = bundled["LTCBTC"].close
    high, low, volume = bundled["LTCBTC"].high, bundled["LTCBTC"].low, bundled["LTCBTC"].volume

    def first(values: FloatArray) -> int:
        return int(np.argmax(~np.isnan(values)))

    adx_line, plus_di, minus_di = ind.adx(high, low, close, 14)
    assert first(ind.sma(close, 200)) == 199
    assert first(ind.ema(close, 21)) == 20
    assert first(ind.rsi(close, 14)) == 14
    assert first(ind.atr(high, low, close, 14)) == 14
    assert (first(plus_di), first(minus_di), first(adx_line)) == (14, 14, 27)
    assert {first(line) for line in ind.macd(close, 12, 26, 9)} == {33}
    assert {first(band) for band in ind.bollinger(close, 20)} == {19}
    assert first(ind.obv(close, volume)) == 0
    assert first(ind.volume_ratio(volume, 20)) == 20


def test_features_equal_the_individual_functions_on_a_padded_panel(bundled: dict[str, Bars]) -> None:
    panel, _ = _left_padded_panel(bundled)
    o, h, lo, c, v = panel
    got = ind.features(o, h, lo, c, v)
    adx_line, plus_di, minus_di = ind.adx(h, lo, c, 14)
    macd_line, macd_signal, macd_hist = ind.macd(c, 12, 26, 9)
    upper, middle, lower = ind.bollinger(c, 20, 2.0)
    expected = {
        "ema21": ind.ema(c, 21),
        "ema50": ind.ema(c, 50),
        "sma200": ind.sma(c, 200),
        "rsi14": ind.rsi(c, 14),
        "atr14": ind.atr(h, lo, c, 14),
        "adx14": adx_line,
        "plus_di": plus_di,
        "minus_di": minus_di,
        "macd": macd_line,
        "macd_signal": macd_signal,
        "macd_hist": macd_hist,
        "bb_upper": upper,
        "bb_mid": middle,
        "bb_lower": lower,
        "obv": ind.obv(c, v),
        "volume_ratio": ind.volume_ratio(v, 20),
    }
    assert [f.name for f in fields(got)] == list(expected) == list(ind.FEATURE_NAMES)
    for name, want in expected.items():
        value = getattr(got, name)
        assert value.shape == c.shape, name
        np.testing.assert_array_equal(value, want, err_msg=name)


def test_features_of_one_symbol_are_1d_and_match_talib(bundled: dict[str, Bars]) -> None:
    bars = bundled["ZECBTC"]
    got = ind.features(*bars)
    assert got.rsi14.shape == bars.close.shape
    assert_matches_reference(got.rsi14, talib.RSI(bars.close, 14))
    assert_matches_reference(got.adx14, talib.ADX(bars.high, bars.low, bars.close, 14))
    assert_matches_reference(got.macd_hist, talib.MACD(bars.close, 12, 26, 9)[2])
    assert_matches_reference(got.bb_lower, talib.BBANDS(bars.close, 20, 2.0, 2.0, 0)[2])
    assert_matches_reference(got.sma200, talib.SMA(bars.close, 200))


def test_bollinger_width_is_the_population_standard_deviation_of_the_window() -> None:
    # Checks the running variance directly, not through bands dominated by the price level; a price
    # far from zero with a small spread is where naive running sums lose their digits.
    rng = np.random.default_rng(7)
    close = 50_000.0 + np.cumsum(rng.normal(0.0, 0.5, 3000))
    upper, middle, _ = ind.bollinger(close, 20, 1.0)
    windows = np.lib.stride_tricks.sliding_window_view(close, 20)
    np.testing.assert_allclose((upper - middle)[19:], windows.std(axis=1), rtol=1e-7)


def test_flat_stretches_follow_talib_conventions() -> None:
    # A flat start (no move, no range), then a trend, then flat again: RSI and DI are 0 when there
    # is nothing to measure, and ADX holds still while DX is undefined.
    close = np.concatenate([np.full(40, 10.0), np.linspace(10.0, 14.0, 40), np.full(40, 14.0)])
    high = close.copy()
    low = close.copy()
    high[40:80] += 0.05
    low[40:80] -= 0.05
    adx_line, plus_di, minus_di = ind.adx(high, low, close, 14)
    assert_matches_reference(adx_line, talib.ADX(high, low, close, 14))
    assert_matches_reference(plus_di, talib.PLUS_DI(high, low, close, 14))
    assert_matches_reference(minus_di, talib.MINUS_DI(high, low, close, 14))
    assert_matches_reference(ind.rsi(close, 14), talib.RSI(close, 14))
    assert (ind.rsi(close, 14)[14:40] == 0.0).all()
    assert (plus_di[14:40] == 0.0).all()
    for band in ind.bollinger(close, 20):
        assert (band[19:40] == 10.0).all()
        assert (band[99:] == 14.0).all()


def test_series_shorter_than_the_warm_up_are_all_nan_like_talib(bundled: dict[str, Bars]) -> None:
    close = bundled["ETHBTC"].close[:25]
    macd_line, _, _ = ind.macd(close)
    assert np.isnan(macd_line).all()
    assert np.isnan(talib.MACD(close, 12, 26, 9)[0]).all()
    assert np.isnan(ind.sma(close, 200)).all()
    assert ind.ema(np.full((3, 0), 1.0), 5).shape == (3, 0)  # no bars at all: empty, not an error


def test_period_one_is_the_identity_for_averages_and_the_true_range_for_atr(bundled: dict[str, Bars]) -> None:
    bars = bundled["TRXBTC"]
    np.testing.assert_array_equal(ind.sma(bars.close, 1), bars.close)
    np.testing.assert_array_equal(ind.ema(bars.close, 1), bars.close)
    assert_matches_reference(
        ind.atr(bars.high, bars.low, bars.close, 1), talib.TRANGE(bars.high, bars.low, bars.close)
    )


def test_volume_ratio_compares_a_bar_with_the_bars_before_it() -> None:
    volume = np.array([2.0] * 5 + [10.0, 2.0] + [0.0] * 5 + [4.0])
    ratio = ind.volume_ratio(volume, 5)
    assert np.isnan(ratio[:5]).all()
    assert ratio[5] == pytest.approx(5.0)  # 10 over the average of five 2s
    assert ratio[6] == pytest.approx(2.0 / 3.6)
    # After five zero-volume bars the baseline is 0: the ratio is undefined, not infinite.
    assert np.isnan(ratio[-1])
    assert np.isfinite(ratio[5:-1]).all()


def test_strided_and_fortran_ordered_panels_give_the_same_values(bundled: dict[str, Bars]) -> None:
    panel, _ = _left_padded_panel(bundled)
    every_other_bar = panel.close[:, ::2]
    expected = ind.rsi(np.ascontiguousarray(every_other_bar))
    np.testing.assert_array_equal(ind.rsi(every_other_bar), expected)
    np.testing.assert_array_equal(ind.rsi(np.asfortranarray(every_other_bar)), expected)
    for row in range(len(SYMBOLS)):
        assert_matches_reference(expected[row], talib.RSI(np.ascontiguousarray(every_other_bar[row]), 14))


def test_integer_inputs_are_accepted_and_inputs_are_left_untouched() -> None:
    close = np.arange(1, 41, dtype=np.int64)
    before = close.copy()
    result = ind.ema(close, 10)
    assert result.dtype == np.float64
    assert_matches_reference(result, talib.EMA(close.astype(np.float64), 10))
    np.testing.assert_array_equal(close, before)


# -- bad input --------------------------------------------------------------------------------------


def _raises_invalid(call: Callable[[], object], *words: str) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        call()
    assert caught.value.code == "invalid_request"
    for word in words:
        assert word in caught.value.message
    return caught.value


def test_mismatched_shapes_are_rejected_with_both_shapes_named() -> None:
    close = np.ones(50)
    error = _raises_invalid(lambda: ind.atr(np.ones(50), np.ones(49), close), "same shape", "(49,)", "(50,)")
    assert error.details["shapes"]["low"] == [49]
    _raises_invalid(lambda: ind.obv(np.ones((2, 50)), np.ones(50)), "same shape")
    _raises_invalid(lambda: ind.features(close, close, close, close, np.ones(51)), "same shape", "volume")


@pytest.mark.parametrize(
    "call",
    [
        lambda x: ind.sma(x, 0),
        lambda x: ind.ema(x, -3),
        lambda x: ind.rsi(x, 0),
        lambda x: ind.atr(x, x, x, 0),
        lambda x: ind.adx(x, x, x, 0),
        lambda x: ind.macd(x, 0, 26, 9),
        lambda x: ind.macd(x, 12, 26, 0),
        lambda x: ind.bollinger(x, 0),
        lambda x: ind.volume_ratio(x, 0),
    ],
)
def test_periods_below_one_are_rejected(call: Callable[[FloatArray], object]) -> None:
    _raises_invalid(lambda: call(np.ones(60)), "must be at least")


def test_periods_below_talibs_minimum_of_two_are_rejected_where_it_has_one() -> None:
    x = np.ones(60)
    _raises_invalid(lambda: ind.rsi(x, 1), "period must be at least 2")
    _raises_invalid(lambda: ind.adx(x, x, x, 1), "period must be at least 2")
    _raises_invalid(lambda: ind.bollinger(x, 1), "period must be at least 2")
    _raises_invalid(lambda: ind.macd(x, 1, 26, 9), "fast must be at least 2")


def test_non_integer_periods_and_bad_parameters_are_rejected() -> None:
    x = np.ones(60)
    _raises_invalid(lambda: ind.sma(x, 14.5), "integer")  # type: ignore[arg-type]
    _raises_invalid(lambda: ind.ema(x, True), "integer")
    _raises_invalid(lambda: ind.macd(x, 26, 12, 9), "must not exceed")
    _raises_invalid(lambda: ind.bollinger(x, 20, -1.0), "k must be")
    _raises_invalid(lambda: ind.bollinger(x, 20, float("nan")), "k must be")
    _raises_invalid(lambda: ind.sma(x, ind.MAX_PERIOD + 1), "at most 100000")
    _raises_invalid(lambda: ind.volume_ratio(x, 2**70), "at most")


def test_arrays_that_are_not_1d_or_2d_numbers_are_rejected() -> None:
    cube = np.ones((2, 3, 40))
    _raises_invalid(lambda: ind.sma(cube, 5), "3-D", "symbols x time")
    _raises_invalid(lambda: ind.rsi(np.float64(3.0)), "0-D")
    _raises_invalid(lambda: ind.ema(np.array(["a", "b"]), 2), "integers or floats")
    _raises_invalid(lambda: ind.obv([[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0]]), "numeric array")
    _raises_invalid(lambda: ind.features(cube, cube, cube, cube, cube), "3-D")
