"""Benchmark: the full feature set (lib.indicators.features) against a per-symbol TA-Lib loop.

Run: ``.venv/bin/python bench/indicators.py`` (``--help`` for options). Prints a table; it is not a test.

The 500 x 300 input is derived from the 8 bundled series with a fixed seed: each synthetic candle is a
real candle drawn with replacement from its source symbol, replayed as (close log-return, open, high and
low relative to the previous close, volume) on top of the synthetic path's previous close. Prices and
volumes therefore have the real series' scale and candle shapes; volatility clustering is not kept.

Both sides compute the same 16 arrays (EMA 21/50, SMA 200, RSI 14, ATR 14, ADX/+DI/-DI 14,
MACD 12/26/9, Bollinger 20 x 2, OBV, volume ratio 20). The TA-Lib loop keeps its per-symbol results as
they come (no stacking into 2-D arrays), which flatters it slightly. The two are timed alternately so
that load from other processes on the machine hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import numpy.typing as npt
import talib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib import indicators as ind
from lib.research.bundled_data import load_all

FloatArray = npt.NDArray[np.float64]
SEED = 20261124
GOAL = 2.0

# Timed in a fresh interpreter: import plus the first features() call.
_FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
from lib import indicators as ind
x = np.linspace(1.0, 2.0, 4 * 300).reshape(4, 300)
ind.features(x, x * 1.01, x * 0.99, x, x)
print(time.perf_counter() - t0)
"""


def synthetic_candles(symbols: int, candles: int, seed: int) -> tuple[list[str], tuple[FloatArray, ...]]:
    """OHLCV arrays (symbols x candles) resampled from the bundled series; also the source names."""
    rng = np.random.default_rng(seed)
    sources = load_all()
    names = sorted(sources)
    out = [np.empty((symbols, candles)) for _ in range(5)]
    for i in range(symbols):
        src = sources[names[i % len(names)]]
        prev_close = src.close[:-1]
        picks = rng.integers(1, len(src.close), size=candles)
        base = prev_close[picks - 1]
        log_ret = np.log(src.close[picks] / base)
        start = src.close[rng.integers(0, len(src.close))]
        close = start * np.exp(np.cumsum(log_ret))
        prev = np.concatenate([[start], close[:-1]])
        out[0][i] = prev * src.open[picks] / base
        out[1][i] = prev * src.high[picks] / base
        out[2][i] = prev * src.low[picks] / base
        out[3][i] = close
        out[4][i] = src.volume[picks]
    return names, (out[0], out[1], out[2], out[3], out[4])


def talib_loop(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray
) -> list[tuple[FloatArray, ...]]:
    """The same feature set, one symbol at a time with TA-Lib."""
    results = []
    for h, lo, c, v in zip(high, low, close, volume, strict=True):
        macd, signal, hist = talib.MACD(c, 12, 26, 9)
        upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
        baseline = talib.SMA(v, 20)
        ratio = np.full_like(v, np.nan)
        np.divide(v[1:], baseline[:-1], out=ratio[1:])
        results.append(
            (
                talib.EMA(c, 21),
                talib.EMA(c, 50),
                talib.SMA(c, 200),
                talib.RSI(c, 14),
                talib.ATR(h, lo, c, 14),
                talib.ADX(h, lo, c, 14),
                talib.PLUS_DI(h, lo, c, 14),
                talib.MINUS_DI(h, lo, c, 14),
                macd,
                signal,
                hist,
                upper,
                middle,
                lower,
                talib.OBV(c, v),
                ratio,
            )
        )
    return results


def first_call_seconds(cache_dir: str | None) -> float:
    """Import plus first features() call in a fresh interpreter (empty numba cache if cache_dir)."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def time_alternately(runs: int, contenders: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Run each contender once per round, ``runs`` rounds; seconds per call for each."""
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, call in contenders.items():
            t0 = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - t0)
    return timings


def agree(got: ind.Features, reference: list[tuple[FloatArray, ...]]) -> bool:
    """Whether features() and the TA-Lib loop give the same numbers (1e-6 relative, same NaNs)."""
    for field_index, name in enumerate(ind.FEATURE_NAMES):
        ours = getattr(got, name)
        theirs = np.vstack([row[field_index] for row in reference])
        if not np.array_equal(np.isnan(ours), np.isnan(theirs)):
            return False
        valid = ~np.isnan(theirs)
        if not np.allclose(ours[valid], theirs[valid], rtol=1e-6, atol=0.0):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--candles", type=int, default=300)
    parser.add_argument("--runs", type=int, default=30, help="timed rounds per contender")
    parser.add_argument(
        "--skip-cold-compile", action="store_true", help="do not time a compile from an empty cache"
    )
    args = parser.parse_args()

    names, (o, h, lo, c, v) = synthetic_candles(args.symbols, args.candles, SEED)
    threads = numba.get_num_threads()
    print(f"Indicators benchmark: {args.symbols} symbols x {args.candles} candles (5-minute OHLCV)")
    print(
        f"Data: candles resampled with replacement from the {len(names)} bundled series "
        f"({', '.join(names)}),\n      symbol i from series i % {len(names)}, "
        f"numpy.random.default_rng({SEED}); close/open/high/low rebuilt from log-returns."
    )
    print(
        f"Machine: {os.cpu_count()} CPUs; numba {numba.__version__} with {threads} threads; "
        f"TA-Lib {talib.__ta_version__.decode().split()[0]} (python ta-lib {talib.__version__})"
    )
    print("Feature set: EMA 21/50, SMA 200, RSI 14, ATR 14, ADX/+DI/-DI 14, MACD 12/26/9,")
    print("             Bollinger 20 x 2, OBV, volume ratio 20 (16 arrays per symbol)")
    print()

    if not args.skip_cold_compile:
        with tempfile.TemporaryDirectory() as empty_cache:
            cold = first_call_seconds(empty_cache)
        print(f"JIT compile, fresh process with an empty numba cache:  {cold:6.2f} s (import + first call)")
    warm = first_call_seconds(None)
    print(f"Fresh process with the on-disk cache filled:            {warm:6.2f} s (import + first call)")

    t0 = time.perf_counter()
    got = ind.features(o, h, lo, c, v)  # warm-up: compile or cache load, excluded below
    print(f"First features() call in this process:                  {time.perf_counter() - t0:6.2f} s")
    same = agree(got, talib_loop(h, lo, c, v))
    print(f"features() and the TA-Lib loop agree (1e-6 relative, same NaNs): {'yes' if same else 'NO'}")
    print()

    def features_one_thread() -> None:
        numba.set_num_threads(1)
        try:
            ind.features(o, h, lo, c, v)
        finally:
            numba.set_num_threads(threads)

    timings = time_alternately(
        args.runs,
        {
            f"features(), parallel ({threads} threads)": lambda: ind.features(o, h, lo, c, v),
            "features(), one thread": features_one_thread,
            "TA-Lib loop, one symbol at a time": lambda: talib_loop(h, lo, c, v),
        },
    )
    width = max(len(name) for name in timings) + 2
    print(f"{'':{width}}{'median':>10}{'best':>10}   runs: {args.runs}")
    for name, seconds in timings.items():
        print(f"{name:{width}}{statistics.median(seconds) * 1e3:8.2f} ms{min(seconds) * 1e3:7.2f} ms")
    baseline = timings["TA-Lib loop, one symbol at a time"]
    print()
    for name, seconds in timings.items():
        if name.startswith("features"):
            ratio_median = statistics.median(baseline) / statistics.median(seconds)
            ratio_best = min(baseline) / min(seconds)
            label = f"speed-up of {name}"
            print(f"{label:{width + 22}}{ratio_median:6.2f}x median {ratio_best:6.2f}x best")
    parallel = next(iter(timings.values()))
    result = statistics.median(baseline) / statistics.median(parallel)
    verdict = "met" if result >= GOAL else "NOT met"
    print(f"\nGoal: features() at least {GOAL:.0f}x faster than the TA-Lib loop (medians): {verdict}")


if __name__ == "__main__":
    main()
