"""Train ``quantum_ai`` on the bundled USDT candles and write its versioned weights (v2).

    .venv/bin/python scripts/train_quantum_ai.py            # train, print the report, write the weights
    .venv/bin/python scripts/train_quantum_ai.py --check    # train and compare with the committed file

Rolling walk-forward training (see ``lib/research/training.py``) on the 5-minute candles of
``data/market-data-usdt/5m``: per fold, the training, calibration and test windows, then the log loss
and Brier score out of sample of the base-rate predictor, the hand-written stumps and scikit-learn's
HistGradientBoosting (raw and calibrated), for later time on the training symbols and for the held-out
symbols; then the pooled figures, the kept model, its reliability tables, and the deployed model's
in-sample metrics, labeled as such. Deterministic: a second run writes identical bytes. ``--check``
exits with status 1 if a fresh training differs from the committed weights by a single byte.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a plain script from any folder
    sys.path.insert(0, str(ROOT))

from lib.research import training  # noqa: E402
from lib.research.bundled_data import BUNDLED_USDT_DIR, load_all  # noqa: E402
from lib.scoring import quantum_ai_weights  # noqa: E402

DEFAULT_DATA = BUNDLED_USDT_DIR / "5m"
PREDICTORS = (
    ("base_rate", "base rate"),
    ("stumps_raw", "stumps, raw"),
    ("stumps_calibrated", "stumps, Platt"),
    ("library_raw", "HistGB, raw"),
    ("library_calibrated", "HistGB, Platt"),
)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _fmt(metrics: dict[str, Any]) -> str:
    auc = metrics["auc"]
    auc_text = "  n/a " if auc is None else f"{auc:.4f}"
    return (
        f"log-loss {metrics['log_loss']:.5f}  Brier {metrics['brier']:.5f}  AUC {auc_text}  "
        f"base rate {metrics['base_rate']:.3f}  mean p {metrics['mean_predicted']:.3f}  "
        f"n {metrics['samples']}"
    )


def _block(by_name: dict[str, Any], indent: str) -> None:
    for key, title in PREDICTORS:
        if key in by_name:
            print(f"{indent}{title:<15} {_fmt(by_name[key])}")


def print_report(result: training.TrainingResult) -> None:
    """Human-readable training report: folds, pooled out-of-sample comparison, calibration, in-sample."""
    meta = result.weights.training
    report = result.report
    print(
        f"data {meta['data_fingerprint'][:16]}...  {len(meta['symbols'])} training symbols, held out "
        f"{', '.join(meta['holdout_symbols'])}  {_day(meta['first_bar_ms'])} .. {_day(meta['last_bar_ms'])} "
        f"UTC  {meta['samples']} samples (bars x 2 sides), {meta['fitting_samples']} on the fitting grid"
    )
    print(f"config {meta['config']}")
    print("\nrolling walk-forward folds (fit, then calibrate, then test; each purged by the horizon):")
    for fold in report["folds"]:
        print(
            f"  fold {fold['fold']}: fit {_day(fold['train_from_ms'])} .. {_day(fold['train_to_ms'])} "
            f"({fold['train_samples']}), calibrate from {_day(fold['calibration_from_ms'])} "
            f"({fold['calibration_samples']}), test {_day(fold['test_from_ms'])} .. "
            f"{_day(fold['test_to_ms'])}"
        )
        for group, title in (("later", "later time, training symbols"), ("unseen", "held-out symbols")):
            if group in fold:
                print(f"    {title}:")
                _block(fold[group], "      ")
    oos = report["out_of_sample"]
    for group, title in (("later", "later time, training symbols"), ("unseen", "held-out symbols")):
        if group not in oos:
            continue
        print(f"\npooled out of sample, {title}:")
        _block(oos[group], "  ")
        print("  reliability of the calibrated stumps:   band   count   mean p   observed")
        for row in oos[f"{group}_reliability"]:
            print(
                f"{'':>42}{row['low']:.1f}-{row['high']:.1f} {row['count']:>8}   "
                f"{row['mean_predicted']:.3f}    {row['observed']:.3f}"
            )
    comparison = report["comparison"]
    print(f"\nkept: {comparison['kept']} ({comparison['rule']})")
    deployed = meta["deployed"]
    print(
        f"deployed model: fit from {_day(deployed['train_from_ms'])} ({deployed['train_samples']}), "
        f"calibrated from {_day(deployed['calibration_from_ms'])} ({deployed['calibration_samples']}), "
        f"Platt a = {deployed['platt']['a']:.4f}, b = {deployed['platt']['b']:.4f}"
    )
    print(f"IN-SAMPLE, deployed model on its own fitting rows: {_fmt(report['in_sample_deployed_model'])}")


def main(argv: list[str] | None = None, config: training.TrainConfig | None = None) -> int:
    """Train, report, and write (or, with ``--check``, compare) the weights file.

    ``config`` replaces the committed hyperparameters (tests train on a small slice with it).
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of 5-minute candle files")
    parser.add_argument("--out", type=Path, default=quantum_ai_weights.WEIGHTS_PATH, help="weights file")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)

    started = time.monotonic()
    candles = load_all(args.data, "5")
    config = config or training.TrainConfig()
    dataset = training.build_dataset(candles, config.horizon_bars, config.bar_ms)
    result = training.train(
        dataset,
        config,
        fingerprint=training.data_fingerprint(candles),
        progress=lambda message: print(f"  .. {message}", file=sys.stderr),
    )
    print_report(result)
    text = quantum_ai_weights.dump_weights(result.weights)
    print(f"\ntrained in {time.monotonic() - started:.1f} s")
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} differs from a fresh training", file=sys.stderr)
            return 1
        print(f"{args.out} matches a fresh training byte for byte")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
