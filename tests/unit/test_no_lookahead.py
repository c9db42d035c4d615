"""No lookahead, the way freqtrade's lookahead analysis checks it: change every candle after bar t, and
the score, the direction, SL and TP of bar t (and of every bar before it) must not change.

Both algorithms score every bar of a panel at once (``score_bars``), so a feature that peeked at a later
bar (a centred window, a forward shift, a normalisation over the whole series) would show up here.
"""

from __future__ import annotations

import numpy as np
import pytest

from lib.core.candles import CandlePanel
from lib.research.bundled_data import load_all
from lib.scoring import quantum_ai, unirail_core
from lib.scoring.features import BarScores

SCORERS = {"unirail_core": unirail_core.score_bars, "quantum_ai": quantum_ai.score_bars}
BARS = 900
# Cut points past the 200-bar warm-up, where bars are scored, and one near the end.
CUTS = (260, 455, 700, BARS - 2)


def _panel() -> CandlePanel:
    """Three bundled symbols' first ``BARS`` candles, as one panel (symbols x time)."""
    candles = [c for _, c in sorted(load_all().items())][:3]
    return CandlePanel(
        symbols=tuple(c.symbol for c in candles),
        open_time_ms=candles[0].open_time_ms[:BARS].copy(),
        open=np.stack([c.open[:BARS] for c in candles]),
        high=np.stack([c.high[:BARS] for c in candles]),
        low=np.stack([c.low[:BARS] for c in candles]),
        close=np.stack([c.close[:BARS] for c in candles]),
        volume=np.stack([c.volume[:BARS] for c in candles]),
    )


def _future_changed(panel: CandlePanel, t: int, seed: int) -> CandlePanel:
    """The same panel with every candle after bar ``t`` replaced by a different, still valid, path."""
    rng = np.random.default_rng(seed)

    def shocked(values: np.ndarray, sigma: float) -> np.ndarray:
        factor = np.exp(rng.normal(0.0, sigma, size=values.shape))
        factor[:, : t + 1] = 1.0  # bars up to t keep their exact values
        return values * factor

    open_, close = shocked(panel.open, 0.05), shocked(panel.close, 0.05)
    high = np.maximum(np.maximum(open_, close), shocked(panel.high, 0.05))
    low = np.minimum(np.minimum(open_, close), shocked(panel.low, 0.05))
    return CandlePanel(panel.symbols, panel.open_time_ms, open_, high, low, close, shocked(panel.volume, 1.0))


def _prefix(bars: BarScores, t: int) -> dict[str, np.ndarray]:
    return {
        "valid": bars.valid[:, : t + 1],
        "sign": bars.sign[:, : t + 1],
        "score": bars.score[:, : t + 1],
        "entry": bars.entry[:, : t + 1],
        "stop_loss": bars.stop_loss[:, : t + 1],
        "take_profit": bars.take_profit[:, : t + 1],
    }


@pytest.mark.parametrize("algorithm", sorted(SCORERS))
def test_changing_every_candle_after_bar_t_changes_nothing_up_to_bar_t(algorithm: str) -> None:
    panel = _panel()
    score_bars = SCORERS[algorithm]
    before = score_bars(panel)
    assert before.valid[:, 250:].any(), "the panel must have scored bars for the check to mean anything"
    for n, t in enumerate(CUTS):
        changed = _future_changed(panel, t, seed=n)
        assert not np.array_equal(changed.close[:, t + 1 :], panel.close[:, t + 1 :])
        after = score_bars(changed)
        for name, expected in _prefix(before, t).items():
            np.testing.assert_array_equal(_prefix(after, t)[name], expected, err_msg=f"{name} up to bar {t}")
        # The future really was different to the scorer: later bars' scores moved.
        assert not np.array_equal(after.score[:, t + 1 :], before.score[:, t + 1 :], equal_nan=True)


def test_a_scorer_that_peeks_one_bar_ahead_is_caught() -> None:
    """The check itself works: a score built from the next bar's close fails it."""
    panel = _panel()

    def peeking(p: CandlePanel) -> np.ndarray:
        return np.roll(p.close, -1, axis=1)

    t = CUTS[1]
    before = peeking(panel)[:, : t + 1]
    after = peeking(_future_changed(panel, t, seed=7))[:, : t + 1]
    assert not np.array_equal(before, after)
