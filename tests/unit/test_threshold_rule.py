"""The in-sample threshold rule (lib.research.report.choose_threshold): the lowest candidate whose
signals beat random entries at p < 0.05 after fees *and* pay after fees (mean R net > 0 with its 95 %
bootstrap interval above 0); 80 when none does."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lib.research.exits import ExitRules
from lib.research.market import Market
from lib.research.threshold_rule import (
    CANDIDATE_THRESHOLDS,
    FALLBACK_THRESHOLD,
    CandidateFigures,
    choose_threshold,
)
from tests.unit.test_evidence import cheating_scores, random_walk_market


@pytest.fixture(scope="module")
def market() -> Market:
    return random_walk_market(3)


def split_of(market: Market) -> int:
    return int(market.open_time_ms.min() + market.open_time_ms.max()) // 2


def test_a_score_that_pays_in_sample_gets_the_lowest_threshold_that_pays(market: Market) -> None:
    choice = choose_threshold(
        market,
        cheating_scores(market, 5),
        rules=ExitRules(),
        start_ms=None,
        split_ms=split_of(market),
        seed=9,
    )
    assert choice.chosen_in_sample
    chosen = choice.figures[choice.threshold]
    assert chosen.passes
    assert chosen.mean_r_net > 0
    assert chosen.mean_r_ci_low > 0
    assert chosen.p_value < 0.05
    # Every lower candidate failed the rule, and the rule stopped at the first that passed.
    assert list(choice.figures) == [t for t in CANDIDATE_THRESHOLDS if t <= choice.threshold]
    assert not any(f.passes for t, f in choice.figures.items() if t < choice.threshold)


def test_beating_random_entries_is_not_enough_when_the_signals_lose_money_after_fees(market: Market) -> None:
    # 100 bps a side against a 0.6 % stop costs about 3.3 R a trade: the cheater still beats random
    # entries by far, but no threshold pays. The old rule (beat the baseline) would have picked one.
    expensive = ExitRules(fee_bps=100.0)
    choice = choose_threshold(
        market, cheating_scores(market, 5), rules=expensive, start_ms=None, split_ms=split_of(market), seed=9
    )
    assert not choice.chosen_in_sample
    assert choice.threshold == FALLBACK_THRESHOLD
    assert list(choice.figures) == list(CANDIDATE_THRESHOLDS)
    assert any(f.beats_baseline for f in choice.figures.values())
    assert all(f.mean_r_net < 0 for f in choice.figures.values())
    assert not any(f.passes for f in choice.figures.values())


def test_a_positive_mean_whose_interval_reaches_below_zero_does_not_pass() -> None:
    def figures(mean: float, ci_low: float, p: float = 0.01, baseline: float = -0.1) -> CandidateFigures:
        return CandidateFigures(500, mean, ci_low, baseline, p)

    assert figures(0.05, 0.01).passes
    assert not figures(0.05, -0.01).passes  # the interval reaches below 0
    assert not figures(0.05, math.nan).passes  # no interval computed
    assert not figures(-0.01, 0.02).passes  # loses money
    assert not figures(0.05, 0.01, p=0.2).passes  # no better than random entries
    assert not figures(0.05, 0.01, baseline=0.1).passes  # below the baseline's mean
    assert not CandidateFigures(0, math.nan, math.nan, math.nan, math.nan).passes
    assert np.isnan(figures(0.05, math.nan).mean_r_ci_low)
