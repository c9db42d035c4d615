"""The in-sample threshold rule of ``aitradex backtest --split``: which score a signal must reach.

On the signals before the split only, the lowest of 10, 20, ..., 90 whose ``>=threshold`` set both
beats the random-entry baseline at p < 0.05 after fees (:func:`lib.research.evidence.bucket_evidence`)
and pays after fees: mean R net > 0 with the low end of its 95 % bootstrap interval > 0. If none does,
80 (the contract's default). Beating random entries alone is not enough: on hourly bars
``unirail_core`` at 10 beat them while earning almost nothing per trade. The report
(:mod:`lib.research.report`) then shows the chosen threshold's out-of-sample result, whatever it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from lib.research.evidence import DEFAULT_BOOTSTRAP, Evidence, bucket_evidence
from lib.research.exits import ExitRules
from lib.research.market import Market, MarketScores

#: Thresholds the in-sample rule tries, lowest first.
CANDIDATE_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in range(10, 100, 10))
#: What the rule falls back to when no candidate beats the baseline: the contract's default.
FALLBACK_THRESHOLD = 80.0
#: The one-sided p-value a threshold's signals must reach against the random-entry baseline.
SIGNIFICANCE = 0.05


@dataclass(frozen=True, slots=True)
class CandidateFigures:
    """A candidate threshold's in-sample figures: its ``>=threshold`` signals after fees.

    ``mean_r_ci_low`` is only computed (a full bootstrap) for a candidate that beats the baseline with a
    positive mean; NaN otherwise."""

    signals: int
    mean_r_net: float
    mean_r_ci_low: float
    baseline_mean_r_net: float
    p_value: float

    @property
    def beats_baseline(self) -> bool:
        """Beats random entries at p < 0.05 after fees."""
        return bool(
            self.signals and self.p_value < SIGNIFICANCE and self.mean_r_net > self.baseline_mean_r_net
        )

    @property
    def passes(self) -> bool:
        """The rule: beats the baseline and pays after fees (mean R net > 0, 95 % interval above 0)."""
        return self.beats_baseline and self.mean_r_net > 0 and self.mean_r_ci_low > 0


@dataclass(frozen=True, slots=True)
class ThresholdChoice:
    """How the threshold was chosen: the rule's verdict per candidate (in-sample p-values, figures)."""

    threshold: float
    chosen_in_sample: bool
    candidates: dict[float, float] = field(default_factory=dict)
    figures: dict[float, CandidateFigures] = field(default_factory=dict)


def choose_threshold(
    market: Market,
    scores: MarketScores,
    *,
    rules: ExitRules,
    start_ms: int | None,
    split_ms: int,
    seed: int,
) -> ThresholdChoice:
    """The lowest candidate whose ``>=threshold`` signals before ``split_ms`` beat the baseline at
    p < 0.05 after fees and pay after fees (mean R net > 0, 95 % interval above 0);
    :data:`FALLBACK_THRESHOLD` when none does (module docstring)."""
    p_values: dict[float, float] = {}
    figures: dict[float, CandidateFigures] = {}
    for threshold in CANDIDATE_THRESHOLDS:

        def evidence(bootstrap: int, threshold: float = threshold) -> Evidence:
            return bucket_evidence(
                market,
                scores,
                threshold,
                rules=rules,
                bootstrap=bootstrap,
                seed=seed,
                start_ms=start_ms,
                end_ms=split_ms,
            )

        # The p-value needs no interval, so a single bootstrap replicate keeps the first look cheap; the
        # full bootstrap runs only for a candidate that could pass.
        row = evidence(1).threshold_row
        p_values[threshold] = row.p_value if row.signals else math.nan
        figure = CandidateFigures(
            row.signals, row.mean_r_net, math.nan, row.baseline_mean_r_net, p_values[threshold]
        )
        if figure.beats_baseline and figure.mean_r_net > 0:
            full = evidence(DEFAULT_BOOTSTRAP).threshold_row
            figure = replace(figure, mean_r_ci_low=full.mean_r_ci_low)
        figures[threshold] = figure
        if figure.passes:
            return ThresholdChoice(threshold, True, p_values, figures)
    return ThresholdChoice(FALLBACK_THRESHOLD, False, p_values, figures)
