"""Benchmark: the backtest as a trading simulation, end to end, single-thread and parallel side by side.

Run: ``.venv/bin/python bench/backtest.py [--data DIR] [--timeframe 5] [--repeats 5]`` (``--help`` for
the rest). Prints a table; it is not a test, and asserts nothing.

What is timed, per algorithm, on every symbol of the data folder (already loaded and resampled; the
CSV parsing is shown apart):

- **simulation**: features and scores of every bar (:func:`lib.research.market.score_market`), then
  :func:`lib.research.simulation.simulate` at the scanner's threshold (entries at the next open with
  slippage, exits in one compiled pass, fees, sizing with ``lib.core.sizing.size_order`` on the
  compounding equity, one position per symbol, max open positions). ``candles/s`` is the number of
  candles over this time: the figure comparable to jesse's ~510,000 candles/s (issue 10's goal here
  is 1,000,000 on two cores);
- **evidence**: :func:`lib.research.evidence.bucket_evidence`, both sides' exits at every bar, the
  200-draw random-entry baseline and the 1,000-replicate bootstrap;
- **report**: simulation plus evidence, what one ``aitradex backtest`` report costs (goal: under a
  minute with the 200-draw baseline).

Single-thread and parallel runs alternate inside each repeat (``numba.set_num_threads``; the scoring
thread pool follows it), so load from other processes hits both alike; the table shows medians. The
first run of each algorithm is a warm-up (numba's compile cache, the model weights) and is not timed.
Peak memory: the process's peak RSS at the end (``resource``), and the peak of Python and numpy
allocations during one untimed report per algorithm (``tracemalloc``, run apart because tracing slows
the Python parts).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numba

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.config import REPO_ROOT
from lib.research.evidence import bucket_evidence
from lib.research.market import Market, load_market, score_market
from lib.research.simulation import simulate

USDT_DATA = REPO_ROOT / "data" / "market-data-usdt" / "5m"
BTC_DATA = REPO_ROOT / "data" / "market-data"
# Thresholds that let about 1 % of the bars through, so the simulation has trades to walk without
# being swamped by them: unirail_core's contract default of 80, and 40 for quantum_ai (its calibrated
# v2 probabilities stay between 0.2 and 0.5, so its seeded threshold of 80 would leave nothing to
# simulate; supabase/seed/app_settings.json has the seeded thresholds).
THRESHOLDS = {"unirail_core": 80.0, "quantum_ai": 40.0}
GOAL = 1_000_000
JESSE = 510_000


@dataclass
class Timing:
    score: float
    simulate: float
    evidence: float

    @property
    def simulation(self) -> float:
        return self.score + self.simulate

    @property
    def report(self) -> float:
        return self.simulation + self.evidence


def run_once(market: Market, algorithm: str, threshold: float) -> tuple[Timing, str]:
    t0 = time.perf_counter()
    scores = score_market(algorithm, market)
    t1 = time.perf_counter()
    sim = simulate(market, scores, threshold)
    t2 = time.perf_counter()
    evidence = bucket_evidence(market, scores, threshold)
    t3 = time.perf_counter()
    s = sim.summary
    top = evidence.threshold_row
    facts = (
        f"{sim.signals} signals >= {threshold:g}, {s.trades} trades, mean R net {s.mean_r_net:+.3f}, "
        f"return {100 * s.total_return:+.1f}%, max drawdown {100 * s.max_drawdown:.1f}%; "
        f"bucket {top.bucket}: mean R net {top.mean_r_net:+.3f} vs baseline {top.baseline_mean_r_net:+.3f}, "
        f"p = {top.p_value:.3f}, cost {top.mean_cost_r:.3f} R/trade"
    )
    return Timing(t1 - t0, t2 - t1, t3 - t2), facts


def traced_peak_mb(market: Market, algorithm: str, threshold: float) -> float:
    tracemalloc.start()
    try:
        run_once(market, algorithm, threshold)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def median(timings: list[Timing], name: str) -> float:
    return statistics.median(getattr(t, name) for t in timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = USDT_DATA if USDT_DATA.is_dir() else BTC_DATA
    parser.add_argument("--data", type=Path, default=default, help=f"data folder (default {default})")
    parser.add_argument("--timeframe", default="5", help="Bybit interval, resampled from 5m (default 5)")
    parser.add_argument("--algorithms", default="unirail_core,quantum_ai")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=None, help="override the scanner's thresholds")
    args = parser.parse_args()

    parallel = numba.config.NUMBA_NUM_THREADS
    t0 = time.perf_counter()
    market = load_market(args.data, args.timeframe)
    load_s = time.perf_counter() - t0
    candles = len(market)
    print(
        f"data {args.data}: {len(market.symbols)} symbols, {candles:,} candles of {args.timeframe} min "
        f"(CSV load + resample {load_s:.2f} s, not timed below); {args.repeats} repeats, medians; "
        f"parallel = {parallel} numba threads"
    )
    header = (
        f"{'algorithm':<13} {'threads':>7} {'scores s':>9} {'simulate s':>10} {'candles/s':>12} "
        f"{'evidence s':>10} {'report s':>9}"
    )
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    for algorithm in args.algorithms.split(","):
        threshold = args.threshold if args.threshold is not None else THRESHOLDS[algorithm]
        numba.set_num_threads(parallel)
        _, facts = run_once(market, algorithm, threshold)  # warm-up
        runs: dict[int, list[Timing]] = {1: [], parallel: []}
        for rep in range(args.repeats):
            order = (1, parallel) if rep % 2 == 0 else (parallel, 1)
            for threads in order:
                numba.set_num_threads(threads)
                runs[threads].append(run_once(market, algorithm, threshold)[0])
        numba.set_num_threads(parallel)
        for threads in sorted(runs):
            t = runs[threads]
            rate = candles / median(t, "simulation")
            print(
                f"{algorithm:<13} {threads:>7} {median(t, 'score'):>9.3f} {median(t, 'simulate'):>10.3f} "
                f"{rate:>12,.0f} {median(t, 'evidence'):>10.3f} {median(t, 'report'):>9.3f}"
            )
        peak = traced_peak_mb(market, algorithm, threshold)
        notes.append(f"{algorithm}: {facts}; traced peak {peak:.0f} MiB during one report")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    for note in notes:
        print(note)
    print(f"peak RSS of this process: {rss:.0f} MiB; numba threading layer: {numba.threading_layer()}")
    print(f"goal: >= {GOAL:,} candles/s (jesse reports ~{JESSE:,}); a full report under 60 s")


if __name__ == "__main__":
    main()
