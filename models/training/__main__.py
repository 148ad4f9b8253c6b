"""`python -m training`: train the card-fraud model and write models/artifacts (see --help)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from training.pipeline import TrainingConfig, run

_DEFAULTS = TrainingConfig()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Simulate card traffic, train the fraud model, export ONNX, write artifacts.",
    )
    parser.add_argument(
        "--seed", type=int, default=_DEFAULTS.seed, help="simulation and model seed"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("models/artifacts"), help="artifact directory"
    )
    parser.add_argument("--cards", type=int, default=_DEFAULTS.n_cards, help="simulated cards")
    parser.add_argument("--days", type=float, default=_DEFAULTS.days, help="simulated days")
    parser.add_argument("--fraud-rate", type=float, default=_DEFAULTS.fraud_rate)
    parser.add_argument("--trees", type=int, default=_DEFAULTS.n_estimators, help="boosting stages")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = TrainingConfig(
        seed=args.seed,
        n_cards=args.cards,
        days=args.days,
        fraud_rate=args.fraud_rate,
        n_estimators=args.trees,
    )
    started = time.perf_counter()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    result = run(config, args.out, progress)
    metrics = result.model_card["metrics"]
    assert isinstance(metrics, dict)
    test = metrics["test"]
    thresholds = result.model_card["thresholds"]
    assert isinstance(thresholds, dict)
    print(f"model_version  {result.model_version}")
    print(
        f"test           PR-AUC {test['pr_auc']:.4f}  ROC-AUC {test['roc_auc']:.4f}  "
        f"recall@1%FPR {test['recall_at_1pct_fpr']:.4f}  "
        f"({test['n_fraud']} fraud / {test['n_transactions']})"
    )
    for decision, point in test["at_thresholds"].items():
        print(
            f"{decision:<8}       threshold {thresholds[decision]:.6f}  "
            f"precision {point['precision']:.3f}  recall {point['recall']:.3f}  "
            f"FPR {point['false_positive_rate']:.4f}"
        )
    for name, content in result.files().items():
        print(f"artifact       {args.out / name}  {len(content):,} bytes")
    steps = "  ".join(f"{name} {seconds:.1f}s" for name, seconds in result.durations.items())
    print(f"duration       {time.perf_counter() - started:.1f}s  ({steps})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
