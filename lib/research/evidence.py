"""Does following a score pay after fees? Per score bucket: the trades, their mean R net, and a baseline.

:func:`bucket_evidence` treats every scored bar as a signal on its scored side (no portfolio limits:
each one is evaluated on its own, with the exit rules and costs of :mod:`lib.research.exits`) and
groups them by score: ``0-10``, ``10-20``, ..., ``90-100`` (the top one includes 100) and
``>=threshold``. Only final outcomes count (TP, SL or the full horizon); a signal whose horizon runs
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
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from lib.research.backtest_report import BUCKET_EDGES
from lib.research.baseline import baseline_means, baseline_rows, bootstrap_means, draw_keys
from lib.research.exits import HORIZON, SL, TP, ExitRules, Exits, find_exits
from lib.research.market import Market, MarketScores
from lib.research.simulation import signal_rows
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
        out.append((f">={threshold:g}", float(threshold), 100.0, score >= threshold))
    return out


@dataclass(frozen=True, slots=True)
class SideOutcomes:
    """For signal rows: the scored side's exits (``chosen``) and the other side's (``other``, only at
    ``other_rows``: where its levels can be placed)."""

    rows: IntArray
    chosen: Exits
    other_rows: IntArray
    other_sign: npt.NDArray[np.int8]
    other: Exits


def side_outcomes(market: Market, scores: MarketScores, rows: IntArray, rules: ExitRules) -> SideOutcomes:
    """Both sides' exits at ``rows``, in one compiled pass (module docstring: the other side's levels)."""
    other = (-scores.sign[rows]).astype(np.int8)
    entry = scores.entry[rows]
    atr = scores.atr[rows]
    placeable = levels_valid(entry, atr, other)
    stop, take = levels(entry, atr, other)
    both_rows = np.concatenate([rows, rows[placeable]])
    both = find_exits(
        market,
        both_rows,
        np.concatenate([scores.sign[rows], other[placeable]]),
        np.concatenate([scores.stop_loss[rows], stop[placeable]]),
        np.concatenate([scores.take_profit[rows], take[placeable]]),
        rules,
    )
    n = rows.shape[0]

    def part(sl: slice) -> Exits:
        return Exits(**{f.name: getattr(both, f.name)[sl] for f in fields(Exits)})

    return SideOutcomes(
        rows=rows,
        chosen=part(slice(0, n)),
        other_rows=rows[placeable],
        other_sign=other[placeable],
        other=part(slice(n, None)),
    )


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
) -> BaselinePlan:
    """Every scored bar in ``[start_ms, end_ms)`` as a signal, both sides' exits, buckets and pools."""
    rows = signal_rows(market, scores, -math.inf, start_ms=start_ms, end_ms=end_ms)
    sides = side_outcomes(market, scores, rows, rules)
    final = sides.chosen.final
    sig_rows = rows[final]
    sig_sign = scores.sign[sig_rows]
    sig_r = sides.chosen.r_net[final]
    other_final = sides.other.final
    pool_rows = np.concatenate([sig_rows, sides.other_rows[other_final]])
    pool_sign = np.concatenate([sig_sign, sides.other_sign[other_final]]).astype(np.int8)
    pool_r = np.concatenate([sig_r, sides.other.r_net[other_final]])
    groups = 2 * len(market.symbols)
    pool_group = 2 * market.symbol_id[pool_rows] + (pool_sign < 0)
    order = np.argsort(pool_group, kind="stable")
    pool_start = np.searchsorted(pool_group[order], np.arange(groups + 1)).astype(np.int64)
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
        signal_r=sig_r,
        signal_cost=(sides.chosen.r_gross - sides.chosen.r_net)[final],
        signal_reason=sides.chosen.reason[final],
        pool_rows=pool_rows[order],
        pool_sign=pool_sign[order],
        pool_r=pool_r[order],
        pool_start=pool_start,
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
) -> Evidence:
    """The per-bucket evidence of ``scores`` on ``market`` (signal bars in ``[start_ms, end_ms)``).

    The baseline's draws come from ``seed``, the bootstrap's from ``seed + 1``.
    """
    if draws < 1 or bootstrap < 1:
        raise ValueError("draws and bootstrap must be at least 1")
    plan = baseline_plan(market, scores, threshold, rules=rules, start_ms=start_ms, end_ms=end_ms)
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
