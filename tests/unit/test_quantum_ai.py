"""quantum_ai: the versioned weights, deterministic inference, calibration, training on small data.

The full retraining on the bundled data (it must reproduce the committed weights) is an integration
test: tests/integration/test_quantum_ai_training.py.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lib.core.candles import CandlePanel, Candles
from lib.errors import ConfigError, InvalidRequest
from lib.research import training as t
from lib.research.bundled_data import BUNDLED_USDT_DIR, load_all, load_candles
from lib.research.exits import DEFAULT_HORIZON_BARS
from lib.research.forecast_metrics import auc, brier
from lib.research.training_library import LibraryConfig, fit_library_model, library_logit
from lib.scoring import quantum_ai as q
from lib.scoring import quantum_ai_weights as w
from lib.scoring import score
from lib.scoring.features import panel_features, single_symbol_panel
from lib.scoring.levels import SL_ATR, TP_ATR


@pytest.fixture(scope="module")
def bundled() -> dict[str, Candles]:
    return load_all()


@pytest.fixture(scope="module")
def weights() -> w.QuantumWeights:
    return w.load_weights()


def window_panel(bundled: dict[str, Candles], end: int, length: int = 300) -> CandlePanel:
    symbols = tuple(sorted(bundled))

    def rows(name: str) -> np.ndarray:
        return np.vstack([getattr(bundled[s], name)[end - length : end] for s in symbols])

    return CandlePanel(
        symbols,
        bundled[symbols[0]].open_time_ms[end - length : end],
        rows("open"),
        rows("high"),
        rows("low"),
        rows("close"),
        rows("volume"),
    )


SLICE_SYMBOLS = ("AVAXUSDT", "BTCUSDT", "ETHUSDT")


def usdt_slice(symbols: tuple[str, ...] = SLICE_SYMBOLS, days: int = 7) -> dict[str, Candles]:
    """A few USDT pairs' first ``days`` days: a deterministic training set that fits in seconds."""
    out = {}
    for symbol in symbols:
        c = load_candles(symbol, BUNDLED_USDT_DIR / "5m")
        cut = slice(0, days * 288)
        out[symbol] = Candles(
            symbol, c.open_time_ms[cut], c.open[cut], c.high[cut], c.low[cut], c.close[cut], c.volume[cut]
        )
    return out


#: 7 days: 2 to fit, 1 to calibrate, then four 1-day test windows; AVAXUSDT is held out.
SMALL = t.TrainConfig(
    train_days=2,
    calibration_days=1,
    test_days=1,
    stride=2,
    rounds=40,
    min_leaf=100,
    library=LibraryConfig(max_iter=30, min_samples_leaf=100),
    compare_library=False,
)


@pytest.fixture(scope="module")
def small_slice() -> dict[str, Candles]:
    return usdt_slice()


def test_the_versioned_weights_load_and_describe_their_training(weights: w.QuantumWeights) -> None:
    assert weights.version == "quantum_ai_v2"
    assert w.WEIGHTS_PATH.name == "quantum_ai_v2.json"
    assert not (w.WEIGHTS_PATH.parent / "quantum_ai_v1.json").exists()
    assert weights.final.model.feature_names == w.FEATURE_NAMES
    assert (weights.horizon_bars, weights.sl_atr, weights.tp_atr, weights.bar_minutes) == (48, 1.5, 3.0, 5.0)
    # The label's facts come from their one home: the backtest's horizon and the scorers' levels.
    assert (weights.horizon_bars, weights.sl_atr, weights.tp_atr) == (DEFAULT_HORIZON_BARS, SL_ATR, TP_ATR)
    training = weights.training
    usdt = load_all(BUNDLED_USDT_DIR / "5m")
    assert training["data_fingerprint"] == t.data_fingerprint(usdt)
    assert training["holdout_symbols"] == sorted(t.HOLDOUT_SYMBOLS)
    assert training["symbols"] == sorted(set(usdt) - set(t.HOLDOUT_SYMBOLS))
    assert training["config"]["rounds"] == t.TrainConfig().rounds
    assert len(weights.folds) == len(training["metrics"]["folds"]) == 6
    assert training["metrics"]["comparison"]["kept"] == "stumps"
    oos = training["metrics"]["out_of_sample"]
    for group in ("later", "unseen"):
        # Out of sample, the calibrated stumps beat the base-rate predictor and the library contender.
        assert oos[group]["stumps_calibrated"]["brier"] < oos[group]["base_rate"]["brier"]
        assert oos[group]["stumps_calibrated"]["log_loss"] < oos[group]["base_rate"]["log_loss"]
        assert oos[group]["stumps_calibrated"]["auc"] > 0.5
    assert oos["later"]["stumps_calibrated"]["log_loss"] < oos["later"]["library_calibrated"]["log_loss"]


def test_weights_with_other_feature_names_are_refused(tmp_path: Path) -> None:
    raw = json.loads(w.WEIGHTS_PATH.read_text())
    raw["final"]["features"][1]["name"] = "astrology"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="features"):
        w.load_weights(bad)
    raw["version"] = "quantum_ai_v0"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="version"):
        w.load_weights(bad)


def test_inference_is_deterministic_and_scores_are_probabilities(bundled: dict[str, Candles]) -> None:
    for end in (400, 2500, 5700):
        panel = window_panel(bundled, end)
        first = q.score_panel(panel)
        assert first == q.score_panel(panel) == score("quantum_ai", panel)
        assert len(first) == 8
        for cand in first:
            assert 0.0 <= cand.score <= 100.0
            # Components are contributions to the calibrated logit: they add up to logit(score / 100).
            p = cand.score / 100
            assert sum(cand.components.values()) == pytest.approx(math.log(p / (1 - p)), abs=1e-9)
            assert set(cand.components) == {"intercept", *w.FEATURE_NAMES}


def test_the_scanner_path_scores_the_last_bar_exactly_like_the_backtest_path(
    bundled: dict[str, Candles],
) -> None:
    panel = window_panel(bundled, 3210)
    bars = q.score_bars(panel)
    candidates = q.score_panel(panel)
    assert len(candidates) == 8
    for i, cand in enumerate(candidates):
        assert cand.score == bars.score[i, -1]
        assert cand.confidence == bars.confidence[i, -1]
        assert cand.components == {name: values[i, -1] for name, values in bars.components.items()}


def test_the_side_with_the_higher_probability_is_chosen(bundled: dict[str, Candles]) -> None:
    c = bundled["XLMBTC"]
    panel = single_symbol_panel("XLMBTC", c.open_time_ms, c.open, c.high, c.low, c.close, c.volume)
    bars = q.score_bars(panel)
    model = w.load_weights().final
    pf_panel = panel_features(panel)
    probabilities = {}
    for d in (1.0, -1.0):
        x = q.side_features(pf_panel, d)
        matrix = np.column_stack([x[name][0] for name in w.FEATURE_NAMES])
        ok = np.all(np.isfinite(matrix), axis=1)
        p = np.full(matrix.shape[0], np.nan)
        p[ok] = t.calibrated_probability(model, matrix[ok])
        probabilities[d] = p
    valid = bars.valid[0]
    best = np.maximum(probabilities[1.0], probabilities[-1.0])
    assert np.allclose(bars.score[0][valid], 100 * best[valid], atol=1e-9)
    longs = probabilities[1.0][valid] >= probabilities[-1.0][valid]
    assert np.array_equal(bars.sign[0][valid] > 0, longs)
    assert 0 < longs.mean() < 1  # both sides occur


def test_calibrated_probabilities_match_observed_rates_out_of_sample(weights: w.QuantumWeights) -> None:
    oos = weights.training["metrics"]["out_of_sample"]
    for group in ("later", "unseen"):
        pooled = oos[group]["stumps_calibrated"]
        assert abs(pooled["mean_predicted"] - pooled["base_rate"]) < 0.01
        for row in oos[f"{group}_reliability"]:
            if row["count"] >= 10_000:  # bands with enough samples to judge
                assert abs(row["mean_predicted"] - row["observed"]) < 0.02


def test_training_twice_on_a_small_slice_gives_identical_weights(small_slice: dict[str, Candles]) -> None:
    runs = []
    for _ in range(2):
        dataset = t.build_dataset(small_slice, SMALL.horizon_bars)
        result = t.train(dataset, SMALL, fingerprint=t.data_fingerprint(small_slice))
        runs.append(w.dump_weights(result.weights))
    assert runs[0] == runs[1]
    reloaded = w.weights_from_json(json.loads(runs[0]))
    assert w.dump_weights(reloaded) == runs[0]  # the file format round-trips exactly
    assert len(reloaded.folds) == 4
    assert reloaded.training["metrics"]["comparison"]["kept"] == "stumps"


def test_the_library_contender_is_deterministic(small_slice: dict[str, Candles]) -> None:
    # On this slice the library wins (train() would refuse to write it); here: it refits identically.
    dataset = t.build_dataset(small_slice, 48)
    fold = t.walk_forward_folds(dataset.time_ms, t.fitting_rows(dataset, SMALL), SMALL)[0]
    x, y = dataset.x[fold.train], dataset.y[fold.train]
    first = library_logit(fit_library_model(x, y, SMALL.library), dataset.x[fold.test])
    second = library_logit(fit_library_model(x, y, SMALL.library), dataset.x[fold.test])
    assert np.array_equal(first, second)
    assert np.ptp(first) > 0  # it learned something, not a constant
    with pytest.raises(InvalidRequest, match="HistGradientBoosting beat the stumps"):
        t.train(dataset, replace(SMALL, compare_library=True))


def test_rolling_folds_fit_then_calibrate_then_test_each_purged_by_the_horizon(
    small_slice: dict[str, Candles],
) -> None:
    dataset = t.build_dataset(small_slice, 48)
    fit = t.fitting_rows(dataset, SMALL)
    folds = t.walk_forward_folds(dataset.time_ms, fit, SMALL)
    horizon_ms = 48 * 5 * 60 * 1000
    assert [f.fold for f in folds] == [1, 2, 3, 4]
    for fold in folds:
        train_t = dataset.time_ms[fold.train]
        cal_t = dataset.time_ms[fold.calibration]
        test_t = dataset.time_ms[fold.test]
        assert train_t.size
        assert cal_t.size
        assert test_t.size
        # Every fitting label ends before calibration starts, every calibration label before the test.
        assert train_t.max() + horizon_ms < fold.calibration_from_ms <= cal_t.min()
        assert cal_t.max() + horizon_ms < fold.test_from_ms <= test_t.min()
        assert test_t.max() < fold.test_to_ms
        # A rolling window of a fixed length, not an expanding one.
        assert train_t.min() >= fold.train_from_ms == fold.calibration_from_ms - SMALL.train_days * t.DAY_MS
        assert fold.test_to_ms - fold.test_from_ms <= SMALL.test_days * t.DAY_MS
        assert not (fold.train & fold.calibration).any()
        assert not ((fold.train | fold.calibration) & fold.test).any()
    for a, b in itertools.pairwise(folds):
        assert a.test_to_ms == b.test_from_ms  # consecutive, non-overlapping test windows
        assert b.train_from_ms - a.train_from_ms == SMALL.test_days * t.DAY_MS  # the window rolls


def test_the_held_out_symbols_are_never_fitted_on(small_slice: dict[str, Candles]) -> None:
    dataset = t.build_dataset(small_slice, 48)
    held = np.asarray(dataset.symbols)[dataset.symbol] == "AVAXUSDT"
    assert held.any()
    fit = t.fitting_rows(dataset, SMALL)
    assert not (fit & held).any()
    assert np.array_equal(t.unseen_rows(dataset, SMALL), held)
    for fold in t.walk_forward_folds(dataset.time_ms, fit, SMALL):
        assert not ((fold.train | fold.calibration) & held).any()
        assert (fold.test & held).any()  # but they are scored
    # Proof by change: flip every label of the held-out symbol, and no model changes at all.
    flipped = replace(dataset, y=np.where(held, 1.0 - dataset.y, dataset.y))
    a = t.train(dataset, SMALL)
    b = t.train(flipped, SMALL)
    assert w.weights_to_json(a.weights)["final"] == w.weights_to_json(b.weights)["final"]
    assert w.weights_to_json(a.weights)["walk_forward"] == w.weights_to_json(b.weights)["walk_forward"]
    assert a.report["out_of_sample"]["unseen"] != b.report["out_of_sample"]["unseen"]  # only the scoring
    assert a.report["out_of_sample"]["later"] == b.report["out_of_sample"]["later"]
    assert a.weights.training["holdout_symbols"] == ["AVAXUSDT"]
    assert "AVAXUSDT" not in a.weights.training["symbols"]


def test_a_winning_library_model_is_refused_because_its_trees_cannot_be_written() -> None:
    def figures(log_loss: float) -> dict[str, float]:
        return {"log_loss": log_loss, "brier": 0.2}

    later = {
        "stumps_calibrated": figures(0.62),
        "library_calibrated": figures(0.61),
        "base_rate": figures(0.63),
    }
    with pytest.raises(InvalidRequest, match="HistGradientBoosting beat the stumps"):
        t._compare({"later": later}, t.TrainConfig())
    later["library_calibrated"] = figures(0.63)
    assert t._compare({"later": later}, t.TrainConfig())["kept"] == "stumps"


def test_platt_calibration_fitted_on_its_own_slice_improves_brier_out_of_sample() -> None:
    # A model that is overconfident and biased: its logit is 3 x the true one, plus 1.
    rng = np.random.default_rng(11)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        true_logit = rng.normal(-0.8, 0.6, n)
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-true_logit))).astype(np.float64)
        return 3.0 * true_logit + 1.0, y

    calibration_logit, calibration_y = sample(50_000)
    test_logit, test_y = sample(50_000)  # a separate slice: the calibration never sees it
    platt = t.fit_platt(calibration_logit, calibration_y)
    raw = q.sigmoid(test_logit)
    calibrated = q.sigmoid(platt.a * test_logit + platt.b)
    assert brier(test_y, calibrated) < brier(test_y, raw) - 0.02
    assert platt.a == pytest.approx(1 / 3, abs=0.03)
    # Calibration is monotone: the ranking (AUC) is unchanged.
    assert auc(test_y, calibrated) == pytest.approx(auc(test_y, raw), abs=1e-12)


def test_platt_scaling_recovers_a_known_calibration() -> None:
    rng = np.random.default_rng(3)
    logit = rng.normal(0, 1.5, 200_000)
    y = (rng.uniform(size=logit.shape) < 1 / (1 + np.exp(-(0.5 * logit - 1.0)))).astype(np.float64)
    platt = t.fit_platt(logit, y)
    assert platt.a == pytest.approx(0.5, abs=0.02)
    assert platt.b == pytest.approx(-1.0, abs=0.02)


def test_auc_counts_ranking_quality_and_ties() -> None:
    y = np.array([0.0, 0.0, 1.0, 1.0])
    assert auc(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(y, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert auc(y, np.array([0.1, 0.3, 0.2, 0.4])) == 0.75
    assert math.isnan(auc(np.ones(3), np.array([0.1, 0.2, 0.3])))


def test_boosting_learns_a_step_that_is_in_the_data() -> None:
    # y depends on x0 only (70% positive above 0, 20% below); x1 is noise.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20_000, 2))
    y = (rng.uniform(size=20_000) < np.where(x[:, 0] > 0, 0.7, 0.2)).astype(np.float64)
    edges = t.fit_bins(x, 16)
    config = t.TrainConfig(rounds=200, min_leaf=200, l2=1.0, learning_rate=0.2)
    model = t.fit_boosted(t.bin_codes(x, edges), y, edges, config, names=("x0", "x1"))
    p = 1 / (1 + np.exp(-t.raw_logit(model, np.array([[1.0, 0.0], [-1.0, 0.0]]))))
    assert p[0] == pytest.approx(0.7, abs=0.05)
    assert p[1] == pytest.approx(0.2, abs=0.05)
    spread = [float(np.ptp(t)) for t in model.tables]
    assert spread[0] > 5 * spread[1]  # the noise feature barely moves the score
    # Tables are centered on the training data: the mean contribution of each feature is 0.
    codes = t.bin_codes(x, model.edges)
    for f in range(2):
        assert abs(float(model.tables[f][codes[:, f]].mean())) < 1e-12


def test_bin_edges_never_sit_on_a_data_value() -> None:
    x = np.repeat(np.arange(100, dtype=np.float64), 7).reshape(-1, 1)
    (edges,) = t.fit_bins(x, 8)
    assert edges.size <= 7
    assert not np.isin(edges, x).any()


def test_reports_score_each_bar_with_the_fold_model_that_never_saw_it(weights: w.QuantumWeights) -> None:
    from lib.research.market import build_market, score_market, walk_forward_scores

    candles = load_candles("BTCUSDT", BUNDLED_USDT_DIR / "5m")
    pf = panel_features(
        single_symbol_panel(
            "BTCUSDT",
            candles.open_time_ms,
            candles.open,
            candles.high,
            candles.low,
            candles.close,
            candles.volume,
        )
    )
    bars, mode = walk_forward_scores(pf, weights)
    assert mode == "walk_forward"
    times = candles.open_time_ms
    assert not bars.valid[0][times < weights.folds[0].valid_from_ms].any()  # the first fitting window
    deployed = q.score_features(pf, weights.final)
    for fold in weights.folds:
        window = (times >= fold.valid_from_ms) & (times < fold.valid_to_ms)
        own = q.score_features(pf, fold.model)
        ok = window & own.valid[0]
        assert ok.sum() > 1000
        assert np.array_equal(bars.score[0][ok], own.score[0][ok])
        assert not np.array_equal(bars.score[0][ok], deployed.score[0][ok])  # not the deployed model
    # The report's scoring path does the same.
    market = build_market({"BTCUSDT": candles}, 5 * 60 * 1000)
    scored = score_market("quantum_ai", market, walk_forward=True, workers=1)
    assert np.array_equal(scored.valid, bars.valid[0])
    assert np.array_equal(scored.score[scored.valid], bars.score[0][bars.valid[0]])
    # Bars before the training data (the 2018 set) are scored by the deployed model.
    old = load_all()["ETHBTC"]
    old_pf = panel_features(
        single_symbol_panel("ETHBTC", old.open_time_ms, old.open, old.high, old.low, old.close, old.volume)
    )
    outside, mode = walk_forward_scores(old_pf, weights)
    assert mode == "outside"
    assert np.array_equal(outside.score, q.score_features(old_pf, weights.final).score, equal_nan=True)


def test_the_compiled_bin_lookups_equal_numpys_searchsorted() -> None:
    rng = np.random.default_rng(2)
    edges = np.sort(rng.normal(size=31))
    table = rng.normal(size=32)
    x = np.concatenate([rng.normal(size=5000), edges, [np.nan, np.inf, -np.inf, edges[0] - 1e-12]])
    expected = table[np.searchsorted(edges, x, side="right")]
    assert np.array_equal(w.lookup(edges, table, x), expected)
    # The fused logit (every feature in one pass, used when components are not needed) adds the same
    # numbers in the same order as a running sum of the per-feature lookups: equal bits.
    model = w.AdditiveModel(("a", "b"), (edges, edges[:7]), (table, table[:8]), 0.25)
    inputs = {"a": x, "b": x[::-1].copy()}
    running = np.full(x.shape, 0.25)
    for values in model.contributions(inputs).values():
        running += values
    assert np.array_equal(model.logit(inputs), running)


def test_scores_without_components_are_the_same_scores(bundled: dict[str, Candles]) -> None:
    panel = window_panel(bundled, 5700, length=3000)
    pf = panel_features(panel)
    model = w.load_weights().final
    full = q.score_features(pf, model)
    lean = q.score_features(pf, model, with_components=False)
    assert lean.components == {}
    assert full.components
    for name in ("valid", "sign", "score", "confidence", "entry", "stop_loss", "take_profit"):
        assert np.array_equal(getattr(full, name), getattr(lean, name), equal_nan=True), name
