"""What the backtest found a score to be worth, as the product shows it to users.

One :class:`ScoreEvidence` per (algorithm, timeframe) report: whether the score beat random entries
with the same exits and fees out of sample (``edge_shown``), whether following it earned money after
fees (``pays``), the out-of-sample figures behind both, and when and how the report was made. The
versioned copy is ``data/evidence.json``, written by ``aitradex backtest --report DIR --update-evidence``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScoreEvidence:
    """One out-of-sample verdict on one algorithm's score at one timeframe."""

    algorithm: str
    timeframe: str
    threshold: float
    edge_shown: bool
    pays: bool
    verdict: str
    out_of_sample_from: str
    out_of_sample_to: str
    signals: int
    mean_r_net: float | None
    mean_r_ci_low: float | None
    mean_r_ci_high: float | None
    baseline_mean_r_net: float | None
    p_value: float | None
    report_date: str
    command: str
