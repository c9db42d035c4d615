"""Train ``quantum_ai`` on the bundled candles and write its versioned weights.

    .venv/bin/python scripts/train_quantum_ai.py            # train, print the report, write the weights
    .venv/bin/python scripts/train_quantum_ai.py --check    # train and compare with the committed file

Walk-forward training (see ``lib/research/training.py``): the report gives, per fold, the training
and validation windows, AUC, log-loss and Brier score of the raw and the calibrated predictions, then
the pooled out-of-fold metrics and calibration (reliability) tables, and finally the deployed model's
in-sample metrics, which are labeled as such. Deterministic: a second run writes identical bytes.
``--check`` exits with status 1 if a fresh training differs from the committed weights.
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
from lib.research.bundled_data import BUNDLED_DATA_DIR, load_all  # noqa: E402
from lib.scoring import quantum_ai_weights  # noqa: E402


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _fmt(metrics: dict[str, Any]) -> str:
    auc = metrics["auc"]
    auc_text = "  n/a " if auc is None else f"{auc:.4f}"
    return (
        f"AUC {auc_text}  log-loss {metrics['log_loss']:.4f}  Brier {metrics['brier']:.4f}  "
        f"base rate {metrics['base_rate']:.3f}  mean p {metrics['mean_predicted']:.3f}"
    )


def print_report(result: training.TrainingResult) -> None:
    """Human-readable training report: folds, out-of-fold metrics, calibration, in-sample metrics."""
    meta = result.weights.training
    report = result.report
    print(
        f"data {meta['data_fingerprint'][:16]}...  {len(meta['symbols'])} symbols  "
        f"{_day(meta['first_bar_ms'])} .. {_day(meta['last_bar_ms'])} UTC  "
        f"{meta['samples']} samples (bars x 2 sides)"
    )
    print(f"config {meta['config']}")
    print("\nwalk-forward folds (train strictly before validation, purged by the horizon):")
    for fold in report["folds"]:
        print(
            f"  fold {fold['fold']}: train {fold['train_samples']:>6} samples up to "
            f"{_day(fold['train_to_ms'])}, validate {_day(fold['valid_from_ms'])} .. "
            f"{_day(fold['valid_to_ms'])} ({fold['raw']['samples']} samples)"
        )
        print(f"      raw        {_fmt(fold['raw'])}")
        print(f"      calibrated {_fmt(fold['calibrated'])}   [{fold['calibration']}]")
    oof = report["out_of_fold"]
    print("\nall out-of-fold predictions:")
    print(f"  walk-forward calibration  {_fmt(oof['walk_forward_calibrated'])}")
    print(f"  final Platt (fit on them) {_fmt(oof['final_platt_on_oof'])}")
    for key, title in (
        ("calibration_walk_forward", "reliability, walk-forward calibration (out of sample)"),
        ("calibration_final_platt_on_oof", "reliability, final Platt on the out-of-fold predictions"),
    ):
        print(f"\n{title}:")
        print("    band        count   mean p   observed")
        for row in oof[key]:
            print(
                f"    {row['low']:.1f}-{row['high']:.1f}  {row['count']:>8}   "
                f"{row['mean_predicted']:.3f}    {row['observed']:.3f}"
            )
    print(f"\nIN-SAMPLE, deployed model on its own training data: {_fmt(report['in_sample_final_model'])}")
    platt = meta["platt_final"]
    print(f"deployed calibration: a = {platt['a']:.4f}, b = {platt['b']:.4f}")


def main(argv: list[str] | None = None) -> int:
    """Train, report, and write (or, with ``--check``, compare) the weights file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", type=Path, default=BUNDLED_DATA_DIR, help="candle folder")
    parser.add_argument("--out", type=Path, default=quantum_ai_weights.WEIGHTS_PATH, help="weights file")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)

    started = time.monotonic()
    candles = load_all(args.data)
    config = training.TrainConfig()
    dataset = training.build_dataset(candles, config.horizon_bars)
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
        print(f"{args.out} matches a fresh training")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
