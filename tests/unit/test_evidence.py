"""lib.research.evidence, lib.research.baseline and lib.research.report_files: the random-entry
baseline, the bootstrap, and the files a report is made of."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numba
import numpy as np
import pytest

from lib.core.candles import Candles
from lib.research.baseline import bootstrap_means, draw_keys
from lib.research.bundled_data import BUNDLED_DATA_DIR
from lib.research.evidence import BUCKET_COLUMNS, Evidence, baseline_plan, bucket_evidence
from lib.research.exits import END, HORIZON, SL, TP, ExitRules, find_exits
from lib.research.market import Market, MarketScores, build_market, load_market, score_market
from lib.research.report_files import read_buckets_csv, write_report_files
from lib.research.simulation import simulate
from lib.scoring.levels import levels

FIVE = 5 * 60 * 1000
T0 = 1_704_067_200_000
ISSUE_COLUMNS = (
    "bucket,signals,tp_first_pct,sl_first_pct,neither_pct,mean_r_net,mean_r_ci_low,mean_r_ci_high,"
    "baseline_mean_r_net,p_value"
)


def random_walk_market(seed: int, symbols: int = 3, bars: int = 3000) -> Market:
    """Gapless random walks: each bar opens at the previous close, 0.4% volatility per bar."""
    rng = np.random.default_rng(seed)
    series: dict[str, Candles] = {}
    for k in range(symbols):
        close = (20.0 + 30 * k) * np.exp(np.cumsum(rng.normal(0, 0.004, bars)))
        open_ = np.r_[close[0], close[:-1]]
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, bars))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, bars))
        name = f"R{k}USDT"
        times = T0 + FIVE * np.arange(bars, dtype=np.int64)
        series[name] = Candles(name, times, open_, high, low, close, np.ones(bars))
    return build_market(series, FIVE)


def scores_with(market: Market, sign: np.ndarray, score: np.ndarray) -> MarketScores:
    """Scores whose levels are the scorers' ATR levels, with ATR = 0.4% of the close."""
    atr = 0.004 * market.close
    stop, take = levels(market.close, atr, sign)
    valid = np.ones(len(market), dtype=np.bool_)
    return MarketScores(valid, sign.astype(np.int8), score, market.close.copy(), stop, take, atr)


def noise_scores(market: Market, seed: int) -> MarketScores:
    rng = np.random.default_rng(seed)
    n = len(market)
    return scores_with(market, np.where(rng.random(n) < 0.5, 1, -1), rng.uniform(0, 100, n))


def cheating_scores(market: Market, seed: int) -> MarketScores:
    """A scorer that reads the future: 95 on the side whose trade will reach its target, else 0-79."""
    rng = np.random.default_rng(seed)
    n = len(market)
    rows = np.arange(n)
    atr = 0.004 * market.close
    best_sign = np.ones(n, dtype=np.int8)
    wins = np.zeros(n, dtype=np.bool_)
    for s in (1, -1):
        stop, take = levels(market.close, atr, np.full(n, s))
        ex = find_exits(market, rows, s, stop, take)
        won = ex.reason == 1
        best_sign = np.where(won & ~wins, s, best_sign).astype(np.int8)
        wins |= won
    score = np.where(wins, 95.0, rng.uniform(0, 79.9, n))
    return scores_with(market, best_sign, score)


@pytest.fixture(scope="module")
def market() -> Market:
    return random_walk_market(3)


@pytest.fixture(scope="module")
def noise_evidence(market: Market) -> Evidence:
    return bucket_evidence(market, noise_scores(market, 5), 80.0, draws=200, bootstrap=400, seed=9)


def test_a_score_built_from_the_future_beats_the_baseline(market: Market) -> None:
    evidence = bucket_evidence(market, cheating_scores(market, 5), 80.0, draws=200, bootstrap=400, seed=9)
    top = evidence.row(">=80")
    assert top.signals > 1000
    assert top.tp_first_pct == 100.0
    assert top.mean_r_net > 1.5
    assert top.baseline_mean_r_net < 0.0
    assert top.p_value == pytest.approx(1 / 201)
    assert top.p_value < 0.05
    assert top.mean_r_ci_low > top.baseline_mean_r_net


def test_a_random_score_on_noise_does_not_beat_the_baseline(noise_evidence: Evidence) -> None:
    top = noise_evidence.row(">=80")
    assert top.signals > 1000
    assert top.p_value > 0.05
    # The bucket and its baseline are the same kind of trades: the baseline sits inside its interval.
    assert top.mean_r_ci_low < top.baseline_mean_r_net < top.mean_r_ci_high
    # Costs on a 0.6 % stop: 2 x 5.5 bps fees + 2 x 2 bps slippage, about 0.25 R.
    assert 0.2 < top.mean_cost_r < 0.3
    assert top.mean_r_net < 0.0


def test_under_the_null_the_p_values_are_spread_evenly(market: Market) -> None:
    # Twenty random scorers on noise: a valid p-value falls below 0.05 about once in twenty.
    p = [
        bucket_evidence(market, noise_scores(market, 100 + k), 80.0, draws=200, bootstrap=10, seed=k)
        .row(">=80")
        .p_value
        for k in range(20)
    ]
    assert sum(v < 0.05 for v in p) <= 3
    assert 0.25 < float(np.median(p)) < 0.75


def test_buckets_partition_the_signals_and_shares_add_up(market: Market, noise_evidence: Evidence) -> None:
    ten = noise_evidence.rows[:10]
    assert [r.bucket for r in noise_evidence.rows] == [f"{10 * k}-{10 * k + 10}" for k in range(10)] + [
        ">=80"
    ]
    assert (ten[0].low, ten[0].high, ten[-1].high) == (0.0, 10.0, 100.0)
    # Every bar is a signal; left out: each symbol's last bar (no next bar to enter at) and the trades
    # still open when the data ends, within the last 48 bars.
    assert sum(r.signals for r in ten) + noise_evidence.left_out == len(market)
    assert 3 < noise_evidence.left_out <= 3 * 48
    above = noise_evidence.row("80-90").signals + noise_evidence.row("90-100").signals
    assert noise_evidence.row(">=80").signals == above
    for r in noise_evidence.rows:
        assert r.tp_first_pct + r.sl_first_pct + r.neither_pct == pytest.approx(100.0)
        assert r.mean_r_ci_low <= r.mean_r_net <= r.mean_r_ci_high
        assert 0.0 < r.p_value <= 1.0


def test_the_baselines_draws_repeat_with_the_seed_and_keep_counts_and_direction_mix(market: Market) -> None:
    scores = noise_scores(market, 5)
    plan = baseline_plan(market, scores, 80.0)
    b = plan.names.index(">=80")
    rows, signs = plan.draw(9, 3, b)
    again_rows, again_signs = plan.draw(9, 3, b)
    assert np.array_equal(rows, again_rows)
    assert np.array_equal(signs, again_signs)
    assert not np.array_equal(plan.draw(10, 3, b)[0], rows)
    assert not np.array_equal(plan.draw(9, 4, b)[0], rows)
    # The same number of LONG and SHORT entries per symbol as the bucket's own signals.
    mine = plan.masks[b]
    for k in range(len(market.symbols)):
        for s in (1, -1):
            bucket_n = np.sum((market.symbol_id[plan.signal_rows[mine]] == k) & (plan.signal_sign[mine] == s))
            drawn_n = np.sum((market.symbol_id[rows] == k) & (signs == s))
            assert bucket_n == drawn_n > 0
    # Random bars: not the bucket's own bars, and spread over the history.
    assert len(set(rows.tolist()) - set(plan.signal_rows[mine].tolist())) > 0.6 * rows.size
    # And they are the trades the baseline averaged.
    pool = {
        (int(r), int(s)): float(v)
        for r, s, v in zip(plan.pool_rows, plan.pool_sign, plan.pool_r, strict=True)
    }
    mean = np.mean([pool[(int(r), int(s))] for r, s in zip(rows, signs, strict=True)])
    assert plan.baseline(9, 200)[b, 3] == pytest.approx(mean, rel=1e-12)
    assert np.array_equal(draw_keys(9, 5)[:3], draw_keys(9, 3))


def test_the_evidence_is_the_same_on_one_thread_and_on_all(market: Market) -> None:
    scores = noise_scores(market, 5)
    everything = bucket_evidence(market, scores, 80.0, draws=50, bootstrap=100, seed=2)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = bucket_evidence(market, scores, 80.0, draws=50, bootstrap=100, seed=2)
    finally:
        numba.set_num_threads(threads)
    assert one.rows == everything.rows
    assert np.array_equal(one.baseline, everything.baseline)


def test_the_bootstrap_interval_matches_the_standard_error() -> None:
    rng = np.random.default_rng(1)
    values = np.r_[np.full(7, 3.0), rng.normal(0.5, 2.0, 5000)]
    starts = np.array([0, 7, 7, values.size])
    means = bootstrap_means(values, starts, draw_keys(8, 3), 2000)
    assert np.all(means[0] == 3.0)
    assert np.all(np.isnan(means[1]))
    sample = values[7:]
    low, high = np.percentile(means[2], [2.5, 97.5])
    half = 1.96 * sample.std() / math.sqrt(sample.size)
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert low < sample.mean() < high


def test_the_window_limits_signals_and_pools(market: Market) -> None:
    scores = noise_scores(market, 5)
    mid = T0 + 1500 * FIVE
    later = baseline_plan(market, scores, 80.0, start_ms=mid)
    assert np.all(market.open_time_ms[later.signal_rows] >= mid)
    assert np.all(market.open_time_ms[later.pool_rows] >= mid)
    earlier = baseline_plan(market, scores, 80.0, end_ms=mid)
    assert np.all(market.open_time_ms[earlier.signal_rows] < mid)
    assert earlier.left_out == 0  # no horizon reaches the data's end


def test_report_files_have_the_issues_columns_and_read_back(market: Market, tmp_path: Path) -> None:
    scores = noise_scores(market, 5)
    rules = ExitRules()
    evidence = bucket_evidence(market, scores, 80.0, rules=rules, draws=20, bootstrap=50)
    sim = simulate(market, scores, 80.0, rules=rules)
    paths = write_report_files(tmp_path / "report", evidence, sim)
    assert paths["buckets"].read_text().splitlines()[0].startswith(ISSUE_COLUMNS)
    back = read_buckets_csv(paths["buckets"])
    assert [r["bucket"] for r in back] == [r.bucket for r in evidence.rows]
    for row, original in zip(back, evidence.rows, strict=True):
        for column in BUCKET_COLUMNS:
            value, expected = row[column], getattr(original, column)
            assert value == expected or (math.isnan(float(value)) and math.isnan(float(expected)))
    with paths["trades"].open(newline="") as fh:
        trades = list(csv.DictReader(fh))
    assert len(trades) == len(sim.trades) > 10
    first = trades[0]
    assert list(first) == [
        "symbol",
        "side",
        "signal_time",
        "entry_time",
        "entry_price",
        "stop_loss",
        "take_profit",
        "exit_time",
        "exit_price",
        "reason",
        "qty",
        "fees",
        "pnl",
        "r_net",
        "score",
    ]
    assert first["symbol"] == sim.trades.symbol[0]
    assert first["signal_time"].endswith("Z")
    assert {t["reason"] for t in trades} <= {"TP", "SL", "horizon", "end_of_data"}
    assert float(first["pnl"]) == float(sim.trades.pnl[0])
    equity = paths["equity"].read_text().splitlines()
    assert equity[0] == "time,equity"
    assert len(equity) == sim.equity.size + 1


def test_scoring_on_threads_gives_the_serial_scores_and_both_report_progress(market: Market) -> None:
    calls: list[tuple[int, int]] = []
    serial = score_market("unirail_core", market, workers=1, progress=lambda d, t: calls.append((d, t)))
    threaded = score_market("unirail_core", market, workers=2)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert serial.valid.sum() > 0.9 * len(market)
    for name in ("valid", "sign", "score", "stop_loss", "take_profit"):
        assert np.array_equal(getattr(serial, name), getattr(threaded, name), equal_nan=True)
    seen: list[tuple[int, int]] = []
    bucket_evidence(market, serial, 80.0, draws=5, bootstrap=5, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_the_bundled_candles_run_end_to_end_on_hourly_bars() -> None:
    hourly = load_market(BUNDLED_DATA_DIR, "60")
    assert hourly.bar_ms == 3_600_000
    assert len(hourly.symbols) >= 6
    steps = np.diff(hourly.open_time_ms)[np.diff(hourly.symbol_id) == 0]
    assert np.all(steps % 3_600_000 == 0)  # gaps stay gaps
    assert steps.min() == 3_600_000
    scores = score_market("unirail_core", hourly)
    evidence = bucket_evidence(hourly, scores, 60.0, rules=ExitRules(horizon_bars=12), draws=20, bootstrap=20)
    assert sum(r.signals for r in evidence.rows[:10]) > 1000
    sim = simulate(hourly, scores, 60.0, rules=ExitRules(horizon_bars=12))
    # The same signals: the bucket's final ones, plus those left out there (still open at the end).
    assert 0 <= sim.signals - evidence.threshold_row.signals <= evidence.left_out
    assert len(sim.trades) > 20
    assert set(sim.trades.reason.tolist()) <= {TP, SL, HORIZON, END}
