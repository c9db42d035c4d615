"""quantum_ai: the versioned weights, deterministic inference, calibration, training on small data.

The full retraining on the bundled data (it must reproduce the committed weights) is an integration
test: tests/integration/test_quantum_ai_training.py.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from lib.core.candles import CandlePanel, Candles
from lib.errors import ConfigError
from lib.research import training as t
from lib.research.bundled_data import load_all
from lib.scoring import quantum_ai as q
from lib.scoring import quantum_ai_weights as w
from lib.scoring import score
from lib.scoring.features import panel_features, single_symbol_panel


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


def small_subset(bundled: dict[str, Candles]) -> dict[str, Candles]:
    """Two symbols, their first 1,500 bars: a deterministic, quick training set."""
    out = {}
    for symbol in ("ETHBTC", "LTCBTC"):
        c = bundled[symbol]
        cut = slice(0, 1500)
        out[symbol] = Candles(
            symbol, c.open_time_ms[cut], c.open[cut], c.high[cut], c.low[cut], c.close[cut], c.volume[cut]
        )
    return out


SMALL = t.TrainConfig(folds=2, rounds=40, min_leaf=100)


def test_the_versioned_weights_load_and_describe_their_training(
    weights: w.QuantumWeights, bundled: dict[str, Candles]
) -> None:
    assert weights.version == "quantum_ai_v1"
    assert weights.final.model.feature_names == w.FEATURE_NAMES
    assert (weights.horizon_bars, weights.sl_atr, weights.tp_atr, weights.bar_minutes) == (48, 1.5, 3.0, 5.0)
    training = weights.training
    assert training["data_fingerprint"] == t.data_fingerprint(bundled)
    assert training["symbols"] == sorted(bundled)
    assert training["config"]["rounds"] == t.TrainConfig().rounds
    assert len(weights.folds) == training["config"]["folds"] == 4
    for fold in training["metrics"]["folds"]:
        assert 0.45 < fold["calibrated"]["auc"] < 0.75
        assert fold["calibrated"]["log_loss"] > 0
        assert 0 < fold["calibrated"]["brier"] < 0.25


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


def test_calibrated_probabilities_match_observed_rates_out_of_fold(weights: w.QuantumWeights) -> None:
    oof = weights.training["metrics"]["out_of_fold"]
    pooled = oof["walk_forward_calibrated"]
    assert abs(pooled["mean_predicted"] - pooled["base_rate"]) < 0.03
    for row in oof["calibration_final_platt_on_oof"]:
        if row["count"] >= 1000:  # bands with enough samples to judge
            assert abs(row["mean_predicted"] - row["observed"]) < 0.03


def test_training_twice_on_a_small_subset_gives_identical_weights(bundled: dict[str, Candles]) -> None:
    subset = small_subset(bundled)
    runs = []
    for _ in range(2):
        dataset = t.build_dataset(subset, SMALL.horizon_bars)
        result = t.train(dataset, SMALL, fingerprint=t.data_fingerprint(subset))
        runs.append(w.dump_weights(result.weights))
    assert runs[0] == runs[1]
    reloaded = w.weights_from_json(json.loads(runs[0]))
    assert w.dump_weights(reloaded) == runs[0]  # the file format round-trips exactly
    assert len(reloaded.folds) == 2


def test_walk_forward_training_never_postdates_validation(bundled: dict[str, Candles]) -> None:
    dataset = t.build_dataset(small_subset(bundled), 48)
    horizon_ms = 48 * 5 * 60 * 1000
    splits = t.walk_forward_splits(dataset.time_ms, 4, horizon_ms)
    assert [s.fold for s in splits] == [1, 2, 3, 4]
    previous_train = 0
    for split in splits:
        train_times = dataset.time_ms[split.train]
        valid_times = dataset.time_ms[split.valid]
        assert train_times.size
        assert valid_times.size
        # The last training label (bar + horizon) ends before the first validation bar.
        assert train_times.max() + horizon_ms < valid_times.min()
        assert valid_times.min() >= split.valid_from_ms
        assert valid_times.max() < split.valid_to_ms
        assert int(split.train.sum()) > previous_train  # an expanding window
        previous_train = int(split.train.sum())
    for a, b in itertools.pairwise(splits):
        assert a.valid_to_ms == b.valid_from_ms  # consecutive, non-overlapping validation blocks


def test_each_fold_is_calibrated_only_on_earlier_folds(weights: w.QuantumWeights) -> None:
    folds = weights.training["metrics"]["folds"]
    assert folds[0]["calibration"] == "none (no earlier fold)"
    assert weights.folds[0].model.platt == w.Platt(1.0, 0.0)
    assert all(f["calibration"] == "platt on earlier folds" for f in folds[1:])
    for fold in folds:
        assert fold["train_to_ms"] + 48 * 5 * 60 * 1000 < fold["valid_from_ms"]


def test_platt_scaling_recovers_a_known_calibration() -> None:
    rng = np.random.default_rng(3)
    logit = rng.normal(0, 1.5, 200_000)
    y = (rng.uniform(size=logit.shape) < 1 / (1 + np.exp(-(0.5 * logit - 1.0)))).astype(np.float64)
    platt = t.fit_platt(logit, y)
    assert platt.a == pytest.approx(0.5, abs=0.02)
    assert platt.b == pytest.approx(-1.0, abs=0.02)


def test_auc_counts_ranking_quality_and_ties() -> None:
    y = np.array([0.0, 0.0, 1.0, 1.0])
    assert t.auc(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert t.auc(y, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert t.auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert t.auc(y, np.array([0.1, 0.3, 0.2, 0.4])) == 0.75
    assert math.isnan(t.auc(np.ones(3), np.array([0.1, 0.2, 0.3])))


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
