"""Replay candles through a scorer and measure, per score bucket, how often TP came before SL.

``run_backtest(algorithm, data_dir)`` does, for every symbol of the data folder:

1. load its 5-minute candles; for a longer ``timeframe`` resample them first (below);
2. score every bar at once with the algorithm's ``score_bars`` (the same math ``score_panel`` uses on
   the scanner's last bar: features are computed once over the full series, and each bar's score only
   depends on bars up to it; see :mod:`lib.scoring.features` for why that equals a rolling window);
3. keep every ``step``-th bar that has a score (warm-up: SMA200 needs 200 bars), one signal per bar:
   the better side, with entry = close and the ATR levels of :mod:`lib.scoring.levels`;
4. label each signal with :func:`lib.core.outcomes.label_outcomes` over ``horizon_bars`` bars of the same
   timeframe (TP first / SL first / neither, both in one bar counts as SL; R multiple). Signals whose
   horizon runs past the end of the data without a TP or SL are left out (counted in
   ``BacktestReport.incomplete``);
5. count signals per score bucket: ``[0, 10)``, ``[10, 20)``, ..., ``[90, 100]``, plus the summary rows
   ``>=80`` and ``all``: signals, TP-first / SL-first / neither counts and shares, mean R.

Every bar is a signal here, whatever its score: the table shows what each threshold would have let
through. Signals on consecutive bars of one move overlap and are not independent; the counts are not
a number of independent trades.

``quantum_ai`` and its training data. The model was trained on the bundled 2024 USDT candles. On bars
inside the training period (any symbol, time between the training data's first and last bar) the
backtest scores with the rolling walk-forward fold model whose test window holds the bar: fitted and
calibrated only on data that ended before that window (purged by the horizon). Bars of the first
fitting and calibration window are left out (:func:`lib.research.market.walk_forward_scores`). Bars
outside the training period are scored with the deployed model. ``BacktestReport.sample`` says which
was used; ``out_of_sample=False`` scores every bar with the deployed model and labels the report
IN-SAMPLE.

Timeframes. ``timeframe`` is a Bybit interval that is a whole number of 5-minute bars; longer bars are
built from the 5-minute candles by :mod:`lib.research.resample`. ``horizon_bars`` counts bars of the
chosen timeframe. ``quantum_ai`` was trained on
5-minute bars only; on other timeframes the report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lib.core.candles import Candles
from lib.core.outcomes import NEITHER, SL_FIRST, TP_FIRST, label_outcomes
from lib.core.vocabulary import ALGORITHMS
from lib.errors import ConfigError, InvalidRequest
from lib.research.backtest_report import BUCKET_EDGES, BacktestReport, BucketRow
from lib.research.bundled_data import BUNDLED_DATA_DIR, load_all
from lib.research.exits import DEFAULT_HORIZON_BARS
from lib.research.market import walk_forward_scores
from lib.research.resample import resample, timeframe_minutes
from lib.scoring import quantum_ai, unirail_core
from lib.scoring.features import MIN_HISTORY, BarScores, panel_features, single_symbol_panel
from lib.scoring.levels import SL_ATR, TP_ATR
from lib.scoring.quantum_ai_weights import WEIGHTS_PATH, QuantumWeights, load_weights

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

Progress = Callable[[int, int], None]
# --------------------------------------------------------------------------------------------------
# Scoring and aggregation.
# --------------------------------------------------------------------------------------------------


def _bucket_rows(scores: FloatArray, result: IntArray, r: FloatArray) -> tuple[BucketRow, ...]:
    def row(name: str, low: float, high: float, mask: npt.NDArray[np.bool_]) -> BucketRow:
        n = int(mask.sum())
        tp = int((result[mask] == TP_FIRST).sum())
        sl = int((result[mask] == SL_FIRST).sum())
        ne = int((result[mask] == NEITHER).sum())
        nan = float("nan")
        return BucketRow(
            bucket=name,
            low=low,
            high=high,
            signals=n,
            tp_first=tp,
            sl_first=sl,
            neither=ne,
            tp_share=tp / n if n else nan,
            sl_share=sl / n if n else nan,
            neither_share=ne / n if n else nan,
            mean_r=float(r[mask].mean()) if n else nan,
        )

    rows: list[BucketRow] = []
    top = len(BUCKET_EDGES) - 2
    for k in range(len(BUCKET_EDGES) - 1):
        low, high = BUCKET_EDGES[k], BUCKET_EDGES[k + 1]
        upper = scores <= high if k == top else scores < high
        rows.append(row(f"{low:.0f}-{high:.0f}", low, high, (scores >= low) & upper))
    rows.append(row(">=80", 80.0, 100.0, scores >= 80.0))
    rows.append(row("all", 0.0, 100.0, np.ones(scores.shape, dtype=np.bool_)))
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class _QuantumPlan:
    """Which quantum_ai model scores which bar of one symbol (see the module docstring)."""

    weights: QuantumWeights
    out_of_sample: bool


def _score_symbol(
    algorithm: str, candles: Candles, plan: _QuantumPlan | None
) -> tuple[BarScores, npt.NDArray[np.bool_], str]:
    """The symbol's bar scores, which bars may be used, and which model scored them."""
    panel = single_symbol_panel(
        candles.symbol,
        candles.open_time_ms,
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        candles.volume,
    )
    pf = panel_features(panel)
    if algorithm == unirail_core.NAME:
        bars = unirail_core.score_features(pf)
        return bars, bars.valid[0], "all"
    assert plan is not None  # run_backtest builds the plan for quantum_ai
    if plan.out_of_sample:
        bars, mode = walk_forward_scores(pf, plan.weights)
        return bars, bars.valid[0], mode
    final = quantum_ai.score_features(pf, plan.weights.final)
    training = plan.weights.training
    times = candles.open_time_ms
    inside = (times >= int(training["first_bar_ms"])) & (times <= int(training["last_bar_ms"]))
    return final, final.valid[0], "in_sample" if inside.any() else "outside"


def _sample_note(algorithm: str, modes: set[str], timeframe: str) -> str:
    if algorithm == unirail_core.NAME:
        return "every scored bar (unirail_core has no training data)"
    parts: list[str] = []
    if "walk_forward" in modes:
        parts.append(
            "OUT-OF-SAMPLE: bars in the training period scored by walk-forward fold models fitted and "
            "calibrated only on earlier data; the first fitting window is left out"
        )
    if "outside" in modes:
        parts.append("bars outside the training data scored by the deployed model")
    if "in_sample" in modes:
        parts.append("IN-SAMPLE: every bar scored by the deployed model, which was trained on these bars")
    if timeframe != "5":
        parts.append(f"the model was trained on 5-minute bars, not {timeframe}")
    return "; ".join(parts) or "no bars"


def run_backtest(
    algorithm: str,
    data_dir: Path | str = BUNDLED_DATA_DIR,
    *,
    timeframe: str = "5",
    horizon_bars: int = DEFAULT_HORIZON_BARS,
    step: int = 1,
    progress: Progress | None = None,
    out_of_sample: bool = True,
    weights_path: Path | None = None,
) -> BacktestReport:
    """Replay ``data_dir``'s candles through ``algorithm`` and aggregate outcomes per score bucket.

    ``progress(done, total)`` is called after each symbol (``total`` = number of symbols). For
    ``quantum_ai``, ``out_of_sample`` (default) scores the training period with the walk-forward fold
    models; ``weights_path`` picks another weights file. See the module docstring for every rule.
    """
    if algorithm not in ALGORITHMS:
        raise InvalidRequest(
            f"unknown algorithm {algorithm!r}", details={"algorithm": algorithm, "known": list(ALGORITHMS)}
        )
    minutes = timeframe_minutes(timeframe)
    if isinstance(horizon_bars, bool) or not isinstance(horizon_bars, int) or horizon_bars < 1:
        raise InvalidRequest(f"horizon_bars must be an integer >= 1, got {horizon_bars!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise InvalidRequest(f"step must be an integer >= 1, got {step!r}")
    plan = None
    if algorithm == quantum_ai.NAME:
        weights = load_weights(weights_path or WEIGHTS_PATH)
        plan = _QuantumPlan(weights=weights, out_of_sample=out_of_sample)

    candles_by_symbol = load_all(Path(data_dir))
    if not candles_by_symbol:
        raise ConfigError(f"no candle files (<SYMBOL>-5m.csv or <SYMBOL>-5m.csv.gz) in {data_dir}")
    symbols = tuple(sorted(candles_by_symbol))
    bar_ms = minutes * 60_000
    all_scores: list[FloatArray] = []
    all_results: list[IntArray] = []
    all_r: list[FloatArray] = []
    all_times: list[IntArray] = []
    incomplete = 0
    longest = 0
    modes: set[str] = set()
    for done, symbol in enumerate(symbols, start=1):
        candles = resample(candles_by_symbol[symbol], minutes)
        longest = max(longest, len(candles))
        if len(candles) > 0:
            bars, usable, mode = _score_symbol(algorithm, candles, plan)
            picked = np.flatnonzero(usable)
            picked = picked[picked % step == 0]
            if picked.size:
                modes.add(mode)
                out = label_outcomes(
                    candles.open_time_ms,
                    candles.high,
                    candles.low,
                    candles.close,
                    bar_index=picked,
                    sign=bars.sign[0, picked].astype(np.float64),
                    entry=bars.entry[0, picked],
                    stop_loss=bars.stop_loss[0, picked],
                    take_profit=bars.take_profit[0, picked],
                    horizon_bars=horizon_bars,
                    bar_ms=bar_ms,
                )
                keep = out.complete
                incomplete += int((~keep).sum())
                all_scores.append(bars.score[0, picked][keep])
                all_results.append(out.result[keep])
                all_r.append(out.r_multiple[keep])
                all_times.append(candles.open_time_ms[picked][keep])
        if progress is not None:
            progress(done, len(symbols))

    scores = np.concatenate(all_scores) if all_scores else np.empty(0)
    results = np.concatenate(all_results) if all_results else np.empty(0, dtype=np.int64)
    r_multiple = np.concatenate(all_r) if all_r else np.empty(0)
    times = np.concatenate(all_times) if all_times else np.empty(0, dtype=np.int64)
    if scores.shape[0] == 0:
        raise _nothing_to_report(timeframe, longest, horizon_bars, incomplete)
    return BacktestReport(
        algorithm=algorithm,
        timeframe=str(timeframe),
        horizon_bars=horizon_bars,
        step=step,
        sl_atr=SL_ATR,
        tp_atr=TP_ATR,
        symbols=symbols,
        first_bar_ms=int(times.min()) if times.size else None,
        last_bar_ms=int(times.max()) if times.size else None,
        signals=int(scores.shape[0]),
        incomplete=incomplete,
        sample=_sample_note(algorithm, modes, str(timeframe)),
        rows=_bucket_rows(scores, results, r_multiple),
    )


def _nothing_to_report(timeframe: str, longest: int, horizon_bars: int, incomplete: int) -> InvalidRequest:
    """Why no signal was labelled: an all-zero table would read as a result, so it is an error instead."""
    if incomplete:
        reason = (
            f"all {incomplete} scored bars are too close to the end of the data to reach TP or SL within "
            f"{horizon_bars} bars (try a shorter --horizon)"
        )
    else:
        reason = (
            f"the longest series has {longest} bars of timeframe {timeframe}, and a score needs "
            f"{MIN_HISTORY} bars of history before it (try a shorter --timeframe, or more data)"
        )
    return InvalidRequest(f"not enough data: no signal could be scored and labelled: {reason}")
