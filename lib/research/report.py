"""The backtest report a trader can look at: ``aitradex backtest ... --report DIR``.

One run on a data folder, for one algorithm and timeframe:

1. **Scores** every bar of every symbol (:func:`lib.research.market.score_market`).
2. **Chooses the threshold in-sample** when a split time is given
   (:func:`lib.research.threshold_rule.choose_threshold`): on the
   signals before it only, the lowest of 10, 20, ..., 90 whose ``>=threshold`` set both beats the
   random-entry baseline at p < 0.05 after fees (:func:`lib.research.evidence.bucket_evidence`) and
   pays after fees: mean R net > 0 with the low end of its 95 % bootstrap interval > 0. If none does,
   80 (the contract's default). Beating random entries alone is not enough: on hourly bars
   ``unirail_core`` at 10 beat them while earning almost nothing per trade. Without a split, the given
   threshold is used and the whole period is one sample.
3. **Reports the out-of-sample result of that threshold, whatever it is**: the per-bucket evidence
   (``buckets.csv``), the portfolio simulation's trades and equity (``trades.csv``, ``equity.csv``,
   ``equity.png`` with the drawdown), and predicted against observed TP-first share per bucket
   (``calibration.png``). ``report.md`` says in one sentence whether the score showed an edge.

Charts are drawn with matplotlib's Agg backend (files only, no display, no network).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from lib.core.evidence import ScoreEvidence
from lib.research.evidence import Evidence, bucket_evidence
from lib.research.exits import ExitRules
from lib.research.market import MarketScores, load_market, score_market
from lib.research.report_files import write_report_files
from lib.research.simulation import PortfolioRules, Simulation, simulate
from lib.research.threshold_rule import (
    CANDIDATE_THRESHOLDS,
    FALLBACK_THRESHOLD,
    SIGNIFICANCE,
    ThresholdChoice,
    choose_threshold,
)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the report files were written from."""

    algorithm: str
    timeframe: str
    choice: ThresholdChoice
    evidence: Evidence
    simulation: Simulation
    split_ms: int | None
    files: dict[str, Path]

    @property
    def edge_shown(self) -> bool:
        """Whether the chosen threshold's signals beat the baseline out of sample (p < 0.05)."""
        row = self.evidence.threshold_row
        return row.signals > 0 and row.p_value < SIGNIFICANCE and row.mean_r_net > row.baseline_mean_r_net

    @property
    def pays(self) -> bool:
        """Whether following the signals earned money after fees: the 95% interval of mean R is above 0."""
        row = self.evidence.threshold_row
        return row.signals > 0 and row.mean_r_ci_low > 0

    def score_evidence(self, command: str) -> ScoreEvidence:
        """The verdict and its out-of-sample figures, as the product shows them (``data/evidence.json``)."""
        row = self.evidence.threshold_row

        def figure(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 4)

        return ScoreEvidence(
            algorithm=self.algorithm,
            timeframe=self.timeframe,
            threshold=self.choice.threshold,
            edge_shown=self.edge_shown,
            pays=self.pays,
            verdict=self.verdict(),
            out_of_sample_from=_utc(self.evidence.first_bar_ms),
            out_of_sample_to=_utc(self.evidence.last_bar_ms),
            signals=row.signals,
            mean_r_net=figure(row.mean_r_net),
            mean_r_ci_low=figure(row.mean_r_ci_low),
            mean_r_ci_high=figure(row.mean_r_ci_high),
            baseline_mean_r_net=figure(row.baseline_mean_r_net),
            p_value=figure(row.p_value),
            report_date=datetime.now(UTC).strftime("%Y-%m-%d"),
            command=command,
        )

    def verdict(self) -> str:
        """The one sentence a user cannot miss: edge over random entries, and whether it pays."""
        row, t = self.evidence.threshold_row, self.choice.threshold
        versus = (
            f"mean {row.mean_r_net:+.3f} R net per trade against {row.baseline_mean_r_net:+.3f} R for random "
            f"entries with the same exits and fees (p = {row.p_value:.3f}, {row.signals} signals)"
        )
        if not row.signals:
            return (
                f"Out of sample, {self.algorithm}'s score shows no edge after fees: no signal reached "
                f"{t:g}, so there is nothing a user could have followed."
            )
        if not self.edge_shown:
            return (
                f"Out of sample, {self.algorithm}'s score shows no edge after fees at {t:g} or more: "
                f"{versus}."
            )
        if not self.pays:
            return (
                f"Out of sample, {self.algorithm} at {t:g} or more beats random entries but still loses "
                f"money after fees: {versus}."
            )
        return (
            f"Out of sample, {self.algorithm} at {t:g} or more beats random entries and pays after fees: "
            f"{versus}."
        )


def _utc(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _equity_png(simulation: Simulation, path: Path, title: str) -> Path:
    times = [datetime.fromtimestamp(ms / 1000, UTC) for ms in simulation.equity_time_ms.tolist()]
    equity = simulation.equity
    peak = np.maximum.accumulate(equity) if equity.size else equity
    drawdown = np.where(peak > 0, equity / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(3, 1))
    top.plot(times, equity, color="#1f6feb", linewidth=1.2)
    top.set_ylabel("equity (USDT)")
    top.set_title(title)
    top.grid(alpha=0.3)
    bottom.fill_between(times, 100.0 * drawdown, 0.0, color="#d1242f", alpha=0.5, step="post")
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _calibration_png(evidence: Evidence, path: Path, title: str, tp_share_to_break_even: float) -> Path:
    buckets = [r for r in evidence.rows[:-1] if r.signals > 0]
    predicted = [(r.low + r.high) / 200.0 for r in buckets]
    observed = [r.tp_first_pct / 100.0 for r in buckets]
    figure, axes = plt.subplots(figsize=(5.5, 5.5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="score = probability")
    axes.axhline(tp_share_to_break_even, color="#d1242f", linestyle="--", label="break-even before costs")
    axes.scatter(
        predicted, observed, s=[12 + 60 * math.log10(1 + r.signals) for r in buckets], color="#1f6feb"
    )
    axes.plot(predicted, observed, color="#1f6feb", linewidth=1)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("score / 100 (bucket middle)")
    axes.set_ylabel("observed TP-first share")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _markdown(report: Report, data_dir: Path, command: str) -> str:
    ev, sim, choice = report.evidence, report.simulation, report.choice
    row = ev.threshold_row
    verdict = f"**{report.verdict()}**"
    how = (
        f"chosen in-sample (before {_utc(report.split_ms)} UTC) as the lowest of "
        f"{', '.join(f'{t:g}' for t in CANDIDATE_THRESHOLDS)} beating the baseline at p < {SIGNIFICANCE} "
        "and paying after fees (mean R net > 0, 95% CI low > 0)"
        if choice.chosen_in_sample
        else (
            f"no candidate beat the baseline and paid after fees in-sample (before {_utc(report.split_ms)} "
            f"UTC), so the default {FALLBACK_THRESHOLD:g}"
            if report.split_ms is not None
            else "given on the command line (no in-sample/out-of-sample split)"
        )
    )
    s = sim.summary
    lines = [
        f"# Backtest: {report.algorithm}, timeframe {report.timeframe}",
        "",
        verdict,
        "",
        f"- data: `{data_dir}`, {len(sim.filters)} symbols; reported period {_utc(ev.first_bar_ms)} .. "
        f"{_utc(ev.last_bar_ms)} UTC",
        *(
            [
                "- scores: each bar of quantum_ai's training period by the walk-forward fold model whose "
                "test window holds it (fitted and calibrated only before it); its first fitting window "
                "is left out"
            ]
            if report.algorithm == "quantum_ai"
            else []
        ),
        f"- threshold {choice.threshold:g}: {how}",
        f"- costs: taker fee {ev.rules.fee_bps:g} bps per side, slippage {ev.rules.slippage_bps:g} bps "
        f"per fill; horizon {ev.rules.horizon_bars} bars; mean cost {row.mean_cost_r:.3f} R per trade "
        "at this threshold",
        f"- baseline: {ev.draws} random-entry draws per bucket (same per-symbol counts and direction mix), "
        f"95% bootstrap intervals from {ev.bootstrap} resamples, seed {ev.seed}",
        f"- command: `{command}`",
        "",
        "## Score buckets (out of sample)" if report.split_ms is not None else "## Score buckets",
        "",
        "| bucket | signals | TP first | SL first | neither | mean R net | 95% CI | baseline R | p |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in ev.rows:
        if not r.signals:
            lines.append(f"| {r.bucket} | 0 | - | - | - | - | - | - | - |")
            continue
        lines.append(
            f"| {r.bucket} | {r.signals} | {r.tp_first_pct:.1f}% | {r.sl_first_pct:.1f}% "
            f"| {r.neither_pct:.1f}% "
            f"| {r.mean_r_net:+.3f} | {r.mean_r_ci_low:+.3f} .. {r.mean_r_ci_high:+.3f} "
            f"| {r.baseline_mean_r_net:+.3f} | {r.p_value:.3f} |"
        )
    lines += [
        "",
        f"## Portfolio simulation at {choice.threshold:g}",
        "",
        f"{s.trades} trades from {sim.signals} qualifying signals (skipped: "
        + ", ".join(f"{k} {v}" for k, v in sorted(sim.skipped.items()))
        + f"); win rate {100 * s.win_rate:.1f}%, mean R net {s.mean_r_net:+.3f}, total return "
        f"{100 * s.total_return:+.1f}%, max drawdown {100 * s.max_drawdown:.1f}%, fees {s.fees:,.2f} USDT. "
        f"Start equity {sim.portfolio.initial_equity:,.0f} USDT, risk {sim.portfolio.risk_pct:g}% per trade, "
        f"leverage {sim.portfolio.leverage}x, at most {sim.portfolio.max_open_positions} open, "
        "one per symbol.",
        "",
        "![equity](equity.png)",
        "",
        "![calibration](calibration.png)",
    ]
    if choice.figures:
        lines += [
            "",
            "## In-sample threshold rule",
            "",
            "| threshold | signals | mean R net | 95% CI low | baseline R | p | beats baseline | pays |",
            "|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        lines += [
            f"| {t:g} | {f.signals} | {f.mean_r_net:+.3f} | {f.mean_r_ci_low:+.3f} | "
            f"{f.baseline_mean_r_net:+.3f} | {f.p_value:.3f} | {'yes' if f.beats_baseline else 'no'} "
            f"| {'yes' if f.passes else 'no'} |"
            for t, f in choice.figures.items()
        ]
    return "\n".join(lines) + "\n"


def write_report(
    directory: Path | str,
    *,
    algorithm: str,
    data_dir: Path,
    timeframe: str = "5",
    threshold: float = FALLBACK_THRESHOLD,
    rules: ExitRules = ExitRules(),  # noqa: B008 - frozen dataclasses: one shared default is safe
    portfolio: PortfolioRules = PortfolioRules(),  # noqa: B008
    start_ms: int | None = None,
    split_ms: int | None = None,
    end_ms: int | None = None,
    seed: int = 20261201,
    command: str = "",
    progress: Progress | None = None,
) -> Report:
    """Run the backtest and write ``report.md``, ``buckets.csv``, ``trades.csv``, ``equity.csv``,
    ``equity.png`` and ``calibration.png`` into ``directory`` (see the module docstring).

    ``progress(stage, done, total)`` is called per symbol while scoring and while the evidence runs.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    market = load_market(data_dir, timeframe)

    def stage(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    # quantum_ai was trained on these markets: each bar is scored by a model that never saw it.
    scores = score_market(algorithm, market, walk_forward=True, progress=stage("scoring"))
    report_start: int | None
    if split_ms is not None:
        choice = choose_threshold(
            market, scores, rules=rules, start_ms=start_ms, split_ms=split_ms, seed=seed
        )
        report_start = split_ms
    else:
        choice = ThresholdChoice(float(threshold), False)
        report_start = start_ms
    evidence = bucket_evidence(
        market,
        scores,
        choice.threshold,
        rules=rules,
        seed=seed,
        start_ms=report_start,
        end_ms=end_ms,
        progress=stage("evidence"),
    )
    simulation = simulate(
        market,
        scores,
        choice.threshold,
        rules=rules,
        portfolio=portfolio,
        start_ms=report_start,
        end_ms=end_ms,
    )
    files = write_report_files(folder, evidence, simulation)
    title = f"{algorithm} >= {choice.threshold:g}, timeframe {timeframe}"
    files["equity_png"] = _equity_png(simulation, folder / "equity.png", title)
    # A TP is worth TP/SL times the risk: break-even TP share is 1 / (1 + TP/SL) before costs.
    reward = _reward_ratio(scores)
    files["calibration_png"] = _calibration_png(
        evidence, folder / "calibration.png", title, 1.0 / (1.0 + reward)
    )
    report = Report(algorithm, timeframe, choice, evidence, simulation, split_ms, files)
    path = folder / "report.md"
    path.write_text(_markdown(report, Path(data_dir), command), encoding="utf-8")
    files["report"] = path
    files["evidence"] = folder / "evidence.json"
    files["evidence"].write_text(json.dumps([asdict(report.score_evidence(command))], indent=2) + "\n")
    return report


def update_evidence_file(path: Path, evidence: ScoreEvidence) -> None:
    """Put ``evidence`` into the versioned file, replacing the entry of the same algorithm and timeframe."""
    entries = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    kept = [
        e for e in entries if (e["algorithm"], e["timeframe"]) != (evidence.algorithm, evidence.timeframe)
    ]
    kept.append(asdict(evidence))
    kept.sort(key=lambda e: (e["algorithm"], int(e["timeframe"]) if e["timeframe"].isdigit() else 10**6))
    path.write_text(json.dumps(kept, indent=2) + "\n", encoding="utf-8")


def _reward_ratio(scores: MarketScores) -> float:
    """The signals' TP distance over their SL distance (2 for the project's 1.5/3 ATR levels)."""
    valid = scores.valid
    if not valid.any():
        return 2.0
    reward = np.abs(scores.take_profit[valid] - scores.entry[valid])
    risk = np.abs(scores.entry[valid] - scores.stop_loss[valid])
    return float(np.median(reward / risk))
