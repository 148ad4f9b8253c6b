"""The quality check's figures on simulated traffic, seed by seed: what the alarm threshold is
chosen from, and what the estimate's error is.

`python -m bench.quality [--seeds N]` writes bench/results/quality.json and prints a table.

Per scenario and seed: the simulator's default traffic (2,000 cards, 14 days; scenarios drift
from the middle), its features replayed as preprocess computes them (models/training), the
shipped model's scores and decisions at its card's thresholds, the labels production would see
(simulator/outcomes.py: reviews decided, approved frauds charged back, 10 % never, declines
never), and over the second week (a 7-day window, as the quality check reads) the same counting
and figures the pipeline uses (core.monitoring, core.quality, drift/quality.py). Every label has
come back here (the window is mature); the pipeline is not run, so this measures the figures,
not the functions.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from bench import ROOT
from simulator import Scenario, SimulationConfig, simulate
from simulator.outcomes import OutcomeConfig, production_labels
from streamscore.core.monitoring import Counts, prediction_counts
from streamscore.core.quality import label_attributes
from streamscore.drift.quality import QualityCounts, estimated, realized
from streamscore.preprocess.features import FEATURE_NAMES
from streamscore.scoring.model import DECISIONS, ScoringModel, decide, load_model
from training.dataset import build_dataset

RESULTS = ROOT / "bench" / "results" / "quality.json"
SCENARIOS: tuple[Scenario, ...] = (
    "baseline",
    "new-fraud-pattern",
    "channel-shift",
    "amount-inflation",
)
FIGURES = ("recall_at_decline", "recall_at_review", "approval_fraud_ratio", "pr_auc")


def one_run(model: ScoringModel, scenario: Scenario, seed: int) -> dict[str, Any]:
    batch = simulate(SimulationConfig(seed=seed, scenario=scenario))
    dataset = build_dataset(batch)
    columns = [FEATURE_NAMES.index(name) for name in model.feature_names]
    scores = model.predict(dataset.features[:, columns].astype(np.float32))
    codes = decide(scores, model.card.thresholds).tolist()
    predictions = [
        {
            "transaction_id": label.transaction_id,
            "decision": DECISIONS[code],
            "event_time": txn["event_time"],
        }
        for label, code, txn in zip(batch.labels, codes, batch.transactions, strict=True)
    ]
    truth = {label.transaction_id: label for label in batch.labels}
    labels = {
        x["transaction_id"]: x
        for x in production_labels(predictions, truth, OutcomeConfig(seed=seed)).labels
    }
    second_week = float(np.quantile(dataset.timestamps, 0.5))
    predicted, labelled = Counts(), Counts()
    for prediction, score, moment in zip(
        predictions, scores.tolist(), dataset.timestamps.tolist(), strict=True
    ):
        if moment < second_week:
            continue
        predicted.add(prediction_counts(prediction["decision"], [], score=score))
        label = labels.get(prediction["transaction_id"])
        if label is not None:
            fraud = label["label"] == "fraud"
            labelled.quality.update(label_attributes(fraud, prediction["decision"], score))
    counts = QualityCounts.of(predicted, labelled)
    return {
        "seed": seed,
        "predictions": predicted.n,
        "realized": realized(counts),
        "estimated": estimated(counts),
    }


def measure(seeds: int) -> dict[str, Any]:
    model = load_model(ROOT / "models" / "artifacts", 1, 1)
    results: dict[str, Any] = {"seeds": seeds, "model_version": model.model_version}
    for scenario in SCENARIOS:
        runs = [one_run(model, scenario, seed) for seed in range(1, seeds + 1)]
        summary = {}
        for name in FIGURES:
            values = sorted(r["realized"][name] for r in runs if r["realized"][name] is not None)
            summary[name] = {
                "min": values[0],
                "median": values[len(values) // 2],
                "max": values[-1],
            }
        errors = [
            r["realized"]["recall_at_review"] - r["estimated"]["recall_at_review"] for r in runs
        ]
        summary["recall_at_review_minus_estimate"] = {
            "mean": float(np.mean(errors)),
            "min": min(errors),
            "max": max(errors),
        }
        results[scenario] = {"summary": summary, "runs": runs}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    results = measure(args.seeds)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    for scenario in SCENARIOS:
        summary = results[scenario]["summary"]
        cells = [
            f"{name} {s['min']:.3f}-{s['max']:.3f} (median {s['median']:.3f})"
            for name, s in summary.items()
            if name in FIGURES
        ]
        error = summary["recall_at_review_minus_estimate"]
        print(f"{scenario:<18} " + "; ".join(cells))
        print(
            f"{'':<18} recall at review minus its estimate: mean {error['mean']:+.3f} "
            f"[{error['min']:+.3f}, {error['max']:+.3f}]"
        )
    print(f"written: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
