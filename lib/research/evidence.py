"""Does following a score pay after fees? Per score bucket: the trades, their mean R net, and a baseline.

:func:`bucket_evidence` treats every scored bar as a signal on its scored side (no portfolio limits:
each one is evaluated on its own, with the exit rules and costs of :mod:`lib.research.exits`) and
groups them by score: ``0-10``, ``10-20``, ..., ``90-100`` (the top one includes 100) and
``>=threshold`` (the simulation's signals: the score as the scanner stores it, two decimals, at least
the threshold). Only final outcomes count (TP, SL or the full horizon); a signal whose horizon runs
past the data's end, or that could not be entered, is left out (``Evidence.left_out``).

Per bucket:

- ``signals``; ``tp_first_pct``, ``sl_first_pct``, ``neither_pct`` (the horizon's close), in percent;
- ``mean_r_net``: the mean R net of fees and slippage, and its 95% bootstrap interval
  (``mean_r_ci_low``, ``mean_r_ci_high``: the 2.5th and 97.5th percentiles of ``bootstrap`` resampled
  means, percentile method);
- ``baseline_mean_r_net``: the random-entry baseline. Each of ``draws`` draws enters, for every symbol,
  as many LONG and as many SHORT trades as the bucket has there, at bars drawn at random (with
  replacement) from that symbol's bars where that side's trade has a final outcome (same period, same
  exit rules, same fees); its value is the mean R of those trades. The baseline is the mean of the
  draws;
- ``p_value``: one-sided, that the bucket beats the baseline: ``(1 + k) / (1 + draws)`` where ``k`` is
  the number of draws whose mean R is at least the bucket's. The ``+1`` counts the bucket itself as one
  draw of the null (the usual Monte Carlo p-value), so it is never 0 and 200 draws can show at best
  ``p = 0.005``;
- ``mean_cost_r``: the mean of what fees and slippage took from each trade, in R (gross minus net).

The levels of the side a bar was not scored for come from :func:`lib.scoring.levels.levels` on the
bar's close and ATR (the same rule the scorers use); bars where that side's levels cannot be placed
are not in its pool. Seeds: :mod:`lib.research.baseline` (fixed, thread-count independent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lib.research.backtest_report import BUCKET_EDGES
from lib.research.baseline import baseline_means, baseline_rows, bootstrap_means, draw_keys
from lib.research.exits import HORIZON, SL, TP, ExitRules, find_exits
from lib.research.market import Market, MarketScores, Progress
from lib.research.simulation import qualifies, signal_rows
from lib.scoring.levels import levels, levels_valid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_SEED = 20240601
DEFAULT_DRAWS = 200
DEFAULT_BOOTSTRAP = 1000
BUCKET_COLUMNS: tuple[str, ...] = (
    "bucket",
    "signals",
    "tp_first_pct",
    "sl_first_pct",
    "neither_pct",
    "mean_r_net",
    "mean_r_ci_low",
    "mean_r_ci_high",
    "baseline_mean_r_net",
    "p_value",
    "mean_cost_r",
)


@dataclass(frozen=True, slots=True)
class BucketEvidence:
    """One row of ``buckets.csv`` (module docstring); NaN figures for an empty bucket."""

    bucket: str
    low: float
    high: float
    signals: int
    tp_first_pct: float
    sl_first_pct: float
    neither_pct: float
    mean_r_net: float
    mean_r_ci_low: float
    mean_r_ci_high: float
    baseline_mean_r_net: float
    p_value: float
    mean_cost_r: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """What :func:`bucket_evidence` returns: the rows (ten buckets, then ``>=threshold``) and how they
    were made. ``baseline`` holds every draw's mean R (rows as ``rows``, one column per draw)."""

    threshold: float
    rules: ExitRules
    draws: int
    bootstrap: int
    seed: int
    first_bar_ms: int | None
    last_bar_ms: int | None
    left_out: int
    rows: tuple[BucketEvidence, ...]
    baseline: FloatArray

    def row(self, bucket: str) -> BucketEvidence:
        """The row named ``bucket`` (``"80-90"``, ``">=80"``...)."""
        for r in self.rows:
            if r.bucket == bucket:
                return r
        raise KeyError(bucket)

    @property
    def threshold_row(self) -> BucketEvidence:
        """The ``>=threshold`` row."""
        return self.rows[-1]


def bucket_masks(score: FloatArray, threshold: float) -> list[tuple[str, float, float, BoolArray]]:
    """``(name, low, high, mask)`` for the ten buckets (top one closed at 100) and ``>=threshold``."""
    out: list[tuple[str, float, float, BoolArray]] = []
    top = len(BUCKET_EDGES) - 2
    with np.errstate(invalid="ignore"):
        for k in range(len(BUCKET_EDGES) - 1):
            low, high = BUCKET_EDGES[k], BUCKET_EDGES[k + 1]
            upper = score <= high if k == top else score < high
            out.append((f"{low:.0f}-{high:.0f}", low, high, (score >= low) & upper))
        out.append((f">={threshold:g}", float(threshold), 100.0, qualifies(score, threshold)))
    return out


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else math.nan


@dataclass(frozen=True, slots=True)
class BaselinePlan:
    """The signals with a final outcome, their buckets, and the pools the baseline draws from.

    ``masks[b]`` selects bucket ``b``'s signals (``names[b]``). Pools are sorted by group (``2 *
    symbol index + (1 for SHORT)``): group ``g`` is ``pool_*[pool_start[g]:pool_start[g + 1]]``;
    ``counts[b, g]`` is bucket ``b``'s number of signals in group ``g``.
    """

    names: tuple[str, ...]
    lows: tuple[float, ...]
    highs: tuple[float, ...]
    masks: BoolArray
    signal_rows: IntArray
    signal_sign: npt.NDArray[np.int8]
    signal_r: FloatArray
    signal_cost: FloatArray
    signal_reason: npt.NDArray[np.int8]
    pool_rows: IntArray
    pool_sign: npt.NDArray[np.int8]
    pool_r: FloatArray
    pool_start: IntArray
    counts: IntArray
    left_out: int

    def draw(self, seed: int, draw: int, bucket: int) -> tuple[IntArray, npt.NDArray[np.int8]]:
        """The market rows and sides that draw ``draw`` (0-based) of ``seed`` enters for ``bucket``:
        exactly the trades whose mean R is ``baseline_means(...)[bucket, draw]``."""
        key = draw_keys(seed, draw + 1)[draw]
        at = baseline_rows(key, bucket, self.counts[bucket], np.arange(self.pool_rows.size), self.pool_start)
        return self.pool_rows[at], self.pool_sign[at]

    def baseline(self, seed: int, draws: int) -> FloatArray:
        """Every draw's mean R for every bucket (buckets x draws)."""
        return baseline_means(draw_keys(seed, draws), self.counts, self.pool_r, self.pool_start)


def baseline_plan(
    market: Market,
    scores: MarketScores,
    threshold: float,
    *,
    rules: ExitRules = ExitRules(),  # noqa: B008 - frozen: one shared default is safe
    start_ms: int | None = None,
    end_ms: int | None = None,
    progress: Progress | None = None,
) -> BaselinePlan:
    """Every scored bar in ``[start_ms, end_ms)`` as a signal, both sides' exits, buckets and pools.

    One symbol at a time: its bars' exits on both sides in one compiled pass, of which only the R,
    the cost and the reason are kept (the full exit table of every bar, twice, would be the peak of
    the whole report). Pools come out grouped in order: LONG then SHORT of each symbol in turn.
    ``progress(done, total)`` is called after each symbol.
    """
    rows = signal_rows(market, scores, -math.inf, start_ms=start_ms, end_ms=end_ms)
    cuts = np.searchsorted(rows, market.start)
    parts: dict[str, list[npt.NDArray[np.generic]]] = {
        name: [] for name in ("rows", "sign", "r", "cost", "reason", "pool_rows", "pool_sign", "pool_r")
    }
    sizes: list[int] = []
    for k in range(len(market.symbols)):
        mine = rows[cuts[k] : cuts[k + 1]]
        chosen = scores.sign[mine]
        other = (-chosen).astype(np.int8)
        entry, atr = scores.entry[mine], scores.atr[mine]
        placeable = levels_valid(entry, atr, other)
        stop, take = levels(entry[placeable], atr[placeable], other[placeable])
        both_rows = np.concatenate([mine, mine[placeable]])
        both_sign = np.concatenate([chosen, other[placeable]])
        ex = find_exits(
            market,
            both_rows,
            both_sign,
            np.concatenate([scores.stop_loss[mine], stop]),
            np.concatenate([scores.take_profit[mine], take]),
            rules,
        )
        final = ex.final
        signal = final.copy()
        signal[mine.size :] = False
        parts["rows"].append(both_rows[signal])
        parts["sign"].append(both_sign[signal])
        parts["r"].append(ex.r_net[signal])
        parts["cost"].append((ex.r_gross - ex.r_net)[signal])
        parts["reason"].append(ex.reason[signal])
        for side in (1, -1):
            pick = final & (both_sign == side)
            parts["pool_rows"].append(both_rows[pick])
            parts["pool_sign"].append(both_sign[pick])
            parts["pool_r"].append(ex.r_net[pick])
            sizes.append(int(pick.sum()))
        if progress is not None:
            progress(k + 1, len(market.symbols))

    def joined(name: str, dtype: type) -> npt.NDArray[Any]:
        return np.concatenate(parts[name]).astype(dtype) if parts[name] else np.empty(0, dtype=dtype)

    sig_rows = joined("rows", np.int64)
    sig_sign = joined("sign", np.int8)
    groups = 2 * len(market.symbols)
    buckets = bucket_masks(scores.score[sig_rows], threshold)
    sig_group = 2 * market.symbol_id[sig_rows] + (sig_sign < 0)
    counts = np.stack([np.bincount(sig_group[m], minlength=groups) for *_, m in buckets]).astype(np.int64)
    return BaselinePlan(
        names=tuple(name for name, *_ in buckets),
        lows=tuple(low for _, low, _, _ in buckets),
        highs=tuple(high for _, _, high, _ in buckets),
        masks=np.stack([m for *_, m in buckets]),
        signal_rows=sig_rows,
        signal_sign=sig_sign,
        signal_r=joined("r", np.float64),
        signal_cost=joined("cost", np.float64),
        signal_reason=joined("reason", np.int8),
        pool_rows=joined("pool_rows", np.int64),
        pool_sign=joined("pool_sign", np.int8),
        pool_r=joined("pool_r", np.float64),
        pool_start=np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64),
        counts=counts,
        left_out=int(rows.size - sig_rows.size),
    )


def bucket_evidence(
    market: Market,
    scores: MarketScores,
    threshold: float,
    *,
    rules: ExitRules = ExitRules(),  # noqa: B008 - frozen: one shared default is safe
    draws: int = DEFAULT_DRAWS,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    start_ms: int | None = None,
    end_ms: int | None = None,
    progress: Progress | None = None,
) -> Evidence:
    """The per-bucket evidence of ``scores`` on ``market`` (signal bars in ``[start_ms, end_ms)``).

    The baseline's draws come from ``seed``, the bootstrap's from ``seed + 1``. ``progress(done,
    total)`` is called after each symbol's exits (the draws and the bootstrap follow, a few seconds).
    """
    if draws < 1 or bootstrap < 1:
        raise ValueError("draws and bootstrap must be at least 1")
    plan = baseline_plan(
        market, scores, threshold, rules=rules, start_ms=start_ms, end_ms=end_ms, progress=progress
    )
    base = plan.baseline(seed, draws)
    values = np.concatenate([plan.signal_r[m] for m in plan.masks])
    sizes = plan.masks.sum(axis=1)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    boot = bootstrap_means(values, starts, draw_keys(seed + 1, len(plan.names)), bootstrap)

    out: list[BucketEvidence] = []
    nan = math.nan
    for b, name in enumerate(plan.names):
        mask = plan.masks[b]
        n = int(sizes[b])
        reason = plan.signal_reason[mask]
        mean = float(plan.signal_r[mask].mean()) if n else nan
        ci = np.percentile(boot[b], [2.5, 97.5]) if n else (nan, nan)
        out.append(
            BucketEvidence(
                bucket=name,
                low=plan.lows[b],
                high=plan.highs[b],
                signals=n,
                tp_first_pct=_pct(int(np.sum(reason == TP)), n),
                sl_first_pct=_pct(int(np.sum(reason == SL)), n),
                neither_pct=_pct(int(np.sum(reason == HORIZON)), n),
                mean_r_net=mean,
                mean_r_ci_low=float(ci[0]),
                mean_r_ci_high=float(ci[1]),
                baseline_mean_r_net=float(base[b].mean()) if n else nan,
                p_value=(1.0 + float(np.sum(base[b] >= mean))) / (1.0 + draws) if n else nan,
                mean_cost_r=float(plan.signal_cost[mask].mean()) if n else nan,
            )
        )
    times = market.open_time_ms[plan.signal_rows]
    return Evidence(
        threshold=float(threshold),
        rules=rules,
        draws=draws,
        bootstrap=bootstrap,
        seed=seed,
        first_bar_ms=int(times.min()) if times.size else None,
        last_bar_ms=int(times.max()) if times.size else None,
        left_out=plan.left_out,
        rows=tuple(out),
        baseline=base,
    )
