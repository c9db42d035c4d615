"""lib.research.backtest: bucket bookkeeping, CSV round trip, resampling, synthetic markets with known
outcomes."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from lib.core.candles import Candles
from lib.errors import ConfigError, InvalidRequest
from lib.research.backtest import run_backtest
from lib.research.backtest_report import BUCKET_EDGES, BacktestReport, format_table, read_csv, write_csv
from lib.research.bundled_data import BUNDLED_USDT_DIR, load_all
from lib.research.resample import resample
from lib.scoring.quantum_ai_weights import load_weights

FIVE = 5 * 60 * 1000
T0 = 1_516_000_000_000 - 1_516_000_000_000 % (60 * 60 * 1000)  # on the hour


@pytest.fixture(scope="module")
def unirail_report() -> BacktestReport:
    return run_backtest("unirail_core", step=5)


@pytest.fixture(scope="module")
def usdt_three(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three of the USDT pairs quantum_ai v2 was trained on (AVAXUSDT is one of its held-out symbols)."""
    folder = tmp_path_factory.mktemp("usdt-three")
    for symbol in ("AVAXUSDT", "BTCUSDT", "ETHUSDT"):
        source = BUNDLED_USDT_DIR / "5m" / f"{symbol}-5m.csv.gz"
        (folder / source.name).symlink_to(source)
    return folder


@pytest.fixture(scope="module")
def quantum_report(usdt_three: Path) -> BacktestReport:
    return run_backtest("quantum_ai", usdt_three, step=5)


def write_symbol(folder: Path, symbol: str, times: np.ndarray, o, h, lo, c, v, *, gz: bool = False) -> None:  # type: ignore[no-untyped-def]
    lines = ["open_time_ms,open,high,low,close,volume"]
    rows = zip(times, o, h, lo, c, v, strict=True)
    lines += [
        f"{int(t)},{float(a)!r},{float(b)!r},{float(d)!r},{float(e)!r},{float(f)!r}"
        for t, a, b, d, e, f in rows
    ]
    text = "\n".join(lines) + "\n"
    if gz:
        (folder / f"{symbol}-5m.csv.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (folder / f"{symbol}-5m.csv").write_text(text)


def steady_climb(n: int) -> tuple[np.ndarray, ...]:
    """Close rises 0.1 a bar; each bar opens at the previous close, high = close + 0.05, low = open - 0.05.

    Every true range is 0.2, so ATR = 0.2: a LONG's target (entry + 3 ATR = + 0.6) is first reached by
    the high six bars later (+0.6 + 0.05), and its stop (-0.3) is never touched.
    """
    close = 100.0 + 0.1 * np.arange(n)
    open_ = close - 0.1
    return (
        T0 + np.arange(n, dtype=np.int64) * FIVE,
        open_,
        close + 0.05,
        open_ - 0.05,
        close,
        np.full(n, 1000.0),
    )


def test_bucket_counts_add_up_to_the_number_of_signals(unirail_report: BacktestReport) -> None:
    report = unirail_report
    assert len(report.buckets) == len(BUCKET_EDGES) - 1 == 10
    assert sum(r.signals for r in report.buckets) == report.signals == report.row("all").signals
    assert report.signals > 8000
    assert report.row(">=80").signals == report.row("80-90").signals + report.row("90-100").signals
    for r in report.rows:
        assert r.tp_first + r.sl_first + r.neither == r.signals


def test_shares_in_each_bucket_sum_to_one(unirail_report: BacktestReport) -> None:
    non_empty = [r for r in unirail_report.rows if r.signals]
    assert len(non_empty) >= 8
    for r in non_empty:
        assert r.tp_share + r.sl_share + r.neither_share == pytest.approx(1.0, abs=1e-12)
        assert r.tp_share == r.tp_first / r.signals
        assert -1.0 <= r.mean_r <= 2.0
    for r in unirail_report.rows:
        if not r.signals:
            assert math.isnan(r.tp_share)
            assert math.isnan(r.mean_r)


def test_the_csv_round_trips(unirail_report: BacktestReport, tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    write_csv(unirail_report, path)
    rows = read_csv(path)
    assert len(rows) == 12
    assert path.read_text().splitlines()[0] == (
        "bucket,low,high,signals,tp_first,sl_first,neither,tp_share,sl_share,neither_share,mean_r"
    )
    for back, original in zip(rows, unirail_report.rows, strict=True):
        for name in ("bucket", "low", "high", "signals", "tp_first", "sl_first", "neither"):
            assert getattr(back, name) == getattr(original, name)
        for name in ("tp_share", "sl_share", "neither_share", "mean_r"):
            a, b = getattr(back, name), getattr(original, name)
            assert (math.isnan(a) and math.isnan(b)) or a == b


def test_a_steady_climb_is_all_long_signals_that_reach_their_target(tmp_path: Path) -> None:
    n = 320
    write_symbol(tmp_path, "CLIMB", *steady_climb(n))
    calls: list[tuple[int, int]] = []
    report = run_backtest("unirail_core", tmp_path, progress=lambda done, total: calls.append((done, total)))
    # Scored from bar index 199 (the 200th bar, SMA200's first); a signal at bar i resolves at bar
    # i + 6, so bars up to n - 7 count and the last six are left out (no target yet, horizon past the
    # end of the data).
    assert report.signals == n - 6 - 199
    assert report.incomplete == 6
    everything = report.row("all")
    assert everything.tp_first == report.signals
    assert everything.mean_r == pytest.approx(2.0)
    assert report.symbols == ("CLIMB",)
    assert report.first_bar_ms == T0 + 199 * FIVE
    assert calls == [(1, 1)]


def test_a_mirrored_fall_is_all_short_signals_that_reach_their_target(tmp_path: Path) -> None:
    times, o, h, lo, c, v = steady_climb(320)
    write_symbol(tmp_path, "FALL", times, 300 - o, 300 - lo, 300 - h, 300 - c, v, gz=True)
    report = run_backtest("unirail_core", tmp_path, horizon_bars=10, step=3)
    everything = report.row("all")
    assert everything.signals == len(range(201, 320 - 6, 3))  # every third bar index from 199 on: 201, 204...
    assert everything.tp_share == 1.0
    assert everything.mean_r == pytest.approx(2.0)


def test_a_horizon_too_short_for_the_target_leaves_every_signal_open(tmp_path: Path) -> None:
    write_symbol(tmp_path, "CLIMB", *steady_climb(300))
    report = run_backtest("unirail_core", tmp_path, horizon_bars=4)
    everything = report.row("all")
    assert everything.neither == everything.signals == 300 - 4 - 199
    # Four bars later the close is 0.4 higher: marked to market at 0.4 / 0.3 R.
    assert everything.mean_r == pytest.approx(0.4 / 0.3)


def test_quantum_ai_is_reported_out_of_sample_on_its_training_data(
    quantum_report: BacktestReport, usdt_three: Path, tmp_path: Path
) -> None:
    weights = load_weights()
    assert quantum_report.sample.startswith("OUT-OF-SAMPLE")
    assert quantum_report.first_bar_ms is not None
    assert quantum_report.first_bar_ms >= weights.folds[0].valid_from_ms
    assert sum(r.signals for r in quantum_report.buckets) == quantum_report.signals > 5000
    in_sample = run_backtest("quantum_ai", usdt_three, step=5, out_of_sample=False)
    assert in_sample.sample.startswith("IN-SAMPLE")
    assert in_sample.signals > quantum_report.signals  # the first fitting window is scored too
    # Data the model has never seen is scored by the deployed model, and says so.
    write_symbol(tmp_path, "CLIMB", *steady_climb(300))
    unseen = run_backtest("quantum_ai", tmp_path)
    assert unseen.sample == "bars outside the training data scored by the deployed model"
    assert unseen.signals > 0


def test_resampling_builds_utc_aligned_bars_and_drops_partial_edges() -> None:
    # 5-minute candles from 00:05 to 01:05 (no 00:40 candle): the 00:00 bucket misses its first
    # candle and the 01:00 bucket its last two, so only the 00:15, 00:30 and 00:45 bars remain.
    minutes = [5, 10, 15, 20, 25, 30, 35, 45, 50, 55, 60, 65]
    times = np.array([T0 + m * 60_000 for m in minutes], dtype=np.int64)
    k = np.arange(len(minutes), dtype=np.float64)
    candles = Candles("X", times, 10 + k, 20 + k, 5 + k, 11 + k, 1 + k)
    bars = resample(candles, 15)
    assert bars.open_time_ms.tolist() == [T0 + 15 * 60_000, T0 + 30 * 60_000, T0 + 45 * 60_000]
    # 00:15 bucket: candles 2, 3, 4. 00:30 bucket: 5, 6 (00:40 missing). 00:45 bucket: 7, 8, 9.
    assert bars.open.tolist() == [12.0, 15.0, 17.0]
    assert bars.high.tolist() == [24.0, 26.0, 29.0]
    assert bars.low.tolist() == [7.0, 10.0, 12.0]
    assert bars.close.tolist() == [15.0, 17.0, 20.0]
    assert bars.volume.tolist() == [3 + 4 + 5, 6 + 7, 8 + 9 + 10]


def test_a_longer_timeframe_replays_resampled_bars(unirail_report: BacktestReport) -> None:
    hourly = run_backtest("unirail_core", timeframe="60", horizon_bars=12)
    assert hourly.timeframe == "60"
    assert hourly.first_bar_ms is not None
    assert hourly.first_bar_ms % (60 * 60 * 1000) == 0
    assert 0 < hourly.signals < unirail_report.signals
    assert sum(r.signals for r in hourly.buckets) == hourly.signals
    quantum_hourly = run_backtest("quantum_ai", timeframe="15", step=3)
    assert "trained on 5-minute bars, not 15" in quantum_hourly.sample


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="timeframe"):
        run_backtest("unirail_core", timeframe="7")
    with pytest.raises(InvalidRequest, match="algorithm"):
        run_backtest("astrology")
    with pytest.raises(InvalidRequest, match="step"):
        run_backtest("unirail_core", step=0)
    with pytest.raises(InvalidRequest, match="horizon_bars"):
        run_backtest("unirail_core", horizon_bars=0)


def test_the_table_is_fixed_width_and_names_every_bucket(unirail_report: BacktestReport) -> None:
    table = format_table(unirail_report)
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("score"))
    body = lines[header:]
    assert len({len(line) for line in body}) == 1  # every table line has the same width
    names = [line.split()[0] for line in body if not line.startswith("-")][1:]
    assert names == [r.bucket for r in unirail_report.rows]
    assert "unirail_core" in lines[0]
    assert "horizon 48 bars" in lines[0]


def test_the_bundled_data_has_the_expected_shape_for_these_tests() -> None:
    candles = load_all()
    assert len(candles) == 8
    assert all(len(c) > 5000 for c in candles.values())


def test_an_empty_data_folder_is_an_error_not_an_all_zero_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"no candle files .* in {tmp_path}"):
        run_backtest("unirail_core", tmp_path)


def test_too_few_bars_for_a_score_is_an_error_that_says_why(tmp_path: Path) -> None:
    write_symbol(tmp_path, "CLIMB", *steady_climb(150))
    with pytest.raises(
        InvalidRequest, match="the longest series has 150 bars of timeframe 5, and a score needs 200"
    ):
        run_backtest("unirail_core", tmp_path)
    with pytest.raises(InvalidRequest, match="not enough data"):
        run_backtest("unirail_core", timeframe="D")  # 20 days of bundled data: 20 daily bars at most


def test_scored_bars_that_all_run_past_the_data_are_an_error_that_says_why(tmp_path: Path) -> None:
    write_symbol(tmp_path, "CLIMB", *steady_climb(205))
    with pytest.raises(
        InvalidRequest, match=r"too close to the end of the data .* \(try a shorter --horizon\)"
    ):
        run_backtest("unirail_core", tmp_path, horizon_bars=48)
